//! `fork()` from inside a phase listener and a shutdown hook: the child's
//! only thread is the runtime's delivery (or hook) thread, in the middle of
//! a callback. Before the fix the child was still "inside a callback": its
//! waits returned `Error::Reentrant`, and when the listener returned, that
//! thread went back to the parent's delivery loop and waited there for
//! ever (the child never ended). Now the child's waits work, and returning
//! from the callback ends the thread, and so the child, with status 0.
//!
//! Each child reports what its waits returned through a pipe and is bounded
//! by `alarm` (a hung child dies of SIGALRM); the parent waits for it at
//! most 30 s, then kills it.

use last_call_runtime::{Config, Error, Phase, Runtime};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

/// A pipe: (read end, write end).
fn pipe() -> (libc::c_int, libc::c_int) {
    let mut fds = [-1; 2];
    // SAFETY: room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

/// In the child, inside the callback: what the runtime's blocking waits
/// say there.
fn child_checks(report: libc::c_int) {
    // SAFETY: alarm only schedules SIGALRM for this process.
    unsafe { libc::alarm(10) };
    let runtime = Runtime::global();
    // The child starts afresh: Serving, no stream. A wait for Draining
    // times out (it does not refuse), a wait for the streams returns.
    let phase = match runtime.wait_for_phase(Phase::Draining, Some(Duration::from_millis(100))) {
        Err(Error::TimedOut(Phase::Serving)) => "phase:waited",
        Err(Error::Reentrant(_)) => "phase:reentrant",
        _ => "phase:other",
    };
    let streams = match runtime.wait_for_streams(Some(Duration::from_secs(1))) {
        Ok(true) => "streams:waited",
        Err(Error::Reentrant(_)) => "streams:reentrant",
        _ => "streams:other",
    };
    let line = format!("{phase} {streams}\n");
    // SAFETY: a valid buffer of its length, our pipe's write end.
    unsafe {
        libc::write(report, line.as_ptr().cast(), line.len());
        libc::close(report);
    }
}

/// Waits (bounded) for `pid`, killing it at the bound; its wait status.
fn reap(pid: libc::pid_t) -> libc::c_int {
    let begun = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: our own child.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            return status;
        }
        if begun.elapsed() > LONG {
            // SAFETY: our own child, hung.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: as above; it is dead or dying.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            return status;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Everything the child wrote to `read_fd` until it closed (or died).
fn read_report(read_fd: libc::c_int) -> String {
    let mut out = Vec::new();
    let mut buffer = [0u8; 256];
    loop {
        // SAFETY: a valid buffer of its length; our descriptor.
        let n = unsafe { libc::read(read_fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buffer[..n as usize]);
    }
    // SAFETY: ours, closed once.
    unsafe { libc::close(read_fd) };
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks a child forked inside a callback: it reported working waits and
/// ended with status 0 once the callback returned.
fn assert_child_worked(pid: libc::pid_t, read_fd: libc::c_int, write_fd: libc::c_int, what: &str) {
    // SAFETY: the parent's copy of the write end, so that the read below
    // sees the end of the pipe when the child's copy closes.
    unsafe { libc::close(write_fd) };
    let status = reap(pid);
    let report = read_report(read_fd);
    assert_eq!(
        report.trim(),
        "phase:waited streams:waited",
        "{what}: the child's waits"
    );
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{what}: the child did not end with status 0 when the callback returned \
         (signaled: {}, signal {})",
        libc::WIFSIGNALED(status),
        libc::WTERMSIG(status)
    );
}

#[test]
fn a_child_forked_inside_a_listener_or_a_hook_can_wait_and_ends_when_it_returns() {
    let runtime = Runtime::global();

    // A phase listener that forks (once, in this process).
    let (read_fd, write_fd) = pipe();
    let (forked, forked_rx) = mpsc::channel::<libc::pid_t>();
    let forked = std::sync::Mutex::new(forked);
    let once = AtomicBool::new(false);
    let parent = std::process::id();
    runtime
        .on_phase(move |change| {
            if change.to != Phase::Draining
                || std::process::id() != parent
                || once.swap(true, Ordering::SeqCst)
            {
                return;
            }
            // SAFETY: the child uses the runtime, formats one line, writes
            // it to a pipe and returns from the listener.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: the child's copy of the read end is not used.
                unsafe { libc::close(read_fd) };
                child_checks(write_fd);
                return; // back into the runtime's delivery thread
            }
            let _ = forked.lock().unwrap().send(pid);
        })
        .unwrap();
    runtime.set_draining(true).unwrap();
    let pid = forked_rx.recv_timeout(LONG).expect("the listener forked");
    assert!(pid > 0);
    assert_child_worked(pid, read_fd, write_fd, "listener");
    runtime.set_draining(false).unwrap();

    // A shutdown hook that forks.
    let (read_fd, write_fd) = pipe();
    let (forked, forked_rx) = mpsc::channel::<libc::pid_t>();
    runtime
        .configure(Config {
            drain_delay: Some(Duration::ZERO),
            shutdown_timeout: Duration::from_secs(5),
            ..Config::default()
        })
        .unwrap();
    runtime
        .register_shutdown_hook("forks", move |_| {
            // SAFETY: as for the listener.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: the child's copy of the read end is not used.
                unsafe { libc::close(read_fd) };
                child_checks(write_fd);
                return true; // back into the runtime's hook thread
            }
            let _ = forked.send(pid);
            true
        })
        .unwrap();
    runtime.begin_shutdown().unwrap();
    let pid = forked_rx.recv_timeout(LONG).expect("the hook forked");
    assert!(pid > 0);
    assert_child_worked(pid, read_fd, write_fd, "hook");
    assert_eq!(
        runtime.wait_for_phase(Phase::Stopped, Some(LONG)).unwrap(),
        Phase::Stopped
    );
    // The parent's own hook report is untouched by the child.
    let reports = runtime.hook_reports();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].finished, "{reports:?}");
}
