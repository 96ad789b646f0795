//! Load for the stream hub, two ways:
//!
//! * `hub_load --url URL --streams N`: opens N SSE streams to URL (a hub
//!   stream URL with its token, or any SSE URL), at most
//!   `--connect-parallel` being set up at once; prints
//!   `{"opened": N, "open_seconds": S}` once each has its first bytes, then,
//!   when every stream has ended, `{"ended": N, "with_ending": E, "cut": C,
//!   "events_min": A, "events_max": B, "last_receipt_ns": [...]}` (when
//!   the last stream received the event of each id below 256, on the
//!   machine's monotonic clock): a stream ends *with an ending* when
//!   its last event is `task_completed`, `task_failed` or `reconnect`; any
//!   other end is a cut. `benches/hub_capacity.py` drives it against the
//!   Flask example.
//! * `hub_load --fanout N`: starts a hub in this process, opens N streams to
//!   one channel, publishes `--events` events (`--interval-ms` apart) and
//!   prints, as JSON, publish-to-last-receipt and publish-to-each-receipt
//!   percentiles and the publish call's own time; then the disconnect detection latency: one client at a
//!   time goes away, timed until the hub's stream count drops. Clients and
//!   hub share this process, so N streams take 2N descriptors.
//!
//! ```text
//! cargo build --release --example hub_load
//! target/release/examples/hub_load --fanout 10000
//! ```

use http_body_util::BodyExt;
use last_call::{monotonic_ns, HubOptions, Runtime, StreamKind};
use serde_json::json;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Options {
    url: Option<String>,
    streams: usize,
    fanout: Option<usize>,
    events: usize,
    interval_ms: u64,
    connect_parallel: usize,
    disconnects: usize,
}

fn usage(message: &str) -> ! {
    eprintln!("hub_load: {message}\nusage: hub_load (--url URL --streams N | --fanout N) [--events 50] [--interval-ms 100] [--connect-parallel 256] [--disconnects 50]");
    std::process::exit(2);
}

fn parse() -> Options {
    let mut options = Options {
        url: None,
        streams: 1000,
        fanout: None,
        events: 50,
        interval_ms: 100,
        connect_parallel: 256,
        disconnects: 50,
    };
    // lexopt: `--flag value` and `--flag=value`, its errors named.
    let mut parser = lexopt::Parser::from_env();
    let read = (|| -> Result<(), lexopt::Error> {
        use lexopt::prelude::*;
        while let Some(arg) = parser.next()? {
            match arg {
                Long("url") => options.url = Some(parser.value()?.string()?),
                Long("streams") => options.streams = parser.value()?.parse()?,
                Long("fanout") => options.fanout = Some(parser.value()?.parse()?),
                Long("events") => options.events = parser.value()?.parse()?,
                Long("interval-ms") => options.interval_ms = parser.value()?.parse()?,
                Long("connect-parallel") => {
                    options.connect_parallel = parser.value()?.parse::<usize>()?.max(1)
                }
                Long("disconnects") => options.disconnects = parser.value()?.parse()?,
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

/// Raises the soft open-file limit to the hard one: N streams need N
/// descriptors.
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

/// What one stream saw.
#[derive(Default)]
struct Seen {
    events: usize,
    last: String,
}

/// Opens one stream; calls `on_open` at its first bytes, `on_event` for
/// each event (the text between blank lines), and returns what it saw.
async fn follow(
    url: hyper::Uri,
    on_open: impl FnOnce(),
    mut on_event: impl FnMut(&str),
) -> Result<Seen, String> {
    let authority = url.authority().ok_or("no host in the URL")?.clone();
    let stream = tokio::net::TcpStream::connect(authority.as_str())
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let request = hyper::Request::get(path)
        .header("host", authority.as_str())
        .header("accept", "text/event-stream")
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != 200 {
        return Err(format!("status {}", response.status()));
    }
    let mut body = response.into_body();
    let mut on_open = Some(on_open);
    let mut text = String::new();
    let mut seen = Seen::default();
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if let Some(open) = on_open.take() {
            open();
        }
        text.push_str(&String::from_utf8_lossy(&data));
        while let Some(at) = text.find("\n\n") {
            let event: String = text.drain(..at + 2).collect();
            if event.starts_with(':') {
                continue;
            }
            seen.events += 1;
            on_event(&event);
            seen.last = event;
        }
    }
    Ok(seen)
}

/// Event ids 0 to this (exclusive) have their last receipt recorded by
/// `--url`.
const RECEIPT_IDS: usize = 256;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn external(options: &Options, url: &str) {
    let url: hyper::Uri = url.parse().unwrap_or_else(|_| usage("--url: not a URL"));
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let opened = Arc::new(AtomicUsize::new(0));
    let permits = Arc::new(tokio::sync::Semaphore::new(options.connect_parallel));
    // When the last stream received the event of each numeric id (the
    // monotonic clock is the machine's, so a publisher in another process
    // can compare).
    let last_receipt: Arc<Vec<AtomicU64>> =
        Arc::new((0..RECEIPT_IDS).map(|_| AtomicU64::new(0)).collect());
    let started = Instant::now();
    let mut handles = Vec::with_capacity(options.streams);
    for _ in 0..options.streams {
        let url = url.clone();
        let last_receipt = Arc::clone(&last_receipt);
        let opened = Arc::clone(&opened);
        let permits = Arc::clone(&permits);
        handles.push(tokio.spawn(async move {
            let permit = permits.acquire_owned().await.expect("open semaphore");
            let mut permit = Some(permit);
            follow(
                url,
                move || {
                    opened.fetch_add(1, Ordering::Relaxed);
                    drop(permit.take());
                },
                move |event| {
                    if let Some(id) = event
                        .lines()
                        .find_map(|l| l.strip_prefix("id: "))
                        .and_then(|id| id.parse::<usize>().ok())
                        .filter(|id| *id < RECEIPT_IDS)
                    {
                        last_receipt[id].fetch_max(monotonic_ns(), Ordering::Relaxed);
                    }
                },
            )
            .await
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while opened.load(Ordering::Relaxed) < options.streams && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "{}",
        json!({"opened": opened.load(Ordering::Relaxed), "open_seconds": started.elapsed().as_secs_f64()})
    );
    let results: Vec<Result<Seen, String>> = tokio.block_on(async {
        let mut results = Vec::with_capacity(handles.len());
        for handle in handles {
            results.push(handle.await.unwrap_or_else(|e| Err(e.to_string())));
        }
        results
    });
    let mut with_ending = 0;
    let mut errors = 0;
    let (mut least, mut most) = (usize::MAX, 0);
    for result in &results {
        match result {
            Ok(seen) => {
                least = least.min(seen.events);
                most = most.max(seen.events);
                let last = &seen.last;
                if last.contains("task_completed")
                    || last.contains("task_failed")
                    || last.contains("event: reconnect")
                {
                    with_ending += 1;
                }
            }
            Err(_) => errors += 1,
        }
    }
    println!(
        "{}",
        json!({"ended": results.len(), "with_ending": with_ending, "cut": results.len() - with_ending,
               "errors": errors, "events_min": least, "events_max": most,
               "last_receipt_ns": last_receipt.iter().map(|t| t.load(Ordering::Relaxed)).collect::<Vec<_>>()})
    );
}

fn fanout(options: &Options, streams: usize) {
    let runtime = Runtime::global();
    let addr = runtime
        .start_hub(HubOptions::new(
            "127.0.0.1:0",
            "hub_load: a secret of 32 bytes or more",
        ))
        .expect("start the hub");
    let token = runtime
        .hub_subscribe_token("fan", Duration::from_secs(3600))
        .unwrap();
    let url: hyper::Uri = format!("http://{addr}/streams/fan?token={token}")
        .parse()
        .unwrap();
    let events = options.events;
    let last_receipt: Arc<Vec<AtomicU64>> =
        Arc::new((0..events).map(|_| AtomicU64::new(0)).collect());
    let receipts: Arc<Vec<AtomicUsize>> =
        Arc::new((0..events).map(|_| AtomicUsize::new(0)).collect());
    let all_receipts = Arc::new(std::sync::Mutex::new(Vec::<(usize, u64)>::with_capacity(
        streams * events,
    )));
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let opened = Arc::new(AtomicUsize::new(0));
    let permits = Arc::new(tokio::sync::Semaphore::new(options.connect_parallel));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(streams);
    for _ in 0..streams {
        let (url, opened, permits) = (url.clone(), Arc::clone(&opened), Arc::clone(&permits));
        let (last_receipt, receipts, all) = (
            Arc::clone(&last_receipt),
            Arc::clone(&receipts),
            Arc::clone(&all_receipts),
        );
        handles.push(tokio.spawn(async move {
            let mut permit = Some(permits.acquire_owned().await.expect("open semaphore"));
            follow(
                url,
                move || {
                    opened.fetch_add(1, Ordering::Relaxed);
                    drop(permit.take());
                },
                move |event| {
                    let now = monotonic_ns();
                    let Some(index) = event
                        .lines()
                        .find_map(|l| l.strip_prefix("id: "))
                        .and_then(|id| id.parse::<usize>().ok())
                        .and_then(|id| id.checked_sub(1))
                        .filter(|i| *i < last_receipt.len())
                    else {
                        return;
                    };
                    last_receipt[index].fetch_max(now, Ordering::Relaxed);
                    receipts[index].fetch_add(1, Ordering::Relaxed);
                    all.lock().unwrap().push((index, now));
                },
            )
            .await
        }));
    }
    // Bounded: a stream that cannot connect (out of descriptors) never
    // counts.
    let deadline = Instant::now() + Duration::from_secs(60);
    while runtime.active_streams() < streams as u32 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let open_seconds = started.elapsed().as_secs_f64();
    let mut published_at = Vec::with_capacity(events);
    let mut publish_ms = Vec::with_capacity(events);
    for n in 0..events {
        published_at.push(monotonic_ns());
        runtime
            .hub_publish("fan", "tick", &n.to_string(), None, StreamKind::Resumable)
            .expect("publish");
        // The publish call itself: a queue push per subscriber.
        publish_ms.push(monotonic_ns().saturating_sub(published_at[n]) as f64 / 1e6);
        std::thread::sleep(Duration::from_millis(options.interval_ms));
    }
    // Every receipt, or a generous bound.
    let deadline = Instant::now() + Duration::from_secs(60);
    while receipts.iter().any(|r| r.load(Ordering::Relaxed) < streams) && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let complete = receipts
        .iter()
        .all(|r| r.load(Ordering::Relaxed) == streams);
    let mut to_last: Vec<f64> = (0..events)
        .map(|i| {
            (last_receipt[i]
                .load(Ordering::Relaxed)
                .saturating_sub(published_at[i])) as f64
                / 1e6
        })
        .collect();
    to_last.sort_by(f64::total_cmp);
    let mut to_each: Vec<f64> = all_receipts
        .lock()
        .unwrap()
        .iter()
        .map(|(i, at)| at.saturating_sub(published_at[*i]) as f64 / 1e6)
        .collect();
    to_each.sort_by(f64::total_cmp);
    // Disconnect detection: one client at a time goes away (its task is
    // aborted, which closes its socket); timed until the count drops.
    let mut detect: Vec<f64> = Vec::new();
    for handle in handles.iter().take(options.disconnects) {
        let before = runtime.active_streams();
        let gone = Instant::now();
        handle.abort();
        let deadline = gone + Duration::from_secs(10);
        while runtime.active_streams() >= before && Instant::now() < deadline {
            std::hint::spin_loop();
        }
        detect.push(gone.elapsed().as_secs_f64() * 1e3);
    }
    detect.sort_by(f64::total_cmp);
    publish_ms.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "streams": streams, "opened": runtime.active_streams() as usize + detect.len(), "open_seconds": open_seconds, "events": events, "every_receipt": complete,
            "publish_to_last_receipt_ms": {"p50": percentile(&to_last, 0.5), "p99": percentile(&to_last, 0.99), "max": percentile(&to_last, 1.0)},
            "publish_to_each_receipt_ms": {"p50": percentile(&to_each, 0.5), "p99": percentile(&to_each, 0.99)},
            "publish_call_ms": {"p50": percentile(&publish_ms, 0.5), "p99": percentile(&publish_ms, 0.99)},
            "disconnect_detection_ms": {"n": detect.len(), "p50": percentile(&detect, 0.5), "p99": percentile(&detect, 0.99), "max": percentile(&detect, 1.0)},
        })
    );
    for handle in handles {
        handle.abort();
    }
}

fn main() {
    let options = parse();
    raise_fd_limit();
    match (&options.url, options.fanout) {
        (Some(url), None) => external(&options, url),
        (None, Some(streams)) => fanout(&options, streams),
        _ => usage("give --url or --fanout"),
    }
}
