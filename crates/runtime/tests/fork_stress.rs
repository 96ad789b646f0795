//! `fork()` at the worst moment: while other threads wake the phase word.
//! With the portable wait (std's `Mutex` + `Condvar`, `make test-portable`)
//! each wait word carries a mutex, held for a few instructions in every
//! wait and wake; a fork at that instant used to leave the child's copy
//! locked, and the child's first wait or wake on that word blocked for
//! ever. The fork handlers now take every word's lock before the fork.
//! Each child here flips the phase and waits on it, bounded by `alarm`:
//! a hung child dies of SIGALRM, which the parent counts (before the fix,
//! one in a few dozen).

use last_call_runtime::{Phase, Runtime};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const FORKS: usize = 300;

#[test]
fn a_child_forked_while_threads_wake_the_phase_word_can_use_it() {
    let runtime = Runtime::global();
    // The runtime's threads run (they wait on the words too).
    runtime.on_phase(|_| {}).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flippers: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let runtime = Runtime::global();
                while !stop.load(Ordering::Relaxed) {
                    let _ = runtime.set_draining(true);
                    let _ = runtime.set_draining(false);
                    let _ = runtime.wait_for_phase(Phase::Stopped, Some(Duration::from_micros(50)));
                }
            })
        })
        .collect();
    let (mut hung, mut failed) = (0, 0);
    for _ in 0..FORKS {
        // SAFETY: the child calls only the runtime and async-signal-safe
        // functions (alarm, _exit) before it ends.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: alarm and _exit are async-signal-safe.
            unsafe { libc::alarm(5) };
            let runtime = Runtime::global();
            let ok = runtime.set_draining(true).is_ok()
                && matches!(
                    runtime.wait_for_phase(Phase::Draining, Some(Duration::from_secs(5))),
                    Ok(Phase::Draining)
                )
                && runtime.set_draining(false).is_ok();
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(if ok { 0 } else { 3 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child; bounded by its alarm.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        if libc::WIFSIGNALED(status) {
            hung += 1;
            break; // one is enough, and each takes its alarm's 5 s
        } else if libc::WEXITSTATUS(status) != 0 {
            failed += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for flipper in flippers {
        flipper.join().unwrap();
    }
    assert_eq!(
        (hung, failed),
        (0, 0),
        "of {FORKS} children, {hung} hung and {failed} failed"
    );
}
