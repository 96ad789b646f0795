//! The C host (examples/c_host/c_host.c), compiled by the system C compiler
//! against the checked-in header and the built shared library, run for
//! real: threads and draining, then a real SIGTERM, then both again under
//! valgrind memcheck.

mod common;

use common::{root, ChildProcess};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// Compiles the C host once per test process.
fn c_host() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| common::compile_c("examples/c_host/c_host.c", "c_host"))
}

fn command(valgrind: bool, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = if valgrind {
        let mut command = Command::new("valgrind");
        // "possibly lost" is left out on purpose: the runtime's core thread
        // is still alive (in its exit watchdog) when main returns, and
        // memcheck reports a live thread's TLS block that way.
        command.args([
            "-q",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
        ]);
        command.arg(c_host());
        command
    } else {
        Command::new(c_host())
    };
    command.args(args);
    common::clear_gs_environment(&mut command);
    command.env("GS_EXIT_WATCHDOG_SECONDS", "0");
    command.envs(env.iter().copied());
    command
}

fn run_drain(valgrind: bool) {
    let output = command(valgrind, &["drain", "4", "200"], &[])
        .output()
        .expect("run c_host");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("phase=draining, active streams=4"),
        "{stdout}"
    );
    assert!(
        stdout.contains("all streams ended: active=0 started=4 finished=4"),
        "{stdout}"
    );
    assert!(stdout.contains("gs_streams_finished_total 4"), "{stdout}");
}

fn run_serve_with_sigterm(valgrind: bool, env: &[(&str, &str)], stream_ms: &str) -> String {
    run_serve_with(valgrind, env, &["serve", "3", stream_ms])
}

fn run_serve_with(valgrind: bool, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut host = ChildProcess::spawn(command(valgrind, args, env));
    host.wait_for_line("serving: pid", LONG);
    ChildProcess::signal(host.pid(), libc::SIGTERM);
    let status = host.wait_exit(LONG);
    host.read_to_end(LONG);
    let stdout = host.seen.join("\n");
    let stderr = host.stderr();
    assert_eq!(
        status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

#[test]
fn the_c_host_drains_and_waits_for_its_stream_threads() {
    run_drain(false);
}

#[test]
fn the_c_host_exits_zero_after_sigterm_once_its_streams_finish() {
    let stdout = run_serve_with_sigterm(false, &[("GS_DRAIN_DELAY_SECONDS", "0.2")], "1500");
    // Callbacks are delivered on their own thread, so "draining -> stopping"
    // and the hook (on a thread of its own) may print in either order.
    assert!(stdout.contains("phase draining -> stopping"), "{stdout}");
    let order = [
        "phase serving -> draining (active streams: 3)",
        "stream",
        "shutdown hook",
        "phase stopping -> stopped",
        "stopped: exiting 0",
    ];
    let mut rest = stdout.as_str();
    for step in order {
        let at = rest
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing or out of order in:\n{stdout}"));
        rest = &rest[at + step.len()..];
    }
    assert_eq!(stdout.matches("finished").count(), 3, "{stdout}");
}

#[test]
fn the_c_host_closes_endless_streams_before_the_deadline() {
    let stdout = run_serve_with_sigterm(
        false,
        &[
            ("GS_DRAIN_DELAY_SECONDS", "0"),
            ("GS_SHUTDOWN_TIMEOUT_SECONDS", "1.5"),
            ("GS_CLOSE_NOTICE_SECONDS", "0.5"),
            ("GS_HOOK_BUDGET_SECONDS", "0.5"),
        ],
        "600000",
    );
    assert_eq!(stdout.matches("asked to close").count(), 3, "{stdout}");
    // Streams 0 and 2 are resumable (each at its moment of the spread),
    // stream 1 is pod-bound: it runs to the streams' last moment, the end
    // of the window, 0.375 s after ClosingStreams (notice 0.5 s less the
    // margin, a quarter of it).
    assert_eq!(
        stdout.matches("(resumable: reconnect)").count(),
        2,
        "{stdout}"
    );
    let pod_bound: Vec<f64> = stdout
        .lines()
        .filter_map(|line| line.split("(pod-bound: final event) ends after ").nth(1))
        .map(|rest| rest.trim_end_matches(" s").parse().unwrap())
        .collect();
    assert_eq!(pod_bound.len(), 1, "{stdout}");
    assert!((0.2..=0.375).contains(&pod_bound[0]), "{stdout}");
    assert!(stdout.contains("-> closing_streams"), "{stdout}");
    assert!(stdout.contains("stopped: exiting 0"), "{stdout}");
}

#[test]
fn the_c_host_answers_probes_on_the_runtime_port_until_it_exits() {
    let mut child = ChildProcess::spawn(command(
        false,
        &["serve", "2", "600000"],
        &[
            ("GS_PROBE_ADDR", "127.0.0.1:0"),
            ("GS_DRAIN_TOKEN", "c-t0ken"),
            ("GS_DRAIN_DELAY_SECONDS", "0"),
            ("GS_SHUTDOWN_TIMEOUT_SECONDS", "2"),
            ("GS_CLOSE_NOTICE_SECONDS", "0.5"),
            ("GS_HOOK_BUDGET_SECONDS", "0.5"),
        ],
    ));
    let line = child.wait_for_line("probes on http://", LONG);
    let addr: std::net::SocketAddr = line
        .trim()
        .trim_start_matches("probes on http://")
        .parse()
        .unwrap();
    child.wait_for_line("serving: pid", LONG);
    let get = |path: &str| common::request(addr, "GET", path, &[]);
    assert_eq!(get("/readyz").0, 200);
    assert_eq!(get("/healthz").1, "alive\n");
    assert!(get("/metrics").1.contains("gs_active_streams 2"));
    assert_eq!(common::request(addr, "POST", "/drain", &[]).0, 401);
    let drained = common::request(
        addr,
        "POST",
        "/drain",
        &[("authorization", "Bearer c-t0ken")],
    );
    assert_eq!(drained.0, 200);
    assert_eq!(get("/readyz").1, "draining\n");
    ChildProcess::signal(child.pid(), libc::SIGTERM);
    // Alive (the main loop beats) and not ready, until the process exits.
    assert_eq!(get("/healthz").0, 200);
    assert_eq!(get("/readyz").0, 503);
    assert_eq!(child.wait_exit(LONG).code(), Some(0));
}

#[test]
fn the_c_host_runs_clean_under_valgrind_memcheck() {
    run_drain(true);
    run_serve_with_sigterm(true, &[("GS_DRAIN_DELAY_SECONDS", "0.2")], "1000");
}

#[test]
fn the_header_compiles_as_cxx_too() {
    let status = Command::new(std::env::var("CXX").unwrap_or_else(|_| "c++".into()))
        .args([
            "-std=c++17",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsyntax-only",
            "-x",
            "c++",
        ])
        .arg(root().join("include/last_call.h"))
        .status()
        .expect("run the C++ compiler");
    assert!(status.success());
}

/// When a line of the C host's output was printed, in seconds since it
/// started.
fn printed_at(stdout: &str, needle: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} missing in:\n{stdout}"));
    let stamp = line.trim_start_matches('[').split(" s]").next().unwrap();
    stamp.trim().parse().unwrap()
}

#[test]
fn with_no_hook_a_stuck_stream_keeps_the_whole_timeout() {
    // Timeout 4 s, no hook, and a stream that ignores its moment: nothing
    // is kept for hooks, so the streams have until the deadline, and the
    // defaults (notice, drain delay) scale down to fit 4 s. Before, the
    // 3 s default hooks' budget stopped waiting 1 s after the signal and
    // left 3 s unused (and the 5 s default notice did not even fit).
    let stdout = run_serve_with(
        false,
        &[("GS_SHUTDOWN_TIMEOUT_SECONDS", "4")],
        &["serve", "1", "600000", "nohook,stuck"],
    );
    assert!(stdout.contains("no hook"), "{stdout}");
    assert!(stdout.contains("drain delay default"), "{stdout}");
    let signalled = printed_at(&stdout, "phase serving -> draining");
    let stopping = printed_at(&stdout, "-> stopping");
    let stopped = printed_at(&stdout, "phase stopping -> stopped");
    // Stopping at the deadline (the phase callback prints a moment later
    // on a loaded machine: a generous upper bound).
    assert!(stopping - signalled >= 3.9, "{stdout}");
    assert!(stopped - signalled < 15.0, "{stdout}");
    assert!(stdout.contains("stuck until stopping"), "{stdout}");
}
