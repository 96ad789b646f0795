//! The runtime against a hostile C host (tests/c/hostile_host.c): a
//! callback that blocks forever, a hook that hangs beside a stream that
//! never ends, signals after `gs_begin_shutdown()`, callbacks that remove
//! themselves, blocking waits from callbacks and hooks, and fork() while a
//! callback runs. Each mode runs as a real process compiled by the system C
//! compiler; every wait is bounded and every child is killed by its test.

mod common;

use common::ChildProcess;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

fn hostile_host() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| common::compile_c("tests/c/hostile_host.c", "hostile_host"))
}

fn start(mode: &str, env: &[(&str, &str)]) -> ChildProcess {
    let mut command = Command::new(hostile_host());
    command.arg(mode);
    common::clear_gs_environment(&mut command);
    command.envs(env.iter().copied());
    ChildProcess::spawn(command)
}

fn value_after(line: &str, prefix: &str) -> f64 {
    line.trim()
        .strip_prefix(prefix)
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no number after {prefix:?} in {line:?}"))
}

#[test]
fn a_callback_that_blocks_forever_cannot_stall_the_sequence_and_the_watchdog_ends_the_process() {
    let mut child = start(
        "blocking-callback",
        &[
            ("GS_DRAIN_DELAY_SECONDS", "0"),
            ("GS_SHUTDOWN_TIMEOUT_SECONDS", "1"),
            ("GS_CLOSE_NOTICE_SECONDS", "0.2"),
            ("GS_HOOK_BUDGET_SECONDS", "0.2"),
            ("GS_EXIT_WATCHDOG_SECONDS", "1"),
        ],
    );
    child.wait_for_line("ready", LONG);
    let signalled = Instant::now();
    ChildProcess::signal(child.pid(), libc::SIGTERM);
    let status = child.wait_exit(LONG);
    let took = signalled.elapsed();
    child.read_to_end(LONG);
    // The callback blocked, and the sequence reached Stopped on its own
    // schedule all the same (the two lines come from two threads, in
    // either order).
    assert!(
        child.seen.iter().any(|l| l.contains("blocking forever")),
        "{:?}",
        child.seen
    );
    let stopped = child
        .seen
        .iter()
        .find(|l| l.starts_with("stopped reached at"))
        .unwrap_or_else(|| panic!("{:?}", child.seen))
        .clone();
    assert!(
        value_after(&stopped, "stopped reached at") < 10.0,
        "{stopped}"
    );
    assert_eq!(
        status.code(),
        Some(i32::from(last_call::DEFAULT_EXIT_WATCHDOG_STATUS))
    );
    // Stopped + watchdog (2 s), bounded generously for a shared machine.
    assert!(took < Duration::from_secs(15), "{took:?}");
    let stderr = child.stderr();
    assert!(stderr.contains("exit watchdog"), "{stderr}");
    assert!(stderr.contains("phase stopped"), "{stderr}");
    assert!(stderr.contains("phase callback #"), "{stderr}");
    assert_eq!(
        stderr.matches("exit watchdog").count(),
        1,
        "one line: {stderr}"
    );
}

#[test]
fn an_instant_hook_keeps_its_budget_beside_a_hung_hook_and_a_stream_that_never_ends() {
    let mut child = start(
        "hung-hook",
        &[
            ("GS_DRAIN_DELAY_SECONDS", "0"),
            ("GS_SHUTDOWN_TIMEOUT_SECONDS", "2"),
            ("GS_CLOSE_NOTICE_SECONDS", "0.5"),
            ("GS_HOOK_BUDGET_SECONDS", "1"),
            ("GS_EXIT_WATCHDOG_SECONDS", "5"),
        ],
    );
    child.wait_for_line("ready", LONG);
    ChildProcess::signal(child.pid(), libc::SIGTERM);
    let hangs = child.wait_for_line("hook hangs: given", LONG);
    let instant = child.wait_for_line("hook instant: given", LONG);
    // Two groups share the 1 s budget: each is given about half of it.
    assert!(value_after(&hangs, "hook hangs: given") > 0.2, "{hangs}");
    assert!(
        value_after(&instant, "hook instant: given") > 0.1,
        "{instant}"
    );
    let stopped = child.wait_for_line("stopped reached at", LONG);
    assert!(value_after(&stopped, "stopped reached at") < 10.0);
    assert_eq!(child.wait_exit(LONG).code(), Some(0));
    let stderr = child.stderr();
    assert!(
        stderr.contains("shutdown hook \"hangs\" overran"),
        "{stderr}"
    );
    assert!(!stderr.contains("\"instant\" overran"), "{stderr}");
    assert!(
        stderr.contains("1 stream(s) still open")
            && stderr.contains("when the hooks' budget began"),
        "{stderr}"
    );
}

#[test]
fn a_hook_whose_turn_comes_after_the_deadline_is_not_run_and_not_called_overrunning() {
    // SIGSTOP in Draining, SIGCONT well past the deadline (as a node under
    // memory pressure, a debugger or a frozen cgroup would): the hook's
    // share is zero. Before, the instant hook was started, not waited for,
    // and reported overran ("shutdown hook \"instant\" overran its share
    // (0.000 s)").
    let mut child = start(
        "stopped-past-deadline",
        &[
            ("GS_DRAIN_DELAY_SECONDS", "1"),
            ("GS_SHUTDOWN_TIMEOUT_SECONDS", "2"),
            ("GS_EXIT_WATCHDOG_SECONDS", "20"),
        ],
    );
    child.wait_for_line("ready", LONG);
    ChildProcess::signal(child.pid(), libc::SIGTERM);
    child.wait_for_line("draining at", LONG);
    ChildProcess::signal(child.pid(), libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    ChildProcess::signal(child.pid(), libc::SIGCONT);
    child.wait_for_line("stopped reached at", LONG);
    assert_eq!(child.wait_exit(LONG).code(), Some(0));
    let stderr = child.stderr();
    assert!(
        stderr.contains("shutdown hook \"instant\" not run: no time left"),
        "{stderr}"
    );
    assert!(!stderr.contains("overran"), "{stderr}");
    child.read_to_end(LONG);
    assert!(
        !child.seen.iter().any(|line| line.contains("hook instant")),
        "{:?}",
        child.seen
    );
}

/// `gs_begin_shutdown()`, then `first` and `second` signals; returns the
/// exit status.
fn begin_then(policy: Option<&str>, first: libc::c_int, second: Option<libc::c_int>) -> i32 {
    let mut env = vec![
        ("GS_DRAIN_DELAY_SECONDS", "0"),
        ("GS_SHUTDOWN_TIMEOUT_SECONDS", "3"),
        ("GS_CLOSE_NOTICE_SECONDS", "0.5"),
        ("GS_HOOK_BUDGET_SECONDS", "0.5"),
        ("GS_EXIT_WATCHDOG_SECONDS", "5"),
    ];
    if let Some(policy) = policy {
        env.push(("GS_SECOND_SIGNAL", policy));
    }
    let mut child = start("begin-then-signals", &env);
    child.wait_for_line("ready", LONG);
    ChildProcess::signal(child.pid(), first);
    if let Some(second) = second {
        // Two different pending signals are delivered lowest number first;
        // give the first time to be handled so that the order is the one
        // under test.
        std::thread::sleep(Duration::from_millis(300));
        ChildProcess::signal(child.pid(), second);
    }
    child
        .wait_exit(LONG)
        .code()
        .unwrap_or_else(|| panic!("killed by a signal"))
}

#[test]
fn after_begin_shutdown_the_first_signal_is_a_first_signal_under_every_policy() {
    // One signal after gs_begin_shutdown() is the first signal received:
    // never the second-signal policy, whatever it is.
    for policy in [None, Some("ignore"), Some("exit")] {
        assert_eq!(begin_then(policy, libc::SIGTERM, None), 0, "{policy:?}");
        assert_eq!(begin_then(policy, libc::SIGINT, None), 0, "{policy:?}");
    }
}

#[test]
fn only_the_second_signal_received_meets_the_policy() {
    // Default: a second SIGINT exits (130), whatever came first.
    assert_eq!(begin_then(None, libc::SIGTERM, Some(libc::SIGINT)), 130);
    // ignore: nothing exits early.
    assert_eq!(
        begin_then(Some("ignore"), libc::SIGTERM, Some(libc::SIGINT)),
        0
    );
    // exit: the second one exits, with its own number.
    assert_eq!(
        begin_then(Some("exit"), libc::SIGTERM, Some(libc::SIGINT)),
        130
    );
    assert_eq!(
        begin_then(Some("exit"), libc::SIGINT, Some(libc::SIGTERM)),
        143
    );
}

#[test]
fn callbacks_that_remove_themselves_on_first_delivery_never_deadlock() {
    for _ in 0..3 {
        let mut child = start("remove-self", &[]);
        let status = child.wait_exit(LONG);
        child.read_to_end(LONG);
        let stdout = child.seen.join("\n");
        assert_eq!(status.code(), Some(0), "{stdout}\n{}", child.stderr());
        assert!(
            stdout.contains("rounds 2000, removal failures 0"),
            "{stdout}"
        );
        assert!(stdout.contains("calls after removal 0"), "{stdout}");
    }
}

#[test]
fn blocking_waits_from_a_callback_or_a_hook_are_refused_at_once() {
    let mut child = start(
        "wait-in-callback",
        &[
            ("GS_DRAIN_DELAY_SECONDS", "0"),
            ("GS_SHUTDOWN_TIMEOUT_SECONDS", "5"),
            ("GS_CLOSE_NOTICE_SECONDS", "1"),
            ("GS_HOOK_BUDGET_SECONDS", "1"),
        ],
    );
    let status = child.wait_exit(LONG);
    child.read_to_end(LONG);
    let stdout = child.seen.join("\n");
    assert_eq!(status.code(), Some(0), "{stdout}\n{}", child.stderr());
    let reentrant = 12; // GS_ERR_REENTRANT
    for what in [
        "callback wait_for_phase status",
        "callback wait_for_streams status",
        "hook wait_for_phase status",
    ] {
        let line = stdout.lines().find(|l| l.starts_with(what)).unwrap();
        assert_eq!(value_after(line, what), f64::from(reentrant), "{line}");
    }
    let took = stdout
        .lines()
        .find(|l| l.starts_with("callback waits took"))
        .unwrap();
    assert!(value_after(took, "callback waits took") < 1.0, "{took}");
}

#[test]
fn a_child_forked_while_a_callback_runs_works_normally() {
    let mut child = start("fork-in-callback", &[("GS_DRAIN_DELAY_SECONDS", "0")]);
    let status = child.wait_exit(LONG);
    child.read_to_end(LONG);
    let stdout = child.seen.join("\n");
    assert!(
        stdout.contains("child exited with 0"),
        "{stdout}\n{}",
        child.stderr()
    );
    assert_eq!(status.code(), Some(0));
}

/// `mode` with its stderr a pipe that the test holds but never reads
/// (`close_reader`: whose read end the test closes at once).
fn start_with_unread_stderr(
    mode: &str,
    env: &[(&str, &str)],
    close_reader: bool,
) -> (ChildProcess, Option<std::process::ChildStderr>) {
    let mut command = Command::new(hostile_host());
    command.arg(mode);
    common::clear_gs_environment(&mut command);
    command.envs(env.iter().copied());
    let mut child = ChildProcess::spawn_keeping_stderr(command);
    let stderr = child.child.stderr.take();
    if close_reader {
        drop(stderr);
        return (child, None);
    }
    (child, stderr)
}

#[test]
fn the_watchdog_ends_the_process_even_when_stderr_is_a_full_pipe_nobody_reads() {
    // Before: the watchdog wrote its line with a blocking write before
    // _exit, and the process never ended.
    let (mut child, _unread) = start_with_unread_stderr(
        "full-stderr",
        &[
            ("GS_DRAIN_DELAY_SECONDS", "0"),
            ("GS_SHUTDOWN_TIMEOUT_SECONDS", "1"),
            ("GS_CLOSE_NOTICE_SECONDS", "0.2"),
            ("GS_HOOK_BUDGET_SECONDS", "0.2"),
            ("GS_EXIT_WATCHDOG_SECONDS", "0.5"),
        ],
        false,
    );
    child.wait_for_line("stderr filled with", LONG);
    let ready = Instant::now();
    child.wait_for_line("ready", LONG);
    // The sequence's own warnings (a stream still open) do not stall it.
    child.wait_for_line("stopped reached at", LONG);
    let dropped = child.wait_for_line("log lines dropped", LONG);
    assert!(
        value_after(&dropped, "log lines dropped") >= 1.0,
        "{dropped}"
    );
    let status = child.wait_exit(LONG);
    assert_eq!(
        status.code(),
        Some(i32::from(last_call::DEFAULT_EXIT_WATCHDOG_STATUS)),
        "{status:?}"
    );
    // Shutdown timeout + watchdog (1.5 s), bounded generously.
    assert!(
        ready.elapsed() < Duration::from_secs(15),
        "{:?}",
        ready.elapsed()
    );
}

#[test]
fn a_warning_to_a_stderr_pipe_with_no_reader_does_not_kill_a_c_host_before_its_hooks() {
    // Before: the warning raised SIGPIPE, at its default in a C host, and
    // the process died of signal 13 before its hook ran.
    let (mut child, _) = start_with_unread_stderr(
        "no-reader-stderr",
        &[
            ("GS_DRAIN_DELAY_SECONDS", "0"),
            ("GS_SHUTDOWN_TIMEOUT_SECONDS", "1"),
            ("GS_CLOSE_NOTICE_SECONDS", "0.2"),
            ("GS_HOOK_BUDGET_SECONDS", "0.5"),
        ],
        true,
    );
    let status = child.wait_exit(LONG);
    child.read_to_end(LONG);
    let stdout = child.seen.join("\n");
    assert_eq!(status.code(), Some(0), "{status:?}: {stdout}");
    assert!(stdout.contains("hook ran at"), "{stdout}");
    assert!(stdout.contains("stopped reached at"), "{stdout}");
}

#[test]
fn a_probe_listener_whose_runtime_cannot_be_built_is_an_error_with_nothing_left_behind() {
    // The listening socket fits under RLIMIT_NOFILE, its runtime's epoll
    // does not: the start must fail (not GS_OK with no listener), record no
    // descriptor for the fork handler to close in a child (the host's own
    // file may have that number by then), and leave a retry free to start.
    let mut child = start("emfile-probe", &[]);
    let status = child.wait_exit(LONG);
    child.read_to_end(LONG);
    let stdout = child.seen.join("\n");
    assert_eq!(status.code(), Some(0), "{stdout}\n{}", child.stderr());
    let started = child
        .seen
        .iter()
        .find(|l| l.starts_with("start status"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(
        value_after(started, "start status"),
        9.0,
        "GS_ERR_OS: {stdout}"
    );
    assert!(stdout.contains("child kept the host's file 1"), "{stdout}");
    assert!(stdout.contains("second start status 0"), "{stdout}");
}

#[test]
fn children_forked_while_a_thread_publishes_to_the_hub_answer_their_first_send() {
    // Each child's first gs_hub_send takes the locks the publisher may have
    // held at the fork: each must be taken by the fork handlers and given
    // back on both sides (reported: 5 of 600 children hung).
    let mut child = start(
        "fork-while-publishing",
        &[("GS_STREAM_SECRET", "a fork test secret of 32 bytes or more")],
    );
    let status = child.wait_exit(Duration::from_secs(120));
    child.read_to_end(LONG);
    let stdout = child.seen.join("\n");
    assert!(
        stdout.contains("forks 600, hung 0"),
        "{stdout}\n{}",
        child.stderr()
    );
    assert!(stdout.contains("wrong answers 0"), "{stdout}");
    assert_eq!(status.code(), Some(0), "{stdout}");
}
