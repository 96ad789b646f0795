//! Signal to exit: a child process (examples/stream_holder) holds a stream
//! that ends at a known instant after SIGTERM (drain delay 0); measured is
//! the time from that stream's end (stamped by the child just before it
//! ends the stream, on CLOCK_MONOTONIC) to the child's exit (stamped by
//! this process when waitpid returns, on the same clock).
//!
//! Side by side: the same child exiting the way a polling host would
//! (`--poll-exit-ms 1000`, the seed's design).
//!
//! `cargo build --release --examples && cargo bench --bench signal_to_exit`
//! (`make bench` does both).

use last_call::monotonic_ns;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn stream_holder() -> PathBuf {
    let mut dir = std::env::current_exe().expect("bench path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("examples").join("stream_holder");
    assert!(
        path.exists(),
        "{} is missing: cargo build --release --examples",
        path.display()
    );
    path
}

/// One run: milliseconds from the stream's end to the child's exit.
fn run(extra: &[&str]) -> f64 {
    let mut child = Command::new(stream_holder())
        .args(["--streams", "1", "--end-after-signal-ms", "50"])
        .args(extra)
        .env("GS_DRAIN_DELAY_SECONDS", "0")
        .env("GS_SHUTDOWN_TIMEOUT_SECONDS", "20")
        .env("GS_CLOSE_NOTICE_SECONDS", "5")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start stream_holder");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().expect("a ready line").expect("stdout");
    assert!(ready.contains("\"ready\""), "{ready}");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut ending_ns = None;
    for line in lines.by_ref() {
        let line = line.expect("stdout");
        let report: serde_json::Value = serde_json::from_str(&line).expect("JSON report");
        if report["event"] == "stream_end" {
            ending_ns = report["ending_ns"].as_u64();
        }
    }
    let status = child.wait().expect("wait");
    let exited_ns = monotonic_ns();
    assert!(status.success(), "stream_holder failed: {status}");
    let ending_ns = ending_ns.expect("the stream's end was reported");
    (exited_ns - ending_ns) as f64 / 1e6
}

fn summary(name: &str, mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| samples[((p / 100.0) * (samples.len() - 1) as f64).round() as usize];
    println!(
        "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
        samples.len(),
        at(50.0),
        at(99.0),
        samples[0],
        samples[samples.len() - 1]
    );
    at(50.0)
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let (runs, poll_runs) = if quick { (3, 1) } else { (200, 20) };
    println!("signal to exit: last stream's end -> process exit (drain delay 0)\n");
    println!("| design | runs | p50 | p99 | min | max |");
    println!("|---|---|---|---|---|---|");
    let ours = summary(
        "last-call sequence (event-driven)",
        (0..runs).map(|_| run(&[])).collect(),
    );
    let poll = summary(
        "same child, exit checked every 1 s",
        (0..poll_runs)
            .map(|_| run(&["--poll-exit-ms", "1000"]))
            .collect(),
    );
    println!(
        "\nmedian ratio in this run: 1 s poll / ours = {:.0}x",
        poll / ours
    );
}
