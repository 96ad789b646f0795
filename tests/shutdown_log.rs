//! The shutdown log through the C ABI, in real C hosts compiled by the
//! system C compiler and stopped by a real SIGTERM: the example C host
//! opts in (`gs_set_shutdown_log(1)`) and reports its streams' endings
//! (`gs_stream_ending_sent`); a C host that does not opt in writes none of
//! it, unless `GS_SHUTDOWN_LOG=1` asks; `GS_SHUTDOWN_LOG=0` silences a host
//! that opted in.

mod common;

use common::ChildProcess;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn c_host() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| common::compile_c("examples/c_host/c_host.c", "c_host"))
}

fn hostile_host() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| common::compile_c("tests/c/hostile_host.c", "hostile_host"))
}

/// Runs `program args` with `env`, sends SIGTERM once it says `ready`,
/// and returns its stderr's shutdown-log lines once it has exited 0.
fn shutdown_lines(program: &Path, args: &[&str], ready: &str, env: &[(&str, &str)]) -> Vec<String> {
    let mut command = Command::new(program);
    command.args(args);
    common::clear_gs_environment(&mut command);
    command.env("GS_EXIT_WATCHDOG_SECONDS", "0");
    command.envs(env.iter().copied());
    let mut host = ChildProcess::spawn(command);
    host.wait_for_line(ready, LONG);
    ChildProcess::signal(host.pid(), libc::SIGTERM);
    let status = host.wait_exit(LONG);
    host.read_to_end(LONG);
    let stderr = host.stderr();
    assert_eq!(
        status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{stderr}",
        host.seen.join("\n")
    );
    let prefix = format!("last-call: shutdown (pid {}) ", host.pid());
    stderr
        .lines()
        .filter(|line| line.starts_with("last-call: shutdown"))
        .inspect(|line| assert!(line.starts_with(&prefix), "{line}"))
        .map(|line| line[prefix.len()..].to_owned())
        .collect()
}

/// Three streams that never end on their own (two resumable, one
/// pod-bound), ended at their moments in the close notice.
const ENDLESS: &[&str] = &["serve", "3", "600000"];
const TIMINGS: &[(&str, &str)] = &[
    ("GS_DRAIN_DELAY_SECONDS", "0"),
    ("GS_SHUTDOWN_TIMEOUT_SECONDS", "1.5"),
    ("GS_CLOSE_NOTICE_SECONDS", "0.5"),
    ("GS_HOOK_BUDGET_SECONDS", "0.5"),
];

#[test]
fn the_example_c_host_opts_in_and_its_log_counts_each_ending() {
    let lines = shutdown_lines(c_host(), ENDLESS, "serving: pid", TIMINGS);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert_eq!(
        lines[0],
        "began on SIGTERM: 3 streams open; drain delay 0.0 s, deadline in 1.5 s \
         (streams asked to close from 0.5 s, hooks from 1.0 s)"
    );
    assert!(lines[1].starts_with("closing streams at "), "{}", lines[1]);
    assert!(
        lines[1].ends_with(
            " s: 3 streams still open; resumable ones are nudged to reconnect by 0.9 s, \
             pod-bound ones get their final event at 0.9 s"
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("stopping at ")
            && lines[2].contains(": 0 streams open; 1 hook to run within "),
        "{}",
        lines[2]
    );
    assert!(lines[3].starts_with("done in "), "{}", lines[3]);
    assert!(
        lines[3].contains(
            ": 3 streams open at the start: 0 ended on their own, 2 nudged to reconnect, \
             1 given their final event, 0 left open when the deadline came; \
             hooks: \"stop-workers\" finished in "
        ),
        "{}",
        lines[3]
    );
}

#[test]
fn gs_shutdown_log_0_silences_a_host_that_opted_in() {
    let env = [TIMINGS, &[("GS_SHUTDOWN_LOG", "0")]].concat();
    assert_eq!(
        shutdown_lines(c_host(), ENDLESS, "serving: pid", &env),
        Vec::<String>::new()
    );
}

#[test]
fn a_c_host_that_does_not_opt_in_writes_none_unless_gs_shutdown_log_asks() {
    // hostile_host never calls gs_set_shutdown_log.
    let timings = [
        ("GS_DRAIN_DELAY_SECONDS", "0.2"),
        ("GS_SHUTDOWN_TIMEOUT_SECONDS", "3"),
    ];
    assert_eq!(
        shutdown_lines(
            hostile_host(),
            &["stopped-past-deadline"],
            "ready",
            &timings
        ),
        Vec::<String>::new()
    );
    let env = [&timings[..], &[("GS_SHUTDOWN_LOG", "1")]].concat();
    let lines = shutdown_lines(hostile_host(), &["stopped-past-deadline"], "ready", &env);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].starts_with("began on SIGTERM: 0 streams open; drain delay 0.2 s"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(": 0 streams open; 1 hook to run within "),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(": 0 streams open at the start: 0 ended on their own")
            && lines[2].contains("hooks: \"instant\" finished in "),
        "{}",
        lines[2]
    );
}
