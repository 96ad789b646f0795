//! What a publish costs the app's thread, to 1 subscriber and to 10,000:
//! a hub in this process, its subscribers opened by `hub_load --url` in
//! child processes (so that no client runs here), and `Runtime::hub_publish`
//! timed call by call, in wall-clock time and in this thread's CPU time.
//!
//! ```text
//! cargo build --release --example hub_load --example hub_publish_cost
//! target/release/examples/hub_publish_cost --subscribers 10000
//! ```
//!
//! Two channels, `one` (1 subscriber) and `many` (`--subscribers`), are
//! published to in alternating rounds, so that both see the machine alike:
//! single calls `--interval-ms` apart (each finds the hub's threads asleep,
//! as a task publishing now and then does), and batches of 100 calls back to
//! back. Prints one JSON line: per channel and way, p50 / p99 of the wall
//! and CPU time per call, and the load average.

use last_call::{HubOptions, Runtime, StreamKind};
use serde_json::json;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DATA: &str =
    r#"{"event_type": "progress_update", "data": {"step": 1, "steps": 10, "percent": 10}}"#;
const BATCH: usize = 100;

/// The calling thread's CPU time, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given, which lives
    // here.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Subscribers in a child process, killed when dropped.
struct Subscribers(Child);

impl Drop for Subscribers {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn subscribe(
    runtime: &Runtime,
    addr: std::net::SocketAddr,
    channel: &str,
    n: usize,
) -> Subscribers {
    let load = std::env::current_exe()
        .expect("this program's path")
        .with_file_name("hub_load");
    let token = runtime
        .hub_subscribe_token(channel, Duration::from_secs(3600))
        .expect("a token");
    let mut child = Command::new(&load)
        .args([
            "--url",
            &format!("http://{addr}/streams/{channel}?token={token}"),
            "--streams",
            &n.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (build it first)", load.display()));
    // Its first line: every stream open.
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    Subscribers(child)
}

#[derive(Default)]
struct Times {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Times {
    fn summary(&mut self) -> serde_json::Value {
        let p = |v: &mut Vec<f64>, q: f64| {
            v.sort_by(f64::total_cmp);
            v.get(((v.len().max(1) - 1) as f64 * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        json!({
            "calls": self.wall.len(),
            "wall_us": {"p50": p(&mut self.wall, 0.5), "p99": p(&mut self.wall, 0.99)},
            "cpu_us": {"p50": p(&mut self.cpu, 0.5), "p99": p(&mut self.cpu, 0.99)},
        })
    }
}

fn publish(runtime: &Runtime, channel: &str) {
    runtime
        .hub_publish(channel, "task_event", DATA, None, StreamKind::Resumable)
        .expect("publish");
}

fn main() {
    let mut subscribers = 10_000usize;
    let mut rounds = 10usize;
    let mut interval_ms = 10u64;
    // lexopt: `--flag value` and `--flag=value`, its errors named.
    let mut parser = lexopt::Parser::from_env();
    let read = (|| -> Result<(), lexopt::Error> {
        use lexopt::prelude::*;
        while let Some(arg) = parser.next()? {
            match arg {
                Long("subscribers") => subscribers = parser.value()?.parse()?,
                Long("rounds") => rounds = parser.value()?.parse()?,
                Long("interval-ms") => interval_ms = parser.value()?.parse()?,
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(())
    })();
    if let Err(error) = read {
        eprintln!(
            "hub_publish_cost: {error}\nusage: hub_publish_cost [--subscribers 10000] [--rounds 10] [--interval-ms 10]"
        );
        std::process::exit(2);
    }
    let runtime = Runtime::global();
    let mut options = HubOptions::new(
        "127.0.0.1:0",
        "hub_publish_cost: a secret of 32 bytes or more",
    );
    // Room for every subscriber (the default cap is 10,000 connections).
    options.max_connections = subscribers + 1_000;
    let addr = runtime.start_hub(options).expect("start the hub");
    let _one = subscribe(runtime, addr, "one", 1);
    let _many = subscribe(runtime, addr, "many", subscribers);
    let deadline = Instant::now() + Duration::from_secs(120);
    while (runtime.active_streams() as usize) < subscribers + 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let held = runtime.active_streams() as usize;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (mut single, mut batched) = (
        [Times::default(), Times::default()],
        [Times::default(), Times::default()],
    );
    let channels = ["one", "many"];
    for _ in 0..rounds {
        for (at, channel) in channels.iter().enumerate() {
            for _ in 0..100 {
                std::thread::sleep(Duration::from_millis(interval_ms));
                let (wall, cpu) = (Instant::now(), thread_cpu_ns());
                publish(runtime, channel);
                single[at].cpu.push((thread_cpu_ns() - cpu) as f64 / 1e3);
                single[at].wall.push(wall.elapsed().as_secs_f64() * 1e6);
            }
            for _ in 0..10 {
                std::thread::sleep(Duration::from_millis(interval_ms));
                let (wall, cpu) = (Instant::now(), thread_cpu_ns());
                for _ in 0..BATCH {
                    publish(runtime, channel);
                }
                batched[at]
                    .cpu
                    .push((thread_cpu_ns() - cpu) as f64 / 1e3 / BATCH as f64);
                batched[at]
                    .wall
                    .push(wall.elapsed().as_secs_f64() * 1e6 / BATCH as f64);
            }
        }
    }
    println!(
        "{}",
        json!({
            "subscribers": {"one": 1, "many": held.saturating_sub(1)},
            "interval_ms": interval_ms,
            "single_call": {"one": single[0].summary(), "many": single[1].summary()},
            "batches_of_100_per_call": {"one": batched[0].summary(), "many": batched[1].summary()},
            "load_before": load.split_whitespace().next().unwrap_or(""),
            "load_after": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or(""),
        })
    );
}
