//! A minimal Rust host of the runtime: it installs the signal handling,
//! holds some streams, and reports every phase change as a JSON line on
//! stdout, with times on CLOCK_MONOTONIC. The signal tests drive it; it is
//! also a quick way to watch the sequence by hand:
//!
//! ```text
//! GS_DRAIN_DELAY_SECONDS=1 cargo run --example stream_holder -- --streams 2 --stream-ms 3000 &
//! kill -TERM %1
//! ```
//!
//! Options (all optional):
//! * `--streams N`: N streams that each end `--stream-ms` after start.
//! * `--end-after-signal-ms MS`: instead, N streams that end MS after the
//!   shutdown sequence starts (a known instant, for latency measurements).
//! * `--endless N`: N streams that end only when ClosingStreams asks them to
//!   (as a server closes streams with a reconnect hint).
//! * `--stuck N`: N streams that never end, even when asked.
//! * `--hook-ms MS`: a shutdown hook that works for MS (default 0).
//! * `--begin-shutdown-after-ms MS`: call `begin_shutdown` itself.
//! * `--poll-exit-ms MS`: exit the way a polling host would (the seed's
//!   design): check every MS whether draining and no stream is active,
//!   instead of waiting for the runtime's event-driven Stopped. The
//!   reference for the signal-to-exit benchmark.
//! * `--hang`: do not exit after Stopped (to show the exit watchdog).
//! * `--fork`: fork after installing; the child installs its own handling.
//!   Both report with `"who"`; the child answers `phase` lines on stdin.
//!
//! Exit status: 0 after Stopped, 2 if the configuration is malformed.

use last_call::{install_signal_handlers, monotonic_ns, Config, Phase, Runtime};
use serde_json::json;
use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::time::Duration;

#[derive(Default, Clone)]
struct Options {
    streams: u32,
    stream_ms: u64,
    end_after_signal_ms: Option<u64>,
    endless: u32,
    stuck: u32,
    hook_ms: u64,
    begin_shutdown_after_ms: Option<u64>,
    fork: bool,
    hang: bool,
    poll_exit_ms: Option<u64>,
}

fn parse() -> Options {
    let mut options = Options {
        stream_ms: 1000,
        ..Options::default()
    };
    // lexopt: `--flag value` and `--flag=value`, its errors named.
    let mut parser = lexopt::Parser::from_env();
    let read = (|| -> Result<(), lexopt::Error> {
        use lexopt::prelude::*;
        while let Some(arg) = parser.next()? {
            match arg {
                Long("fork") => options.fork = true,
                Long("hang") => options.hang = true,
                Long("streams") => options.streams = parser.value()?.parse()?,
                Long("stream-ms") => options.stream_ms = parser.value()?.parse()?,
                Long("end-after-signal-ms") => {
                    options.end_after_signal_ms = Some(parser.value()?.parse()?)
                }
                Long("endless") => options.endless = parser.value()?.parse()?,
                Long("stuck") => options.stuck = parser.value()?.parse()?,
                Long("hook-ms") => options.hook_ms = parser.value()?.parse()?,
                Long("begin-shutdown-after-ms") => {
                    options.begin_shutdown_after_ms = Some(parser.value()?.parse()?)
                }
                Long("poll-exit-ms") => options.poll_exit_ms = Some(parser.value()?.parse()?),
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

fn usage(message: &str) -> ! {
    eprintln!("stream_holder: {message} (see the comment at the top of examples/stream_holder.rs)");
    std::process::exit(64);
}

/// One JSON line, written with a single `write` so that the lines of a
/// parent and a forked child sharing the pipe never interleave.
fn report(who: &str, mut fields: serde_json::Value) {
    fields["who"] = json!(who);
    fields["pid"] = json!(std::process::id());
    fields["mono_ns"] = json!(monotonic_ns());
    let line = format!("{fields}\n");
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(line.as_bytes());
    let _ = stdout.flush();
}

fn main() {
    let options = parse();
    let config = Config::from_env().unwrap_or_else(|error| {
        eprintln!("stream_holder: {error}");
        std::process::exit(2);
    });
    if let Err(error) = install_signal_handlers(config.clone()) {
        eprintln!("stream_holder: {error}");
        std::process::exit(2);
    }
    let mut who = "parent";
    let mut fork_child = None;
    if options.fork {
        // SAFETY: the child continues by installing its own handling and
        // starting threads; glibc's fork handlers keep malloc usable.
        match unsafe { libc::fork() } {
            -1 => panic!("fork failed"),
            0 => {
                who = "child";
                if let Err(error) = install_signal_handlers(config) {
                    eprintln!("stream_holder (child): {error}");
                    std::process::exit(2);
                }
            }
            pid => fork_child = Some(pid),
        }
    }
    serve(who, &options, fork_child);
}

fn serve(who: &'static str, options: &Options, fork_child: Option<i32>) {
    let runtime = Runtime::global();
    let (stopped, on_stopped) = mpsc::channel();
    runtime
        .on_phase(move |change| {
            report(
                who,
                json!({"event": "phase", "from": change.from.name(), "to": change.to.name(),
                "active_streams": Runtime::global().active_streams()}),
            );
            if change.to == Phase::Stopped {
                let _ = stopped.send(());
            }
        })
        .expect("on_phase");
    let hook_ms = options.hook_ms;
    runtime
        .register_shutdown_hook("work", move |left| {
            report(
                who,
                json!({"event": "hook", "remaining_s": left.as_secs_f64()}),
            );
            std::thread::sleep(Duration::from_millis(hook_ms));
            true
        })
        .expect("register_shutdown_hook");

    for index in 0..options.streams {
        let stream = runtime.begin_stream().expect("begin");
        let signal_relative = options.end_after_signal_ms;
        let stream_ms = options.stream_ms;
        std::thread::spawn(move || {
            match signal_relative {
                Some(ms) => {
                    let _ = Runtime::global().wait_for_phase(Phase::Draining, None);
                    std::thread::sleep(Duration::from_millis(ms));
                }
                None => std::thread::sleep(Duration::from_millis(stream_ms)),
            }
            // Reported before the end: once the last stream ends, the
            // sequence may reach Stopped and main exit before a report
            // written after it.
            let ending_ns = monotonic_ns();
            report(
                who,
                json!({"event": "stream_end", "stream": index, "ending_ns": ending_ns}),
            );
            drop(stream);
        });
    }
    for index in 0..options.endless {
        let stream = runtime.begin_stream().expect("begin");
        std::thread::spawn(move || {
            let _ = Runtime::global().wait_for_phase(Phase::ClosingStreams, None);
            report(
                who,
                json!({"event": "stream_closed_on_notice", "stream": index}),
            );
            drop(stream);
        });
    }
    let stuck: Vec<_> = (0..options.stuck)
        .map(|_| runtime.begin_stream().expect("begin"))
        .collect();

    if let Some(child) = fork_child {
        // Reap the forked child and say what our own phase was then.
        std::thread::spawn(move || {
            let mut status = 0;
            // SAFETY: waiting for our own child; `status` is writable.
            unsafe { libc::waitpid(child, &mut status, 0) };
            report(
                who,
                json!({"event": "child_exited", "code": libc::WEXITSTATUS(status),
                "phase": Runtime::global().phase().name()}),
            );
        });
    }
    if who == "child" {
        // Answer "phase" on stdin (the parent never reads stdin).
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if line.trim() == "phase" {
                    report(
                        who,
                        json!({"event": "phase_report", "phase": Runtime::global().phase().name()}),
                    );
                }
            }
        });
    }
    report(
        who,
        json!({"event": "ready", "active_streams": runtime.active_streams()}),
    );

    if let Some(ms) = options.begin_shutdown_after_ms {
        std::thread::sleep(Duration::from_millis(ms));
        let started = runtime.begin_shutdown().expect("begin_shutdown");
        report(
            who,
            json!({"event": "begin_shutdown_called", "started": started}),
        );
    }
    if let Some(period) = options.poll_exit_ms {
        loop {
            std::thread::sleep(Duration::from_millis(period));
            if runtime.is_draining() && runtime.active_streams() == 0 {
                report(who, json!({"event": "exit", "code": 0, "by": "poll"}));
                std::process::exit(0);
            }
        }
    }
    // Exit once the Stopped listener has run (so every phase was reported).
    let _ = on_stopped.recv();
    drop(stuck);
    if options.hang {
        report(who, json!({"event": "hanging"}));
        loop {
            std::thread::park();
        }
    }
    report(who, json!({"event": "exit", "code": 0}));
}
