//! The stream hub on the shared store (issue 24), measured against a real
//! redis-server: two hubs ("pods" A and B, this program in child processes)
//! on one Redis that this program starts on a free port of 127.0.0.1,
//! without persistence.
//!
//! * **Publish on A to receipt on B**: A publishes to one channel at a
//!   steady rate, each event's data carrying the machine's monotonic clock
//!   (`CLOCK_MONOTONIC`, the same in every process); a subscriber on B
//!   (this process) takes the clock again when it has read the event from
//!   its socket. p50/p99/max per rate, the first and second half's p99 (a
//!   receiver falling behind would show as a growing latency), and the CPU
//!   this process used (its client must be far from a core's worth).
//! * **Redis per published event**, from `INFO stats`, `INFO
//!   commandstats` and `INFO cpu` deltas: commands the pods sent (script
//!   calls, blocking reads), commands run inside the scripts, bytes in and
//!   out, Redis CPU; at each steady rate and in a burst.
//! * **Redis memory per channel with its history**: `used_memory` before
//!   and after A publishes `--events` typical task events to each of
//!   `--channels` channels.
//! * **Resume of `--resumers` subscribers on B**, each of its own channel
//!   published on A, having read half of it there: arriving all at once,
//!   then spread uniformly over `--spread-seconds` (the hand-off's
//!   reconnect spread); per subscriber the time from its arrival until it
//!   has its channel's last event, and Redis's load meanwhile.
//!
//! Every child (the pods and redis-server) is killed when this program
//! ends, also on a panic (guards) or if it is killed (`PR_SET_DEATHSIG`).
//!
//! ```text
//! cargo build --release --example hub_store_bench
//! target/release/examples/hub_store_bench --rates 1000,10000 --seconds 10
//! ```
//!
//! A pod (`hub_store_bench pod`, with `GS_STREAM_*` in its environment)
//! answers one JSON line per command on its stdin, and exits at its end:
//! `token CHANNEL`, `tokens PREFIX N`, `publish CHANNEL RATE COUNT` (RATE
//! 0: as fast as the queue takes them), `fill PREFIX CHANNELS EVENTS`.

use http_body_util::BodyExt;
use last_call::{monotonic_ns, Error, Runtime, StreamKind};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A typical task event, as `benches/hub_publish.py` publishes.
const TASK_EVENT: &str =
    r#"{"event_type": "progress_update", "data": {"step": 1, "steps": 10, "percent": 10}}"#;
const SECRET: &str = "hub_store_bench: a secret both pods share";
/// Every wait of this program is bounded by this.
const WAIT: Duration = Duration::from_secs(120);

struct Options {
    rates: Vec<u64>,
    seconds: u64,
    burst: u64,
    channels: u64,
    events: u64,
    resumers: u64,
    spread_seconds: f64,
}

fn usage(message: &str) -> ! {
    eprintln!("hub_store_bench: {message}\nusage: hub_store_bench [--rates 1000,10000] [--seconds 10] [--burst 20000] [--channels 10000] [--events 100] [--resumers 2000] [--spread-seconds 5]");
    std::process::exit(2);
}

fn parse() -> Options {
    let mut options = Options {
        rates: vec![1000, 10_000],
        seconds: 10,
        burst: 20_000,
        channels: 10_000,
        events: 100,
        resumers: 2000,
        spread_seconds: 5.0,
    };
    // lexopt: `--flag value` and `--flag=value`, its errors named.
    let mut parser = lexopt::Parser::from_env();
    let read = (|| -> Result<(), lexopt::Error> {
        use lexopt::prelude::*;
        while let Some(arg) = parser.next()? {
            match arg {
                Long("rates") => {
                    options.rates = parser
                        .value()?
                        .string()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .map_err(|error| lexopt::Error::ParsingFailed {
                            value: "--rates".into(),
                            error: Box::new(error),
                        })?
                }
                Long("seconds") => options.seconds = parser.value()?.parse()?,
                Long("burst") => options.burst = parser.value()?.parse()?,
                Long("channels") => options.channels = parser.value()?.parse()?,
                Long("events") => options.events = parser.value()?.parse()?,
                Long("resumers") => options.resumers = parser.value()?.parse()?,
                Long("spread-seconds") => options.spread_seconds = parser.value()?.parse()?,
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(())
    })();
    if let Err(error) = read {
        usage(&error.to_string());
    }
    options
}

/// The child dies with this process, even if this process is killed
/// before its guards run.
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the
    // parent; it runs in the forked child before exec.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// A child process, killed and reaped when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Redis {
    port: u16,
    dir: std::path::PathBuf,
    // Dropped before `dir` is removed (fields drop in order).
    child: Option<Guard>,
}

impl Drop for Redis {
    fn drop(&mut self) {
        drop(self.child.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("hub-store-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .expect("redis-server on PATH (make setup installs it)");
        let redis = Redis {
            port,
            dir,
            child: Some(Guard(child)),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while redis.cli(&["PING"]) != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .unwrap_or_default()
    }

    /// `INFO` sections as numbers: `field` and, for commandstats,
    /// `cmdstat_<name>.calls` / `.usec`.
    fn info(&self) -> HashMap<String, f64> {
        let mut fields = HashMap::new();
        for line in self.cli(&["INFO", "everything"]).lines() {
            let Some((name, value)) = line.trim().split_once(':') else {
                continue;
            };
            if let Ok(number) = value.parse::<f64>() {
                fields.insert(name.to_owned(), number);
            } else if name.starts_with("cmdstat_") {
                for part in value.split(',') {
                    if let Some((key, number)) = part.split_once('=') {
                        if let Ok(number) = number.parse::<f64>() {
                            fields.insert(format!("{name}.{key}"), number);
                        }
                    }
                }
            }
        }
        fields
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Waits until everything `pod` has queued is in Redis: it publishes a
    /// marker after it, and its writer appends in queue order. Seconds
    /// from `since` until the marker was seen.
    fn drained(&self, pod: &mut Pod, since: Instant) -> f64 {
        let marker = format!("marker-{}", monotonic_ns());
        pod.ask(&format!("publish {marker} 0 1"));
        let key = last_call_store::keys::ChannelKeys::of(&marker).stream;
        let deadline = Instant::now() + WAIT * 5;
        while self.cli(&["EXISTS", &key]) != "1" {
            assert!(Instant::now() < deadline, "the pod's queue did not drain");
            std::thread::sleep(Duration::from_millis(2));
        }
        since.elapsed().as_secs_f64()
    }
}

/// What Redis did between two `INFO`s, per published event.
fn redis_per_event(
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
    events: u64,
) -> Value {
    let delta = |name: &str| after.get(name).unwrap_or(&0.0) - before.get(name).unwrap_or(&0.0);
    let per = |value: f64| value / events.max(1) as f64;
    // Commands a client sent (each a request on the wire) as against those
    // the scripts ran inside Redis (counted in total_commands_processed
    // too).
    let mut by_command = serde_json::Map::new();
    let mut sent = 0.0;
    for name in after.keys().filter(|n| n.ends_with(".calls")) {
        let calls = delta(name);
        if calls <= 0.0 {
            continue;
        }
        let command = name
            .trim_start_matches("cmdstat_")
            .trim_end_matches(".calls");
        if matches!(
            command,
            "evalsha" | "eval" | "xread" | "ping" | "hello" | "client|setinfo" | "script|load"
        ) {
            sent += calls;
        }
        let usec = delta(&format!("cmdstat_{command}.usec"));
        by_command.insert(
            command.to_owned(),
            json!({"calls": per(calls), "usec": per(usec)}),
        );
    }
    // The INFO commands of this program itself are not the pods'.
    let info_here = 1.0;
    json!({
        "events": events,
        "commands_processed_per_event": per(delta("total_commands_processed") - info_here),
        "requests_from_pods_per_event": per(sent),
        "net_input_bytes_per_event": per(delta("total_net_input_bytes")),
        "net_output_bytes_per_event": per(delta("total_net_output_bytes")),
        "redis_cpu_us_per_event": per((delta("used_cpu_user") + delta("used_cpu_sys")) * 1e6),
        "calls_per_event": by_command,
    })
}

/// What the 16 bucket logs take in Redis, bytes.
fn logs_bytes(redis: &Redis) -> f64 {
    (0..last_call_store::keys::BUCKETS)
        .map(|bucket| {
            let key = last_call_store::keys::log_key(bucket);
            redis
                .cli(&["MEMORY", "USAGE", &key, "SAMPLES", "0"])
                .parse::<f64>()
                .unwrap_or(0.0)
        })
        .sum()
}

/// This process's CPU time (user + system), seconds.
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = pid.map_or("/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat (11 and 12 after the
    // name); in clock ticks.
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let field = |at: usize| {
        fields
            .get(at)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(11) + field(12)) / ticks
}

struct Pod {
    child: Guard,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    addr: String,
}

impl Pod {
    fn spawn(store: &str) -> Pod {
        let mut command = Command::new(std::env::current_exe().expect("this program's path"));
        command
            .arg("pod")
            .env("GS_STREAM_ADDR", "127.0.0.1:0")
            .env("GS_STREAM_SECRET", SECRET)
            .env("GS_STREAM_STORE", store)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        die_with_parent(&mut command);
        let mut child = command.spawn().expect("spawn a pod");
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut pod = Pod {
            child: Guard(child),
            stdin,
            stdout,
            addr: String::new(),
        };
        let hello = pod.line();
        pod.addr = hello["addr"]
            .as_str()
            .expect("the pod's address")
            .to_owned();
        pod
    }

    /// The pod's next JSON line (the hub's own `streams on ...` skipped).
    fn line(&mut self) -> Value {
        for _ in 0..100 {
            let mut text = String::new();
            let read = self
                .stdout
                .read_line(&mut text)
                .expect("a line from the pod");
            assert!(read > 0, "the pod ended");
            if let Ok(value) = serde_json::from_str(&text) {
                return value;
            }
        }
        panic!("no JSON line from the pod");
    }

    fn ask(&mut self, command: &str) -> Value {
        writeln!(self.stdin, "{command}").expect("a command to the pod");
        self.line()
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

/// The pod: a hub on the store, driven over stdin.
fn pod() {
    let runtime = Runtime::global();
    let addr = match runtime.start_hub_from_env() {
        Ok(Some(addr)) => addr,
        other => {
            eprintln!("hub_store_bench pod: no hub ({other:?})");
            std::process::exit(2);
        }
    };
    println!("{}", json!({ "addr": addr.to_string() }));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let number = |at: usize| {
            words
                .get(at)
                .and_then(|w| w.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let reply = match words.first().copied() {
            Some("token") => json!({ "token": runtime
                .hub_subscribe_token(words.get(1).copied().unwrap_or("x"), Duration::from_secs(3600))
                .expect("a token") }),
            Some("publish") => publish_steady(
                runtime,
                words.get(1).copied().unwrap_or("x"),
                number(2),
                number(3),
            ),
            Some("fill") => fill(
                runtime,
                words.get(1).copied().unwrap_or("x"),
                number(2),
                number(3),
            ),
            Some("tokens") => {
                let prefix = words.get(1).copied().unwrap_or("x");
                let tokens: Vec<String> = (0..number(2))
                    .map(|n| {
                        runtime
                            .hub_subscribe_token(&format!("{prefix}{n}"), Duration::from_secs(3600))
                            .expect("a token")
                    })
                    .collect();
                json!({ "tokens": tokens })
            }
            _ => json!({ "error": line }),
        };
        println!("{reply}");
    }
}

/// Publishes `count` events at `rate` per second (0: as fast as the
/// queue takes them), each with the monotonic clock at its publish call.
fn publish_steady(runtime: &Runtime, channel: &str, rate: u64, count: u64) -> Value {
    let started = Instant::now();
    let mut busy = 0u64;
    let mut call_ns: Vec<f64> = Vec::with_capacity(count as usize);
    for seq in 0..count {
        // Each event is due at its own moment; a late wake publishes the
        // events due since at once (each stamped at its call).
        if let Some(offset) = (seq * 1_000_000_000).checked_div(rate) {
            let due = started + Duration::from_nanos(offset);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        for _ in 0..100_000 {
            let at = monotonic_ns();
            let data = format!(r#"{{"seq":{seq},"t":{at},"event":{TASK_EVENT}}}"#);
            match runtime.hub_publish(channel, "task_event", &data, None, StreamKind::Resumable) {
                Ok(_) => {
                    call_ns.push((monotonic_ns() - at) as f64);
                    break;
                }
                Err(Error::HubBusy) => {
                    busy += 1;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(error) => panic!("publish: {error}"),
            }
        }
    }
    call_ns.sort_by(f64::total_cmp);
    json!({
        "published": count, "seconds": started.elapsed().as_secs_f64(), "busy": busy,
        "call_us_p50": percentile(&call_ns, 0.5) / 1e3, "call_us_p99": percentile(&call_ns, 0.99) / 1e3,
    })
}

/// `events` typical task events to each of `channels` channels, as fast as
/// the queue takes them (a refused publish waits and tries again).
fn fill(runtime: &Runtime, prefix: &str, channels: u64, events: u64) -> Value {
    let started = Instant::now();
    let mut busy = 0u64;
    for n in 0..events {
        let data = format!(r#"{{"seq":{n},"event":{TASK_EVENT}}}"#);
        for c in 0..channels {
            let channel = format!("{prefix}{c}");
            while let Err(error) =
                runtime.hub_publish(&channel, "task_event", &data, None, StreamKind::Resumable)
            {
                assert!(matches!(error, Error::HubBusy), "publish: {error}");
                assert!(
                    started.elapsed() < WAIT * 5,
                    "the store does not take the events"
                );
                busy += 1;
                std::thread::sleep(Duration::from_micros(500));
            }
        }
    }
    json!({ "published": channels * events, "seconds": started.elapsed().as_secs_f64(), "busy": busy })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// An event as a subscriber received it.
#[derive(Clone)]
struct Received {
    /// The monotonic clock when it was read from the socket.
    at: u64,
    /// The monotonic clock at its publish call (latency runs).
    published: Option<u64>,
    /// Its number in its channel (resume runs).
    seq: Option<u64>,
    id: Option<String>,
}

/// One subscriber on `addr`'s channel: what it received, in order.
struct Subscriber {
    receipts: Arc<Mutex<Vec<Received>>>,
    opened: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

fn subscribe(
    client: &tokio::runtime::Runtime,
    addr: &str,
    channel: &str,
    token: &str,
    last_event_id: Option<String>,
) -> Subscriber {
    let receipts = Arc::new(Mutex::new(Vec::new()));
    let opened = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (seen, open) = (Arc::clone(&receipts), Arc::clone(&opened));
    let (addr, path) = (addr.to_owned(), format!("/streams/{channel}?token={token}"));
    let task = client.spawn(async move {
        let stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect to the pod");
        stream.set_nodelay(true).ok();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("HTTP/1 to the pod");
        tokio::spawn(connection);
        let mut request = hyper::Request::get(path)
            .header("host", addr.as_str())
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let request = request
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .expect("a request");
        let response = sender.send_request(request).await.expect("a response");
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut text = String::new();
        while let Some(Ok(frame)) = body.frame().await {
            let now = monotonic_ns();
            let Ok(data) = frame.into_data() else {
                continue;
            };
            open.store(true, std::sync::atomic::Ordering::Release);
            text.push_str(&String::from_utf8_lossy(&data));
            let mut seen = seen.lock().expect("receipts");
            while let Some(at) = text.find("\n\n") {
                let event: String = text.drain(..at + 2).collect();
                let data = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .find_map(|d| serde_json::from_str::<Value>(d).ok());
                let Some(data) = data else { continue };
                seen.push(Received {
                    at: now,
                    published: data["t"].as_u64(),
                    seq: data["seq"].as_u64(),
                    id: event
                        .lines()
                        .find_map(|l| l.strip_prefix("id: "))
                        .map(str::to_owned),
                });
            }
        }
    });
    Subscriber {
        receipts,
        opened,
        task,
    }
}

/// Raises the soft open-file limit to the hard one (inherited by the
/// pods): 2,000 subscribers need as many descriptors.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, owned struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Events each resume channel holds; a subscriber had the first
/// `RESUME_HAD` of them on A and resumes on B for the rest.
const RESUME_EVENTS: u64 = 10;
const RESUME_HAD: u64 = 5;

/// `n` subscribers, each of its own channel published on A, had read part
/// of it on A; they arrive on B with `Last-Event-ID` all at once (`spread`
/// 0) or each at a uniform moment of `spread` seconds (as the hand-off's
/// reconnect spread does). Timed from each arrival until it has the
/// channel's last event; Redis's load meanwhile.
fn resume_run(
    client: &tokio::runtime::Runtime,
    redis: &Redis,
    a: &mut Pod,
    b: &mut Pod,
    n: u64,
    spread: f64,
    label: &str,
) -> Value {
    let prefix = format!("resume-{label}-");
    a.ask(&format!("fill {prefix} {n} {RESUME_EVENTS}"));
    redis.drained(a, Instant::now());
    let tokens = a.ask(&format!("tokens {prefix} {n}"))["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t.as_str().expect("a token").to_owned())
        .collect::<Vec<_>>();
    // Before the hand-off: each subscriber on A, with the id of the last
    // event it had.
    let on_a: Vec<Subscriber> = tokens
        .iter()
        .enumerate()
        .map(|(c, token)| subscribe(client, &a.addr, &format!("{prefix}{c}"), token, None))
        .collect();
    let deadline = Instant::now() + WAIT;
    let mut had = Vec::with_capacity(on_a.len());
    for subscriber in &on_a {
        loop {
            let id = subscriber
                .receipts
                .lock()
                .expect("receipts")
                .iter()
                .find(|r| r.seq == Some(RESUME_HAD - 1))
                .and_then(|r| r.id.clone());
            if let Some(id) = id {
                had.push(id);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a subscriber on A got no history"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    for subscriber in on_a {
        subscriber.task.abort();
    }
    std::thread::sleep(Duration::from_millis(300));
    // The arrivals on B, with Redis sampled every 100 ms meanwhile.
    let mut offsets: Vec<f64> = (0..n).map(|_| fastrand_f64() * spread).collect();
    offsets.sort_by(f64::total_cmp);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let before = redis.info();
    let (cpu_here, cpu_b) = (cpu_seconds(None), cpu_seconds(Some(b.pid())));
    let sampling = std::sync::atomic::AtomicBool::new(true);
    let (on_b, arrived, peak) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = 0.0f64;
            let mut last = redis
                .info()
                .get("total_commands_processed")
                .copied()
                .unwrap_or(0.0);
            let mut at = Instant::now();
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let now = redis
                    .info()
                    .get("total_commands_processed")
                    .copied()
                    .unwrap_or(0.0);
                peak = peak.max((now - last) / at.elapsed().as_secs_f64());
                (last, at) = (now, Instant::now());
            }
            peak
        });
        let started = Instant::now();
        let mut on_b = Vec::with_capacity(n as usize);
        let mut arrived = Vec::with_capacity(n as usize);
        for (c, offset) in offsets.iter().enumerate() {
            let due = started + Duration::from_secs_f64(*offset);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            arrived.push(monotonic_ns());
            on_b.push(subscribe(
                client,
                &b.addr,
                &format!("{prefix}{c}"),
                &tokens[c],
                Some(had[c].clone()),
            ));
        }
        let deadline = Instant::now() + WAIT;
        let caught_up = |s: &Subscriber| {
            s.receipts
                .lock()
                .expect("receipts")
                .iter()
                .any(|r| r.seq == Some(RESUME_EVENTS - 1))
        };
        while !on_b.iter().all(caught_up) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        sampling.store(false, std::sync::atomic::Ordering::Relaxed);
        let peak = sampler.join().unwrap_or(0.0);
        (on_b, arrived, peak)
    });
    let after = redis.info();
    let (cpu_here, cpu_b) = (
        cpu_seconds(None) - cpu_here,
        cpu_seconds(Some(b.pid())) - cpu_b,
    );
    let mut waits = Vec::with_capacity(on_b.len());
    let (mut exact, mut last_caught) = (0, 0u64);
    for (subscriber, arrived) in on_b.iter().zip(&arrived) {
        let receipts = subscriber.receipts.lock().expect("receipts").clone();
        subscriber.task.abort();
        let seqs: Vec<u64> = receipts.iter().filter_map(|r| r.seq).collect();
        if seqs == (RESUME_HAD..RESUME_EVENTS).collect::<Vec<_>>() {
            exact += 1;
        }
        if let Some(done) = receipts.iter().find(|r| r.seq == Some(RESUME_EVENTS - 1)) {
            waits.push(done.at.saturating_sub(*arrived) as f64 / 1e6);
            last_caught = last_caught.max(done.at);
        }
    }
    waits.sort_by(f64::total_cmp);
    let seconds = last_caught.saturating_sub(arrived[0]) as f64 / 1e9;
    json!({
        "subscribers": n, "spread_seconds": spread,
        "load_average_before": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "caught_up": waits.len(), "exactly_the_missed_events": exact,
        "arrival_to_caught_up_ms": {"p50": percentile(&waits, 0.5), "p99": percentile(&waits, 0.99), "max": percentile(&waits, 1.0)},
        "first_arrival_to_last_caught_up_s": seconds,
        "redis_peak_commands_per_s": peak,
        "redis_cpu_s": (after.get("used_cpu_user").unwrap_or(&0.0) + after.get("used_cpu_sys").unwrap_or(&0.0))
            - (before.get("used_cpu_user").unwrap_or(&0.0) + before.get("used_cpu_sys").unwrap_or(&0.0)),
        "cpu_s": {"client": cpu_here, "pod_b": cpu_b},
        "redis_per_subscriber": redis_per_event(&before, &after, n),
    })
}

/// A uniform number in [0, 1), from the clock's low bits mixed (the
/// arrival moments need no better).
fn fastrand_f64() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    // splitmix64
    let mut z = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("pod") {
        pod();
        return;
    }
    let options = parse();
    raise_fd_limit();
    let redis = Redis::start();
    let store = redis.url();
    let mut a = Pod::spawn(&store);
    let mut b = Pod::spawn(&store);
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut report = serde_json::Map::new();
    report.insert(
        "redis".into(),
        json!(redis
            .cli(&["INFO", "server"])
            .lines()
            .find(|l| l.starts_with("redis_version"))
            .unwrap_or("")),
    );

    for &rate in &options.rates {
        let channel = format!("latency-{rate}");
        let token = b.ask(&format!("token {channel}"))["token"]
            .as_str()
            .expect("a token")
            .to_owned();
        let subscriber = subscribe(&client, &b.addr, &channel, &token, None);
        let deadline = Instant::now() + WAIT;
        while !subscriber.opened.load(std::sync::atomic::Ordering::Acquire) {
            assert!(
                Instant::now() < deadline,
                "the subscriber on B did not open"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Let B's log reader settle on the channel.
        std::thread::sleep(Duration::from_millis(300));
        let count = rate * options.seconds;
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let before = redis.info();
        let (cpu_here, cpu_a, cpu_b, wall) = (
            cpu_seconds(None),
            cpu_seconds(Some(a.pid())),
            cpu_seconds(Some(b.pid())),
            Instant::now(),
        );
        let published = a.ask(&format!("publish {channel} {rate} {count}"));
        let deadline = Instant::now() + WAIT;
        while (subscriber.receipts.lock().expect("receipts").len() as u64) < count
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let seconds = wall.elapsed().as_secs_f64();
        let (cpu_here, cpu_a, cpu_b) = (
            cpu_seconds(None) - cpu_here,
            cpu_seconds(Some(a.pid())) - cpu_a,
            cpu_seconds(Some(b.pid())) - cpu_b,
        );
        let after = redis.info();
        subscriber.task.abort();
        let receipts = subscriber.receipts.lock().expect("receipts").clone();
        let latency = |part: &[Received]| {
            let mut ms: Vec<f64> = part
                .iter()
                .filter_map(|r| Some(r.at.saturating_sub(r.published?) as f64 / 1e6))
                .collect();
            ms.sort_by(f64::total_cmp);
            json!({"p50": percentile(&ms, 0.5), "p99": percentile(&ms, 0.99), "max": percentile(&ms, 1.0)})
        };
        let half = receipts.len() / 2;
        report.insert(
            format!("steady_{rate}_per_s"),
            json!({
                "load_average_before": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
                "published": published, "received": receipts.len(),
                "publish_to_receipt_ms": latency(&receipts),
                "first_half_ms": latency(&receipts[..half]), "second_half_ms": latency(&receipts[half..]),
                "cpu_share_of_a_core": {"client": cpu_here / seconds, "pod_a": cpu_a / seconds, "pod_b": cpu_b / seconds,
                    "redis": ((after.get("used_cpu_user").unwrap_or(&0.0) + after.get("used_cpu_sys").unwrap_or(&0.0))
                        - (before.get("used_cpu_user").unwrap_or(&0.0) + before.get("used_cpu_sys").unwrap_or(&0.0))) / seconds},
                "redis_per_event": redis_per_event(&before, &after, count),
            }),
        );
        eprintln!(
            "{}",
            serde_json::to_string(&report[&format!("steady_{rate}_per_s")]).unwrap_or_default()
        );
    }

    // A burst on one channel, with no subscriber: the writer's batches.
    let before = redis.info();
    let started = Instant::now();
    let published = a.ask(&format!("publish burst 0 {}", options.burst));
    let in_redis = redis.drained(&mut a, started);
    // The pods' readers read the log meanwhile (within a block time).
    std::thread::sleep(Duration::from_millis(200));
    let after = redis.info();
    report.insert(
        "burst_one_channel".into(),
        json!({
            "published": published, "seconds_until_in_redis": in_redis,
            "events_per_s_into_redis": options.burst as f64 / in_redis,
            "redis_per_event": redis_per_event(&before, &after, options.burst),
        }),
    );

    // Memory: every channel with a full history.
    let logs_before = logs_bytes(&redis);
    let memory_before = redis.info();
    let started = Instant::now();
    let filled = a.ask(&format!(
        "fill fill- {} {}",
        options.channels, options.events
    ));
    let in_redis = redis.drained(&mut a, started);
    std::thread::sleep(Duration::from_millis(200));
    let memory_after = redis.info();
    let used = |info: &HashMap<String, f64>| info.get("used_memory").copied().unwrap_or(0.0);
    let one_channel: f64 = ["c", "m"]
        .iter()
        .map(|part| {
            let key = last_call_store::keys::ChannelKeys::of("fill-0");
            let name = if *part == "c" { key.stream } else { key.meta };
            redis
                .cli(&["MEMORY", "USAGE", &name, "SAMPLES", "0"])
                .parse::<f64>()
                .unwrap_or(0.0)
        })
        .sum();
    let logs = logs_bytes(&redis);
    let fills = options.channels * options.events;
    report.insert(
        "memory".into(),
        json!({
            "channels": options.channels, "events_per_channel": options.events, "fill": filled,
            "seconds_until_in_redis": in_redis, "events_per_s_into_redis": fills as f64 / in_redis,
            "used_memory_delta_bytes": used(&memory_after) - used(&memory_before),
            "used_memory_delta_per_channel_bytes": (used(&memory_after) - used(&memory_before)) / options.channels.max(1) as f64,
            "memory_usage_one_channel_bytes": one_channel,
            "bucket_logs_bytes": {"before": logs_before, "after": logs},
            "per_channel_without_the_logs_bytes":
                (used(&memory_after) - used(&memory_before) - (logs - logs_before)) / options.channels.max(1) as f64,
            "keys": redis.cli(&["DBSIZE"]),
            "redis_per_event": redis_per_event(&memory_before, &memory_after, fills),
        }),
    );
    if options.resumers > 0 {
        for (label, spread) in [("herd", 0.0), ("spread", options.spread_seconds)] {
            let run = resume_run(
                &client,
                &redis,
                &mut a,
                &mut b,
                options.resumers,
                spread,
                label,
            );
            eprintln!("{}", serde_json::to_string(&run).unwrap_or_default());
            report.insert(format!("resume_{label}"), run);
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&Value::Object(report)).unwrap_or_default()
    );
    // The pods end at the end of their stdin; their guards kill them anyway.
    drop((a, b));
}
