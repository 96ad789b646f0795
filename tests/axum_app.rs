//! The minimal axum app (examples/axum_app.rs, the README's Rust quick
//! start) as a real process: 20 streams through a real SIGTERM, each ending
//! naturally or told to reconnect at its moment, never cut; the probes
//! answer 503/200 during the drain; the process exits 0.

#![cfg(feature = "axum")]

mod common;

use common::sse::{open, SseStream};
use common::{clear_gs_environment, example, request, ChildProcess};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn address(line: &str) -> SocketAddr {
    line.rsplit("http://")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn active_streams(probes: SocketAddr) -> u64 {
    let (status, body, _) = request(probes, "GET", "/metrics", &[("accept", "application/json")]);
    assert_eq!(status, 200, "{body}");
    common::json(&body)["active_streams"].as_u64().unwrap()
}

/// How a stream ended: all five ticks, or some ticks and the reconnect
/// hint (with `retry:` and the id of the last tick it had).
#[derive(Debug, PartialEq)]
enum Ending {
    Natural,
    Reconnect,
}

fn ending(stream: &SseStream) -> Ending {
    let events = stream.until_end(WAIT);
    assert_eq!(stream.cut(), None, "cut after {events:?}");
    let ticks: Vec<&String> = events.iter().filter(|e| e.contains("data: tick")).collect();
    for (n, tick) in ticks.iter().enumerate() {
        assert_eq!(**tick, format!("id: {n}\ndata: tick {n}"), "{events:?}");
    }
    match events.last().map(String::as_str) {
        Some(last) if last.contains("event: reconnect") => {
            assert!(last.starts_with("retry: 1000\n"), "{last}");
            let last_tick = ticks.len().checked_sub(1);
            match last_tick {
                Some(n) => assert!(last.contains(&format!("\nid: {n}\n")), "{events:?}"),
                None => assert!(!last.contains("id:"), "{events:?}"),
            }
            assert_eq!(events.len(), ticks.len() + 1, "{events:?}");
            Ending::Reconnect
        }
        _ => {
            assert_eq!(
                ticks.len(),
                5,
                "neither all ticks nor a reconnect: {events:?}"
            );
            Ending::Natural
        }
    }
}

#[test]
fn twenty_streams_through_a_real_sigterm_end_naturally_or_reconnect_never_cut() {
    let mut command = Command::new(example("axum_app"));
    clear_gs_environment(&mut command);
    // No shutdown hook in this app, so no budget for hooks: ClosingStreams
    // 2 s after the signal, the streams' last moment at 3.5 s.
    command
        .env("ADDR", "127.0.0.1:0")
        .env("GS_PROBE_ADDR", "127.0.0.1:0")
        .env("GS_DRAIN_DELAY_SECONDS", "0.5")
        .env("GS_SHUTDOWN_TIMEOUT_SECONDS", "4")
        .env("GS_CLOSE_NOTICE_SECONDS", "2")
        .env("GS_EXIT_WATCHDOG_SECONDS", "5");
    let mut app = ChildProcess::spawn(command);
    let probes = address(&app.wait_for_line("probes on http://", WAIT));
    let addr = address(&app.wait_for_line("serving on http://", WAIT));
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Ten streams now (they end by themselves 5 s later, before
    // ClosingStreams), ten 3.5 s later (still open at their moments).
    let early: Vec<SseStream> = (0..10)
        .map(|_| open(&client, addr, "/events", &[]))
        .collect();
    std::thread::sleep(Duration::from_millis(3500));
    let late: Vec<SseStream> = (0..10)
        .map(|_| open(&client, addr, "/events", &[]))
        .collect();
    for stream in early.iter().chain(&late) {
        assert_eq!(stream.status, 200);
        assert!(stream.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        // Each has its first tick before the signal: counted and sending.
    }
    let deadline = Instant::now() + WAIT;
    while active_streams(probes) != 20 {
        assert!(Instant::now() < deadline, "20 streams never counted");
        std::thread::sleep(Duration::from_millis(20));
    }
    ChildProcess::signal(app.pid(), libc::SIGTERM);

    // Draining: not ready, still alive.
    let deadline = Instant::now() + WAIT;
    while request(probes, "GET", "/readyz", &[]).0 != 503 {
        assert!(Instant::now() < deadline, "/readyz never 503");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(request(probes, "GET", "/healthz", &[]).0, 200);

    let endings: Vec<Ending> = early.iter().chain(&late).map(ending).collect();
    let natural = endings.iter().filter(|e| **e == Ending::Natural).count();
    let reconnect = endings.iter().filter(|e| **e == Ending::Reconnect).count();
    assert_eq!(natural + reconnect, 20);
    // Both ways were taken (the timings above leave a second either side).
    assert!(natural >= 1 && reconnect >= 1, "{endings:?}");
    let status = app.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", app.stderr());
}
