//! A minimal Rust host of the stream hub: it installs the signal handling,
//! starts the hub (`GS_STREAM_ADDR`, `GS_STREAM_SECRET`, and
//! `GS_STREAM_STORE` for a shared store), keeps a resumable channel `feed`
//! and a pod-bound channel `task` (final event `task_failed` with reason
//! `shutdown`) fed with an event every 100 ms, prints a token for each as a
//! JSON line, and exits 0 once the sequence reaches Stopped. The task is
//! work (`Runtime::begin_work`, not a stream) until the streams' last
//! moment (when the hub closes its channel with the final event), so that
//! the pod exits when its work is done, not when its connections are.
//! The hub's SIGTERM test drives it:
//!
//! ```text
//! GS_STREAM_ADDR=127.0.0.1:0 GS_STREAM_SECRET=$(openssl rand -hex 32) cargo run --example hub_holder
//! ```
//!
//! Exit status: 0 after Stopped, 2 if the configuration is malformed.

use last_call::{install_signal_handlers, Config, Phase, Runtime, StreamKind};
use serde_json::json;
use std::time::Duration;

fn main() {
    let runtime = Runtime::global();
    let started = Config::from_env()
        .map_err(|e| e.to_string())
        .and_then(|config| install_signal_handlers(config).map_err(|e| e.to_string()))
        .and_then(|()| runtime.start_hub_from_env().map_err(|e| e.to_string()));
    let addr = match started {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            eprintln!("hub_holder: set GS_STREAM_ADDR");
            std::process::exit(2);
        }
        Err(error) => {
            eprintln!("hub_holder: {error}");
            std::process::exit(2);
        }
    };
    runtime
        .hub_set_final_event(
            "task",
            StreamKind::PodBound,
            "task_failed",
            r#"{"reason":"shutdown"}"#,
        )
        .expect("set the final event");
    let ttl = Duration::from_secs(600);
    println!(
        "{}",
        json!({
            "addr": addr.to_string(),
            "feed": runtime.hub_subscribe_token("feed", ttl).unwrap(),
            "task": runtime.hub_subscribe_token("task", ttl).unwrap(),
        })
    );
    runtime
        .on_phase(move |change| {
            println!(
                "{}",
                json!({
                    "phase": change.to.name(),
                    "active_streams": runtime.active_streams(),
                    "active_work": runtime.active_work(),
                })
            );
        })
        .expect("a phase listener");
    let mut work = Some(runtime.begin_work().expect("count the task"));
    std::thread::spawn(move || {
        for step in 0u64.. {
            if runtime.phase() >= Phase::Stopping {
                return;
            }
            let data = json!({ "step": step }).to_string();
            let _ = runtime.hub_publish("feed", "tick", &data, None, StreamKind::Resumable);
            // The task runs until the streams' last moment, then its work
            // is over (the hub closes its channel then).
            if let Some(task) = work.as_mut() {
                if task.end_in().is_some_and(|left| left.is_zero()) {
                    work = None;
                } else {
                    let _ = runtime.hub_publish("task", "step", &data, None, StreamKind::PodBound);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    runtime.wait_for_phase(Phase::Stopped, None).ok();
    println!("{}", json!({ "phase": "stopped" }));
}
