//! A SIGTERM that lands at the worst moment: on a thread inside a wake of
//! the phase word. With the portable wait (std's `Mutex` + `Condvar`,
//! `make test-portable`) the handler used to take that word's mutex; on the
//! thread already holding it, it waited for itself, and the process hung in
//! Serving (3 of 600 processes). Each round here is a real process (this
//! test binary, run as the child below) whose main thread flips
//! Serving <-> Draining as fast as it can (every flip locks the mutex in
//! its wake) when the signal comes; each must reach Stopped and exit 0.
//! Bounded: every child is given 10 s, then killed and counted as hung.

use last_call_runtime::{install_signal_handlers, Config, Phase, Runtime};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROLE: &str = "LAST_CALL_SIGNAL_STRESS_CHILD";
const PROCESSES: usize = 600;
const AT_ONCE: usize = 4;

/// The child: runs only when the test below starts this binary with ROLE.
#[test]
#[ignore = "run by a_sigterm_during_a_wake_never_hangs_the_process, in a child process"]
fn child_process() {
    if std::env::var_os(ROLE).is_none() {
        return;
    }
    let config = Config {
        drain_delay: Some(Duration::ZERO),
        shutdown_timeout: Duration::from_secs(2),
        close_notice: Some(Duration::ZERO),
        hook_budget: Some(Duration::from_millis(100)),
        exit_watchdog: None,
        ..Config::default()
    };
    install_signal_handlers(config).unwrap();
    let runtime = Runtime::global();
    println!("ready");
    // Until the signal's sequence refuses it: every flip wakes sleepers
    // (the sequence thread, the delivery thread), under the word's mutex
    // with the portable wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let _ = runtime.set_draining(true);
        if runtime.set_draining(false).is_err() {
            break;
        }
    }
    let reached = runtime.wait_for_phase(Phase::Stopped, Some(Duration::from_secs(20)));
    // SAFETY: ends this child at once with a status the parent reads.
    unsafe {
        libc::_exit(if matches!(reached, Ok(Phase::Stopped)) {
            0
        } else {
            3
        })
    };
}

struct Round {
    child: Child,
    started: Instant,
    /// When the child said "ready" (its handling installed).
    ready: std::sync::mpsc::Receiver<Instant>,
    ready_at: Option<Instant>,
    signalled: bool,
}

fn spawn_child() -> Round {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().unwrap();
    let (tell, ready) = std::sync::mpsc::channel();
    // Ends with the child's stdout.
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            match line {
                Ok(line) if line.ends_with("ready") => {
                    let _ = tell.send(Instant::now());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    Round {
        child,
        started: Instant::now(),
        ready,
        ready_at: None,
        signalled: false,
    }
}

#[test]
fn a_sigterm_during_a_wake_never_hangs_the_process() {
    // LAST_CALL_SIGNAL_STRESS_PROCESSES: more (or fewer) rounds by hand.
    let processes: usize = std::env::var("LAST_CALL_SIGNAL_STRESS_PROCESSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PROCESSES);
    let mut running: Vec<Round> = Vec::new();
    let (mut started, mut hung, mut failed) = (0, 0, 0);
    // Bounded: PROCESSES rounds, each at most 10 s.
    while started < processes || !running.is_empty() {
        while started < processes && running.len() < AT_ONCE {
            running.push(spawn_child());
            started += 1;
        }
        let mut index = 0;
        while index < running.len() {
            let round = &mut running[index];
            let age = round.started.elapsed();
            if round.ready_at.is_none() {
                round.ready_at = round.ready.try_recv().ok();
            }
            // The child flips from "ready" on; the signal lands at some
            // moment of it.
            let due = round
                .ready_at
                .is_some_and(|at| at.elapsed() >= Duration::from_micros(fastrand::u64(0..5_000)));
            if !round.signalled && due {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(round.child.id() as i32, libc::SIGTERM) };
                round.signalled = true;
            }
            match round.child.try_wait().unwrap() {
                Some(status) => {
                    if status.code() != Some(0) {
                        failed += 1;
                    }
                    running.swap_remove(index);
                    continue;
                }
                None if age > Duration::from_secs(10) => {
                    let _ = round.child.kill();
                    let _ = round.child.wait();
                    hung += 1;
                    running.swap_remove(index);
                    continue;
                }
                None => index += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        (hung, failed),
        (0, 0),
        "of {processes} processes, {hung} hung and {failed} failed"
    );
}
