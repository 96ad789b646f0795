//! Capacity of the Rust example server: opens many concurrent SSE streams
//! over loopback and measures the server.
//!
//! It starts the server itself (so it can read its memory and time its
//! exit), then:
//!
//! 1. reads the server's resident memory (VmRSS) with no stream open;
//! 2. starts `--tasks` tasks that all end at one known instant, and opens
//!    `--streams` SSE streams spread over them, at most `--connect-parallel`
//!    connections being set up at once; reports the time to open them all
//!    (until each stream has received its first event);
//! 3. reads the server's memory again, with every stream open;
//! 4. sends SIGTERM (the runtime drains: no stream is cut), waits for every
//!    stream's `task_completed`, and reports the time from the last task's
//!    end to the server's exit.
//!
//! ```text
//! cargo build --release --features axum --example sse_server --example sse_load
//! target/release/examples/sse_load --server target/release/examples/sse_server --streams 10000
//! ```
//!
//! Both processes raise their soft open-file limit to the hard one; 10,000
//! streams need 10,000 descriptors on each side.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Request;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

struct Options {
    server: String,
    streams: usize,
    tasks: usize,
    task_seconds: f64,
    connect_parallel: usize,
}

fn parse() -> Options {
    let mut options = Options {
        server: "target/release/examples/sse_server".into(),
        streams: 10_000,
        tasks: 100,
        task_seconds: 0.0,
        connect_parallel: 256,
    };
    // lexopt: `--flag value` and `--flag=value`, its errors named.
    let mut parser = lexopt::Parser::from_env();
    let read = (|| -> Result<(), lexopt::Error> {
        use lexopt::prelude::*;
        while let Some(arg) = parser.next()? {
            match arg {
                Long("server") => options.server = parser.value()?.string()?,
                Long("streams") => options.streams = parser.value()?.parse()?,
                Long("tasks") => options.tasks = parser.value()?.parse()?,
                Long("task-seconds") => options.task_seconds = parser.value()?.parse()?,
                Long("connect-parallel") => options.connect_parallel = parser.value()?.parse()?,
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(())
    })();
    if let Err(error) = read {
        usage(&error.to_string());
    }
    if options.streams == 0 || options.tasks == 0 || options.connect_parallel == 0 {
        usage("--streams, --tasks and --connect-parallel must be at least 1");
    }
    options
}

fn usage(message: &str) -> ! {
    eprintln!("sse_load: {message} (see the comment at the top of examples/sse_load.rs)");
    std::process::exit(64);
}

fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out-parameter; setrlimit only reads it.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

/// Resident memory of `pid`, in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Starts the server on a free port and returns it with its address.
fn start_server(path: &str) -> (Child, String) {
    let mut child = Command::new(path)
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("GS_DRAIN_DELAY_SECONDS", "0")
        .env("GS_SHUTDOWN_TIMEOUT_SECONDS", "120")
        .env("GS_CLOSE_NOTICE_SECONDS", "5")
        .env("GS_EXIT_WATCHDOG_SECONDS", "5")
        .env("SSE_HEARTBEAT_SECONDS", "15")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| usage(&format!("cannot start {path}: {e}")));
    let stdout = child.stdout.take().expect("piped stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    // Reads the announcement, then keeps draining so the server never
    // blocks on a full pipe.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.split("serving on http://").nth(1) {
                let _ = sender.send(rest.trim().to_owned());
            }
        }
    });
    let address = receiver
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| usage("the server did not announce its address within 30 s"));
    (child, address)
}

/// One HTTP/1.1 request on a fresh connection; the response, with a body
/// to read incrementally.
async fn request(
    address: &str,
    method: &str,
    path: &str,
    body: Option<String>,
) -> hyper::Response<hyper::body::Incoming> {
    let stream = TcpStream::connect(address).await.expect("connect");
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", address);
    let response = match body {
        Some(json) => {
            sender
                .send_request(
                    builder
                        .header("content-type", "application/json")
                        .body(http_body_util::Full::new(Bytes::from(json)).boxed())
                        .unwrap(),
                )
                .await
        }
        None => {
            sender
                .send_request(builder.body(Empty::<Bytes>::new().boxed()).unwrap())
                .await
        }
    };
    response.expect("response")
}

/// What one stream saw.
#[derive(Default)]
struct Seen {
    completed_at: Option<Instant>,
    reconnect: bool,
}

/// Counts streams that have received their first bytes.
struct Opened {
    count: AtomicUsize,
    total: usize,
    all: tokio::sync::Notify,
}

/// Follows one stream: at its first bytes, releases its connection permit
/// and counts itself open; records the arrival of `task_completed`.
async fn follow(
    address: String,
    path: String,
    permit: OwnedSemaphorePermit,
    opened: Arc<Opened>,
) -> Seen {
    let response = request(&address, "GET", &path, None).await;
    let mut body = response.into_body();
    let mut seen = Seen::default();
    let mut permit = Some(permit);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        if permit.take().is_some()
            && opened.count.fetch_add(1, Ordering::AcqRel) + 1 == opened.total
        {
            opened.all.notify_one();
        }
        // The server writes one SSE event per frame; look for the final one.
        let text = String::from_utf8_lossy(data);
        if text.contains("task_completed") {
            seen.completed_at = Some(Instant::now());
        }
        if text.contains("event: reconnect") {
            seen.reconnect = true;
        }
    }
    seen
}

#[tokio::main]
async fn main() {
    let options = parse();
    let limit = raise_open_file_limit();
    if (limit as usize) < options.streams + 64 {
        usage(&format!(
            "the open-file limit is {limit}; {} streams need more",
            options.streams
        ));
    }
    let (mut server, address) = start_server(&options.server);
    let pid = server.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_kib = rss_kib(pid);

    // Tasks that end at a known instant: long enough to open every stream.
    let task_seconds = if options.task_seconds > 0.0 {
        options.task_seconds
    } else {
        10.0 + options.streams as f64 / 1000.0
    };
    let mut stream_urls = Vec::new();
    let tasks_started = Instant::now();
    for _ in 0..options.tasks {
        let body = format!("{{\"steps\": 1, \"step_seconds\": {task_seconds}}}");
        let response = request(&address, "POST", "/api/tasks", Some(body)).await;
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("task JSON");
        stream_urls.push(json["stream_url"].as_str().expect("stream_url").to_owned());
    }
    let tasks_end = tasks_started + Duration::from_secs_f64(task_seconds);

    let opened = Arc::new(Opened {
        count: AtomicUsize::new(0),
        total: options.streams,
        all: tokio::sync::Notify::new(),
    });
    let connecting = Arc::new(Semaphore::new(options.connect_parallel));
    let opening = Instant::now();
    let mut followers = Vec::with_capacity(options.streams);
    for index in 0..options.streams {
        let permit = Arc::clone(&connecting)
            .acquire_owned()
            .await
            .expect("semaphore");
        let path = stream_urls[index % stream_urls.len()].clone();
        followers.push(tokio::spawn(follow(
            address.clone(),
            path,
            permit,
            Arc::clone(&opened),
        )));
    }
    tokio::time::timeout(Duration::from_secs(300), opened.all.notified())
        .await
        .unwrap_or_else(|_| usage("not every stream opened within 300 s"));
    let open_seconds = opening.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded_kib = rss_kib(pid);
    if Instant::now() >= tasks_end {
        eprintln!(
            "sse_load: warning: the tasks ended before every stream was open; raise --task-seconds"
        );
    }

    // SIGTERM while every stream is open; they end when their task does.
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let exited = tokio::task::spawn_blocking(move || {
        let status = server.wait().expect("wait for the server");
        (Instant::now(), status)
    });
    let mut completed = 0;
    let mut reconnected = 0;
    let mut last_end: Option<Instant> = None;
    for follower in followers {
        let seen = follower.await.expect("follower");
        if let Some(at) = seen.completed_at {
            completed += 1;
            last_end = Some(last_end.map_or(at, |l| l.max(at)));
        }
        reconnected += usize::from(seen.reconnect);
    }
    let (exit_at, status) = exited.await.expect("exit");
    let last_end = last_end.unwrap_or(exit_at);
    let per_stream = (loaded_kib.saturating_sub(idle_kib)) as f64 * 1024.0 / options.streams as f64;
    let result = serde_json::json!({
        "streams": options.streams,
        "tasks": options.tasks,
        "server_rss_idle_kib": idle_kib,
        "server_rss_loaded_kib": loaded_kib,
        "bytes_per_stream": per_stream.round(),
        "open_all_seconds": (open_seconds * 1000.0).round() / 1000.0,
        "streams_completed": completed,
        "streams_told_to_reconnect": reconnected,
        "streams_cut": options.streams - completed - reconnected,
        "last_task_end_to_exit_ms": (exit_at.saturating_duration_since(last_end).as_secs_f64() * 1e6).round() / 1e3,
        "server_exit_code": status.code(),
    });
    println!("{result}");
    eprintln!(
        "sse_load: {} streams: server RSS {:.1} MiB idle, {:.1} MiB loaded ({:.0} B/stream); opened in {:.2} s; \
         {} completed, {} cut; last task end -> exit {:.1} ms; exit code {:?}",
        options.streams,
        idle_kib as f64 / 1024.0,
        loaded_kib as f64 / 1024.0,
        per_stream,
        open_seconds,
        completed,
        options.streams - completed - reconnected,
        exit_at.saturating_duration_since(last_end).as_secs_f64() * 1e3,
        status.code()
    );
    if status.code() != Some(0) || completed + reconnected != options.streams {
        std::process::exit(1);
    }
}
