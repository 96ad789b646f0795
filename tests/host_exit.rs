//! The host's exit gate across fork(): a parent that has said it is exiting
//! (its interpreter finalizes, say) may fork a child that goes on serving;
//! the child's runtime must call its code again.

mod common;

use last_call::{Phase, Runtime};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn a_child_forked_after_the_host_said_it_is_exiting_is_called_again() {
    common::require_process_per_test();
    let runtime = Runtime::global();
    runtime.host_exiting(Some(Duration::from_secs(5))).unwrap();
    // SAFETY: the child only calls into the runtime (whose fork handlers
    // leave it usable) and ends with `_exit`, running no test harness code.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let runtime = Runtime::global();
        let (heard, heard_rx) = mpsc::channel();
        let code = if runtime
            .on_phase(move |change| {
                let _ = heard.send(change.to);
            })
            .is_err()
            || runtime.set_draining(true).is_err()
        {
            10
        } else {
            match heard_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Phase::Draining) => 0,
                Ok(_) => 11,
                Err(_) => 12, // the gate stayed shut: the listener was never called
            }
        };
        // SAFETY: ends the child at once, as a forked child should.
        unsafe { libc::_exit(code) };
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = 0;
    // SAFETY: waits for the child this test forked, without blocking.
    while unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == 0 {
        if Instant::now() > deadline {
            // SAFETY: the child is this test's own.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the forked child did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(libc::WIFEXITED(status), "status {status}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "10: refused, 11: wrong phase, 12: never called"
    );
}
