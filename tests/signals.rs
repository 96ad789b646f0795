//! The shutdown sequence driven by real signals, in child processes
//! (`examples/stream_holder.rs`), observed through their JSON reports.
//! Every wait is bounded; every child is killed when its test ends.

mod common;

use common::{example, json, ChildProcess};
use last_call::monotonic_ns;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(20);

fn holder(env: &[(&str, &str)], args: &[&str]) -> ChildProcess {
    let mut command = Command::new(example("stream_holder"));
    command.args(args);
    common::clear_gs_environment(&mut command);
    command.envs(env.iter().copied());
    let mut child = ChildProcess::spawn(command);
    child.wait_for_line("\"ready\"", LONG);
    child
}

/// Every JSON report, read until the child closes stdout.
fn reports(child: &mut ChildProcess) -> Vec<Value> {
    child.read_to_end(LONG);
    child.seen.iter().map(|line| json(line)).collect()
}

fn phases(reports: &[Value]) -> Vec<String> {
    reports
        .iter()
        .filter(|r| r["event"] == "phase")
        .map(|r| r["to"].as_str().unwrap().to_owned())
        .collect()
}

fn first(reports: &[Value], event: &str, to: Option<&str>) -> Value {
    reports
        .iter()
        .find(|r| r["event"] == event && to.is_none_or(|to| r["to"] == to))
        .unwrap_or_else(|| panic!("no {event} {to:?} in {reports:#?}"))
        .clone()
}

fn seconds_between(earlier: u64, later: &Value) -> f64 {
    (later["mono_ns"].as_u64().unwrap() as f64 - earlier as f64) / 1e9
}

#[test]
fn sigterm_drains_at_once_then_exits_zero_after_the_last_stream_and_the_drain_delay() {
    let mut child = holder(
        &[
            ("GS_DRAIN_DELAY_SECONDS", "0.5"),
            ("GS_SHUTDOWN_TIMEOUT_SECONDS", "20"),
        ],
        &["--streams", "2", "--end-after-signal-ms", "200"],
    );
    let signalled = monotonic_ns();
    ChildProcess::signal(child.pid(), libc::SIGTERM);
    let status = child.wait_exit(LONG);
    let reports = reports(&mut child);
    assert_eq!(status.code(), Some(0), "{reports:#?}");
    assert_eq!(phases(&reports), ["draining", "stopping", "stopped"]);
    let draining = first(&reports, "phase", Some("draining"));
    assert_eq!(
        draining["active_streams"], 2,
        "streams still open while draining"
    );
    let stopping = first(&reports, "phase", Some("stopping"));
    assert_eq!(stopping["active_streams"], 0);
    // Both streams ended before Stopping, and the drain delay was honoured.
    let ends: Vec<_> = reports
        .iter()
        .filter(|r| r["event"] == "stream_end")
        .collect();
    assert_eq!(ends.len(), 2);
    for end in ends {
        assert!(end["mono_ns"].as_u64() < stopping["mono_ns"].as_u64());
    }
    assert!(seconds_between(signalled, &stopping) >= 0.5);
    // The hook ran in Stopping with the time left before the 20 s deadline.
    let hook = first(&reports, "hook", None);
    let left = hook["remaining_s"].as_f64().unwrap();
    assert!(left > 0.0 && left < 20.0, "{left}");
}

#[test]
fn a_stream_that_never_ends_meets_closing_streams_then_the_deadline() {
    let mut child = holder(
        &[
            ("GS_DRAIN_DELAY_SECONDS", "0"),
            ("GS_SHUTDOWN_TIMEOUT_SECONDS", "1.5"),
            ("GS_CLOSE_NOTICE_SECONDS", "0.5"),
            ("GS_HOOK_BUDGET_SECONDS", "0.5"),
        ],
        &["--stuck", "1"],
    );
    let signalled = monotonic_ns();
    ChildProcess::signal(child.pid(), libc::SIGTERM);
    let status = child.wait_exit(LONG);
    let reports = reports(&mut child);
    assert_eq!(status.code(), Some(0), "{reports:#?}");
    assert_eq!(
        phases(&reports),
        ["draining", "closing_streams", "stopping", "stopped"]
    );
    let closing = first(&reports, "phase", Some("closing_streams"));
    assert!(
        seconds_between(signalled, &closing) >= 0.5,
        "closing streams came before deadline - hook budget - notice"
    );
    let stopping = first(&reports, "phase", Some("stopping"));
    assert_eq!(
        stopping["active_streams"], 1,
        "the stuck stream is still open when the hooks' budget begins"
    );
    assert!(seconds_between(signalled, &stopping) >= 1.0);
    // The hook got the budget, not the leftovers of a deadline.
    let hook = first(&reports, "hook", None);
    assert!(hook["remaining_s"].as_f64().unwrap() > 0.2, "{hook}");
}

#[test]
fn streams_asked_to_close_end_before_the_deadline() {
    let mut child = holder(
        &[
            ("GS_DRAIN_DELAY_SECONDS", "0"),
            ("GS_SHUTDOWN_TIMEOUT_SECONDS", "10"),
            ("GS_CLOSE_NOTICE_SECONDS", "9"),
            ("GS_HOOK_BUDGET_SECONDS", "0.5"),
        ],
        &["--endless", "3"],
    );
    let signalled = monotonic_ns();
    ChildProcess::signal(child.pid(), libc::SIGTERM);
    assert_eq!(child.wait_exit(LONG).code(), Some(0));
    let reports = reports(&mut child);
    assert_eq!(
        phases(&reports),
        ["draining", "closing_streams", "stopping", "stopped"]
    );
    let closed = reports
        .iter()
        .filter(|r| r["event"] == "stream_closed_on_notice")
        .count();
    assert_eq!(closed, 3);
    // Stopping followed the last close, long before the 10 s deadline.
    let stopping = first(&reports, "phase", Some("stopping"));
    assert_eq!(stopping["active_streams"], 0);
    assert!(seconds_between(signalled, &stopping) < 9.0);
}

#[test]
fn the_wake_after_the_last_stream_is_event_driven() {
    // Closing time is 15 s away: only the last stream's end can move the
    // sequence on before it. The measured gap is reported, not asserted
    // tightly (the benchmarks measure it properly).
    let mut child = holder(
        &[
            ("GS_DRAIN_DELAY_SECONDS", "0"),
            ("GS_SHUTDOWN_TIMEOUT_SECONDS", "20"),
            ("GS_CLOSE_NOTICE_SECONDS", "5"),
        ],
        &["--streams", "1", "--end-after-signal-ms", "300"],
    );
    ChildProcess::signal(child.pid(), libc::SIGTERM);
    assert_eq!(child.wait_exit(LONG).code(), Some(0));
    let reports = reports(&mut child);
    let end = first(&reports, "stream_end", None)["mono_ns"]
        .as_u64()
        .unwrap();
    let stopping = first(&reports, "phase", Some("stopping"));
    let gap = seconds_between(end, &stopping);
    println!(
        "last stream end -> Stopping observed by a listener: {:.3} ms",
        gap * 1e3
    );
    assert!(
        gap < 5.0,
        "Stopping came {gap} s after the last stream ended"
    );
}

/// SIGTERM, then (once Draining) `second`: the exit code and the reports.
fn second_signal(
    env: &[(&str, &str)],
    second: libc::c_int,
    wait: Duration,
) -> (Option<i32>, Vec<Value>) {
    let mut child = holder(env, &[]);
    ChildProcess::signal(child.pid(), libc::SIGTERM);
    child.wait_for_line("\"draining\"", LONG);
    ChildProcess::signal(child.pid(), second);
    let code = child.wait_exit(wait).code();
    (code, reports(&mut child))
}

const ONE_SEQUENCE: [&str; 3] = ["draining", "stopping", "stopped"];

#[test]
fn a_second_sigterm_during_the_drain_delay_is_ignored() {
    let (code, reports) = second_signal(&[("GS_DRAIN_DELAY_SECONDS", "0.8")], libc::SIGTERM, LONG);
    assert_eq!(code, Some(0));
    assert_eq!(phases(&reports), ONE_SEQUENCE);
}

#[test]
fn a_second_sigint_exits_at_once() {
    let (code, reports) = second_signal(
        &[("GS_DRAIN_DELAY_SECONDS", "15")],
        libc::SIGINT,
        Duration::from_secs(5),
    );
    assert_eq!(code, Some(128 + libc::SIGINT));
    assert!(!phases(&reports).contains(&"stopped".to_owned()));
}

#[test]
fn sigint_alone_starts_the_sequence() {
    let mut child = holder(&[("GS_DRAIN_DELAY_SECONDS", "0")], &[]);
    ChildProcess::signal(child.pid(), libc::SIGINT);
    assert_eq!(child.wait_exit(LONG).code(), Some(0));
    assert_eq!(phases(&reports(&mut child)), ONE_SEQUENCE);
}

#[test]
fn the_exit_policy_makes_a_second_sigterm_exit() {
    let env = [
        ("GS_DRAIN_DELAY_SECONDS", "15"),
        ("GS_SECOND_SIGNAL", "exit"),
    ];
    let (code, _) = second_signal(&env, libc::SIGTERM, Duration::from_secs(5));
    assert_eq!(code, Some(128 + libc::SIGTERM));
}

#[test]
fn the_ignore_policy_makes_a_second_sigint_harmless() {
    let env = [
        ("GS_DRAIN_DELAY_SECONDS", "0.5"),
        ("GS_SECOND_SIGNAL", "ignore"),
    ];
    let (code, reports) = second_signal(&env, libc::SIGINT, LONG);
    assert_eq!(code, Some(0));
    assert_eq!(phases(&reports), ONE_SEQUENCE);
}

#[test]
fn begin_shutdown_then_sigterm_runs_one_sequence() {
    let mut child = holder(
        &[("GS_DRAIN_DELAY_SECONDS", "0.5")],
        &["--begin-shutdown-after-ms", "50"],
    );
    child.wait_for_line("begin_shutdown_called", LONG);
    ChildProcess::signal(child.pid(), libc::SIGTERM);
    assert_eq!(child.wait_exit(LONG).code(), Some(0));
    let reports = reports(&mut child);
    assert_eq!(phases(&reports), ["draining", "stopping", "stopped"]);
    assert_eq!(reports.iter().filter(|r| r["event"] == "hook").count(), 1);
}

#[test]
fn the_exit_watchdog_ends_a_host_that_does_not_exit() {
    let mut child = holder(
        &[
            ("GS_DRAIN_DELAY_SECONDS", "0"),
            ("GS_EXIT_WATCHDOG_SECONDS", "0.3"),
        ],
        &["--hang"],
    );
    ChildProcess::signal(child.pid(), libc::SIGTERM);
    child.wait_for_line("hanging", LONG);
    // Not 0: a wedged host must not look like a clean exit.
    assert_eq!(
        child.wait_exit(LONG).code(),
        Some(i32::from(last_call::DEFAULT_EXIT_WATCHDOG_STATUS))
    );
    let stderr = child.stderr();
    assert!(stderr.contains("exit watchdog"), "{stderr}");
    assert!(stderr.contains("phase stopped"), "{stderr}");
}

#[test]
fn every_malformed_variable_is_rejected_by_name() {
    for (variable, value) in [
        ("GS_DRAIN_DELAY_SECONDS", "soon"),
        ("GS_DRAIN_DELAY_SECONDS", "-1"),
        ("GS_SHUTDOWN_TIMEOUT_SECONDS", "NaN"),
        ("GS_SHUTDOWN_TIMEOUT_SECONDS", "-inf"),
        ("GS_CLOSE_NOTICE_SECONDS", "30"),
        ("GS_HOOK_BUDGET_SECONDS", "26"),
        ("GS_EXIT_WATCHDOG_STATUS", "0"),
        ("GS_SECOND_SIGNAL", "twice"),
        ("GS_EXIT_WATCHDOG_SECONDS", "-3"),
    ] {
        let output = Command::new(example("stream_holder"))
            .env(variable, value)
            .output()
            .expect("run stream_holder");
        assert_eq!(output.status.code(), Some(2), "{variable}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}={value}: {stderr}");
    }
    // A value that is not UTF-8 is refused, not silently defaulted.
    use std::os::unix::ffi::OsStrExt;
    let output = Command::new(example("stream_holder"))
        .env(
            "GS_SHUTDOWN_TIMEOUT_SECONDS",
            std::ffi::OsStr::from_bytes(b"2\xff"),
        )
        .output()
        .expect("run stream_holder");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GS_SHUTDOWN_TIMEOUT_SECONDS"), "{stderr}");
    assert!(stderr.contains("UTF-8"), "{stderr}");
}

#[test]
fn sigterm_to_a_forked_child_drains_only_the_child() {
    let mut parent = holder(&[("GS_DRAIN_DELAY_SECONDS", "0")], &["--fork"]);
    // `holder` saw the first ready line; make sure both are up.
    let mut pids = std::collections::HashMap::new();
    for line in parent.seen.clone() {
        let report = json(&line);
        pids.insert(
            report["who"].as_str().unwrap().to_owned(),
            report["pid"].as_i64().unwrap() as i32,
        );
    }
    while pids.len() < 2 {
        let report = json(&parent.wait_for_line("\"ready\"", LONG));
        pids.insert(
            report["who"].as_str().unwrap().to_owned(),
            report["pid"].as_i64().unwrap() as i32,
        );
    }
    ChildProcess::signal(pids["child"], libc::SIGTERM);
    let exited = json(&parent.wait_for_line("child_exited", LONG));
    assert_eq!(exited["code"], 0);
    assert_eq!(exited["phase"], "serving", "the parent must not drain");
    // Now the parent's own SIGTERM still works, once.
    ChildProcess::signal(parent.pid(), libc::SIGTERM);
    assert_eq!(parent.wait_exit(LONG).code(), Some(0));
    let reports = reports(&mut parent);
    let by = |who: &str| -> Vec<String> {
        phases(
            &reports
                .iter()
                .filter(|r| r["who"] == who)
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(by("child"), ["draining", "stopping", "stopped"]);
    assert_eq!(by("parent"), ["draining", "stopping", "stopped"]);
}

#[test]
fn sigterm_to_the_parent_leaves_a_forked_child_serving() {
    use std::io::Write;
    let mut parent = holder(&[("GS_DRAIN_DELAY_SECONDS", "0")], &["--fork"]);
    let mut child_pid = None;
    for line in parent.seen.clone() {
        let report = json(&line);
        if report["who"] == "child" {
            child_pid = report["pid"].as_i64();
        }
    }
    let child_pid = match child_pid {
        Some(pid) => pid as i32,
        None => json(&parent.wait_for_line("\"child\"", LONG))["pid"]
            .as_i64()
            .unwrap() as i32,
    };
    // The grandchild is not ours to reap: make sure it dies with the test.
    struct KillOnDrop(i32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let _child_guard = KillOnDrop(child_pid);

    ChildProcess::signal(parent.pid(), libc::SIGTERM);
    parent.wait_for_line("\"exit\"", LONG);
    let stdin = parent.child.stdin.as_mut().unwrap();
    stdin.write_all(b"phase\n").unwrap();
    stdin.flush().unwrap();
    let report = json(&parent.wait_for_line("phase_report", LONG));
    assert_eq!(report["who"], "child");
    assert_eq!(
        report["phase"], "serving",
        "the child must not drain with its parent"
    );
    ChildProcess::signal(child_pid, libc::SIGTERM);
    let stopped = parent.wait_for_line("\"stopped\"", LONG);
    assert_eq!(json(&stopped)["who"], "child");
}
