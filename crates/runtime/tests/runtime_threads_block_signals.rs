//! The runtime's own threads never take SIGTERM/SIGINT (the docs' claim,
//! `signals.rs`): a process-directed signal goes to a host thread, where
//! the host expects it. Checked on every thread the runtime starts, from
//! `/proc/self/task/*/status` (`SigBlk`), on both wait builds. With the
//! portable wait that includes the signal relay's thread
//! (`last-call-signal`), which did not block them before.

#![cfg(target_os = "linux")]

use last_call_runtime::{install_signal_handlers, Config, Runtime};
use std::time::Duration;

/// (thread name, blocked-signal mask) of every thread of this process.
fn threads() -> Vec<(String, u64)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let (Ok(name), Ok(status)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("status")),
        ) else {
            continue; // ended meanwhile
        };
        let blocked = status
            .lines()
            .find_map(|line| line.strip_prefix("SigBlk:"))
            .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
            .unwrap();
        found.push((name.trim().to_owned(), blocked));
    }
    found
}

fn bit(signal: libc::c_int) -> u64 {
    1 << (signal - 1)
}

#[test]
fn no_runtime_thread_takes_sigterm_or_sigint() {
    install_signal_handlers(Config::default()).unwrap();
    let runtime = Runtime::global();
    // A hook that stays in its thread while the threads are looked at.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (entered, hook_entered) = std::sync::mpsc::channel::<()>();
    runtime
        .register_shutdown_hook("holds", move |_| {
            entered.send(()).unwrap();
            let _ = released.recv_timeout(Duration::from_secs(20));
            true
        })
        .unwrap();
    runtime.on_phase(|_| {}).unwrap();
    runtime
        .configure(Config {
            drain_delay: Some(Duration::ZERO),
            shutdown_timeout: Duration::from_secs(10),
            ..Config::default()
        })
        .unwrap();
    runtime.begin_shutdown().unwrap();
    hook_entered
        .recv_timeout(Duration::from_secs(20))
        .expect("the hook ran");
    // The sequence, delivery and watchdog threads, the hook's, and with the
    // portable wait the relay's. A thread takes its name only when it first
    // runs: on a loaded machine (CI's parallel lanes) a thread can be
    // spawned, its mask blocked by its creator, and not yet named when the
    // hook runs. Wait for them all to be named, bounded.
    let expected = if cfg!(feature = "portable-wait") {
        5
    } else {
        4
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let ours = loop {
        let ours: Vec<_> = threads()
            .into_iter()
            .filter(|(name, _)| name.starts_with("last-call"))
            .collect();
        if ours.len() >= expected || std::time::Instant::now() > deadline {
            break ours;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    release.send(()).unwrap();
    let names: Vec<&str> = ours.iter().map(|(name, _)| name.as_str()).collect();
    assert!(ours.len() >= expected, "{names:?}");
    assert!(names.contains(&"last-call-hook"), "{names:?}");
    if cfg!(feature = "portable-wait") {
        assert!(
            names.iter().any(|name| name.starts_with("last-call-sig")),
            "{names:?}"
        );
    }
    for (name, blocked) in &ours {
        assert_eq!(
            blocked & (bit(libc::SIGTERM) | bit(libc::SIGINT)),
            bit(libc::SIGTERM) | bit(libc::SIGINT),
            "thread {name} takes SIGTERM or SIGINT (SigBlk {blocked:x})"
        );
    }
}
