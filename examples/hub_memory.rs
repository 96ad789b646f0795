//! Where the stream hub's memory per connection goes: a hub in this process
//! under a counting global allocator, N subscribers opened by
//! `hub_load --url` in a child process (so that none of the clients' memory
//! is counted here), then the heap held per stream, by allocation size, and
//! the RSS per stream.
//!
//! ```text
//! cargo build --release --example hub_load --example hub_memory
//! target/release/examples/hub_memory --streams 10000
//! ```
//!
//! Prints one JSON line: the RSS and live heap per stream, the live
//! allocation sizes that grew the most (size, allocations per stream, bytes
//! per stream), and for each of the 5 events published, the time from its
//! publish to its receipt by the last of the N clients. Every stream must receive every event and end with the
//! channel's final event, or it exits 1.

use last_call::{HubOptions, Runtime, StreamKind};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::BufRead;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// Live allocations are counted per exact size up to this; larger ones
/// share the last slot.
const SIZES: usize = 32 * 1024;

struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BY_SIZE: [AtomicI64; SIZES + 1] = [const { AtomicI64::new(0) }; SIZES + 1];

/// `HUB_MEMORY_TRACE=SIZE`: print where the first few allocations of that
/// size come from once the clients connect.
static TRACE_SIZE: AtomicI64 = AtomicI64::new(-1);
static TRACED: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static IN_TRACE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count(size: usize, delta: i64) {
    LIVE_BYTES.fetch_add(delta * size as i64, Ordering::Relaxed);
    LIVE_BY_SIZE[size.min(SIZES)].fetch_add(delta, Ordering::Relaxed);
    if delta > 0
        && size as i64 == TRACE_SIZE.load(Ordering::Relaxed)
        && TRACED.fetch_add(1, Ordering::Relaxed) < 3
        && !IN_TRACE.with(|t| t.replace(true))
    {
        eprintln!(
            "allocation of {size} bytes:\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        IN_TRACE.with(|t| t.set(false));
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are atomics and allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            count(layout.size(), 1);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            count(layout.size(), 1);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        count(layout.size(), -1);
        // SAFETY: forwarded; `pointer` came from this allocator.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's arguments.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            count(layout.size(), -1);
            count(new_size, 1);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn by_size() -> Vec<i64> {
    LIVE_BY_SIZE
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect()
}

fn main() {
    let mut streams = 10_000usize;
    // lexopt: `--streams N` or `--streams=N`, its errors named.
    let mut parser = lexopt::Parser::from_env();
    let read = (|| -> Result<(), lexopt::Error> {
        use lexopt::prelude::*;
        while let Some(arg) = parser.next()? {
            match arg {
                Long("streams") => streams = parser.value()?.parse()?,
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(())
    })();
    if let Err(error) = read {
        eprintln!("hub_memory: {error}\nusage: hub_memory [--streams N]");
        std::process::exit(2);
    }
    let load = std::env::current_exe()
        .expect("this program's path")
        .with_file_name("hub_load");
    let runtime = Runtime::global();
    let addr = runtime
        .start_hub(HubOptions::new(
            "127.0.0.1:0",
            "hub_memory: a secret of 32 bytes or more",
        ))
        .expect("start the hub");
    runtime
        .hub_set_final_event("mem", StreamKind::PodBound, "task_completed", "{}")
        .expect("set the final event");
    let token = runtime
        .hub_subscribe_token("mem", Duration::from_secs(3600))
        .expect("a token");
    let url = format!("http://{addr}/streams/mem?token={token}");
    let (rss_before, heap_before, sizes_before) =
        (rss_kib(), LIVE_BYTES.load(Ordering::Relaxed), by_size());
    if let Some(size) = std::env::var("HUB_MEMORY_TRACE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        TRACE_SIZE.store(size, Ordering::Relaxed);
    }
    let mut child = std::process::Command::new(&load)
        .args(["--url", &url, "--streams", &streams.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (build it first)", load.display()));
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let opened = lines.next().and_then(Result::ok).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    while (runtime.active_streams() as usize) < streams && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let events = 5;
    let mut published_at = Vec::with_capacity(events);
    for n in 0..events {
        published_at.push(last_call::monotonic_ns());
        runtime
            .hub_publish(
                "mem",
                "step",
                &format!("{{\"step\":{n}}}"),
                None,
                StreamKind::PodBound,
            )
            .expect("publish");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    let held = runtime.active_streams() as i64;
    let (rss_open, heap_open, sizes_open) =
        (rss_kib(), LIVE_BYTES.load(Ordering::Relaxed), by_size());
    runtime
        .hub_close_channel("mem", None)
        .expect("close the channel");
    let ended = lines.next().and_then(Result::ok).unwrap_or_default();
    let _ = child.wait();
    let per = held.max(1) as f64;
    let mut grown: Vec<(usize, i64)> = sizes_open
        .iter()
        .zip(&sizes_before)
        .enumerate()
        .map(|(size, (open, before))| (size, open - before))
        .filter(|(_, delta)| *delta > 0)
        .collect();
    grown.sort_by_key(|(size, delta)| -(*size as i64 * delta));
    let top: Vec<_> = grown
        .iter()
        .take(12)
        .map(|(size, delta)| {
            json!({"size": if *size == SIZES { format!(">={SIZES}") } else { size.to_string() },
                   "per_stream": *delta as f64 / per,
                   "bytes_per_stream": (*size as i64 * delta) as f64 / per})
        })
        .collect();
    let mut ended_json: serde_json::Value = serde_json::from_str(&ended).unwrap_or_default();
    // Publish to the last of the N receipts, per event (ids 1 to 5), with
    // the clients in their own process.
    let to_last_ms: Vec<f64> = published_at
        .iter()
        .enumerate()
        .map(|(n, at)| {
            let last = ended_json["last_receipt_ns"][n + 1].as_u64().unwrap_or(0);
            last.saturating_sub(*at) as f64 / 1e6
        })
        .collect();
    if let Some(ended) = ended_json.as_object_mut() {
        ended.remove("last_receipt_ns");
    }
    println!(
        "{}",
        json!({
            "streams": held,
            "opened": serde_json::from_str::<serde_json::Value>(&opened).unwrap_or_default(),
            "rss_kib_per_stream": (rss_open - rss_before) as f64 / per,
            "heap_bytes_per_stream": (heap_open - heap_before) as f64 / per,
            "rss_mib": [rss_before as f64 / 1024.0, rss_open as f64 / 1024.0],
            "publish_to_last_receipt_ms": to_last_ms,
            "top_sizes": top,
            "ended": ended_json,
        })
    );
    let every = ended_json["events_min"].as_u64() == Some(events as u64 + 2)
        && ended_json["cut"].as_u64() == Some(0);
    std::process::exit(if every { 0 } else { 1 });
}
