//! The Rust example server: the same HTTP contract as the Flask example app
//! (docs/examples.md), on tokio + axum, driven by the crate's Rust API. Where
//! Waitress spends a thread per stream, this server holds thousands of
//! streams on two cores.
//!
//! ```text
//! cargo run --release --features axum --example sse_server
//! ```
//!
//! `HOST` (127.0.0.1), `PORT` (8080; 0 picks a free one), `GS_*` durations,
//! `GS_DRAIN_TOKEN`, `SSE_HEARTBEAT_SECONDS` (1), `MAX_TASKS` (500),
//! `TASK_KEEP_SECONDS` (300) and `MAX_BODY_BYTES` (65536) come from the
//! environment, validated at start (`settings.rs`).
//! The shutdown is the crate's: SIGTERM handling, phase notifications and
//! shutdown hooks, not a separate `tokio::signal` path.
//! `LAST_CALL_DISABLED=1` leaves SIGTERM to its default (the process
//! dies at once): the baseline of the rolling-update harness.

mod routes;
mod settings;
mod tasks;
mod test_switches;

use last_call::tokio::RuntimeExt;
use last_call::{install_signal_handlers, Config, Phase, Runtime, StreamKind};
use routes::{router, AppState};
use settings::Settings;
use std::time::Duration;
use tasks::{Limits, Tasks};

/// One line on stderr, in one write. `eprintln!` writes a line in pieces
/// (stderr is unbuffered: "sse_server: phase ", "draining", ...), and the
/// runtime's shutdown log, which writes each of its lines whole from its
/// own thread at the same moments, landed between them: its line was cut
/// in two, unreadable to a log parser (the e2e shutdown-log test's).
fn say(message: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let line = format!("sse_server: {message}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

fn fail(message: String) -> ! {
    say(format_args!("{message}"));
    std::process::exit(2);
}

fn main() {
    // The shutdown log on stderr (GS_SHUTDOWN_LOG=0 turns it off): an
    // operator watching the pod's log sees the shutdown as it happens.
    Runtime::global().set_shutdown_log(true);
    let config = Config::from_env().unwrap_or_else(|e| fail(e.to_string()));
    // First, before anything slow: a SIGTERM during start-up then starts
    // the sequence (and ends in exit 0) instead of killing the process.
    if std::env::var("LAST_CALL_DISABLED").as_deref() != Ok("1") {
        if let Err(e) = install_signal_handlers(config) {
            fail(e.to_string());
        }
    }
    let settings = Settings::from_env().unwrap_or_else(|e| fail(e));
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("cannot start tokio: {e}")));
    let code = runtime.block_on(serve(settings));
    // Do not wait for stray connections' tasks: the sequence is over.
    runtime.shutdown_timeout(Duration::from_millis(100));
    std::process::exit(code);
}

async fn serve(settings: Settings) -> i32 {
    let gs = Runtime::global();
    let tasks = Tasks::new(Limits {
        max_tasks: settings.max_tasks,
        keep_finished: settings.keep_finished,
    });

    gs.on_phase(|change| say(format_args!("phase {} -> {}", change.from, change.to)))
        .unwrap_or_else(|e| fail(e.to_string()));
    // At ClosingStreams the running tasks are given until the streams'
    // last moment (the pod-bound streams' moment), then cancelled: a task
    // that ends before it completes; the others' streams are pod-bound and
    // end with `task_failed`, reason `shutdown`.
    {
        let tasks = tasks.clone();
        tokio::spawn(async move {
            gs.reached(Phase::ClosingStreams).await;
            let last_moment = gs.reconnect_delay(StreamKind::PodBound).unwrap_or_default();
            tokio::time::sleep(last_moment).await;
            tasks.cancel_running();
        });
    }
    // Stopping runs the hooks: the tasks' waits for the running ones
    // within the time left; the HTTP server stops accepting meanwhile
    // (`shutdown_signal` below).
    {
        let tasks = tasks.clone();
        let handle = tokio::runtime::Handle::current();
        gs.register_shutdown_hook("tasks", move |left| handle.block_on(tasks.shutdown(left)))
            .unwrap_or_else(|e| fail(e.to_string()));
    }
    // Test-only, off by default: a hook that never returns.
    test_switches::install(gs, &settings.host).unwrap_or_else(|e| fail(e));

    let state = AppState {
        runtime: gs,
        tasks,
        drain_token: std::env::var("GS_DRAIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        heartbeat: settings.heartbeat,
        max_body: settings.max_body,
    };
    // The runtime's own probe listener (GS_PROBE_ADDR), with the liveness
    // heartbeat from this server's tokio runtime.
    gs.start_probes_from_env()
        .unwrap_or_else(|e| fail(e.to_string()));
    let address = format!("{}:{}", settings.host, settings.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .unwrap_or_else(|e| fail(format!("cannot listen on {address}: {e}")));
    let local = listener.local_addr().expect("local address");
    // The line the test harness and the demo wait for.
    println!("sse_server: serving on http://{local}");

    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(gs.shutdown_signal())
        .await;
    if let Err(e) = served {
        say(format_args!("server error: {e}"));
        return 1;
    }
    // The hooks are done once Stopped.
    let stopped = tokio::time::timeout(Duration::from_secs(60), gs.reached(Phase::Stopped)).await;
    println!("sse_server: stopped; exiting 0");
    if stopped.is_ok() {
        0
    } else {
        1
    }
}

/// Each stream is a socket: raise the soft open-file limit to the hard one.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out-parameter; setrlimit only reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
