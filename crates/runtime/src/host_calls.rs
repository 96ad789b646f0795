//! The gate every call from a runtime thread into host code goes through
//! (phase listeners, shutdown hooks, readiness checks), so that a host that
//! is exiting can close it.
//!
//! Why: an interpreter that finalizes cannot be entered, and a thread
//! already inside it when it finalizes is ended under the runtime's feet.
//! CPython before 3.14 ends such a thread with `pthread_exit()`; the forced
//! unwind runs up through the runtime thread's frames into its panic
//! boundary, and glibc aborts the process ("FATAL: exception not
//! rethrown"), so the host's exit status is lost and a core is left. The
//! host closes the gate before it finalizes (the Python package does it
//! from `atexit`): from then on the runtime calls none of its code, and
//! [`HostCalls::close_and_wait`] tells it whether a call is still in
//! flight (a hook left running past its share, a listener that blocks), in
//! which case the host must end the process without finalizing.
//!
//! The protocol is the one of the listener delivery slot: a caller counts
//! itself in, *then* looks at the gate; the closer shuts the gate, *then*
//! looks at the count, both sequentially consistent, so either the caller
//! sees the gate shut and does not call, or the closer sees the call and
//! waits for it.

use crate::clock::Mono;
use crate::wait_word::WaitWord;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// Host calls this thread is inside (a hook may exit the process, and
    /// so close the gate, from within its own call).
    static INSIDE: Cell<u32> = const { Cell::new(0) };
}

#[derive(Debug)]
pub(crate) struct HostCalls {
    closed: AtomicBool,
    /// Calls in flight; the closer sleeps on it.
    in_flight: WaitWord,
}

impl HostCalls {
    /// Its word's lock, if it has one, for the fork handlers.
    pub(crate) fn hold_across_fork(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        self.in_flight.hold_across_fork()
    }

    pub(crate) fn new() -> HostCalls {
        HostCalls {
            closed: AtomicBool::new(false),
            in_flight: WaitWord::new(0),
        }
    }

    /// A pass for one call into host code; `None` once the gate is shut:
    /// do not call.
    pub(crate) fn enter(&self) -> Option<HostCall<'_>> {
        self.in_flight.atomic().fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.leave();
            return None;
        }
        INSIDE.with(|inside| inside.set(inside.get() + 1));
        Some(HostCall {
            calls: self,
            process: crate::fork::generation(),
        })
    }

    fn leave(&self) {
        self.in_flight.atomic().fetch_sub(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.in_flight.wake_all();
        }
    }

    /// Shuts the gate for good, then sleeps until no call is in flight
    /// (other than the caller's own) or `deadline` passes. Whether none is.
    pub(crate) fn close_and_wait(&self, deadline: Mono) -> bool {
        self.closed.store(true, Ordering::SeqCst);
        let own = INSIDE.with(Cell::get);
        loop {
            let count = self.in_flight.atomic().load(Ordering::SeqCst);
            if count <= own {
                return true;
            }
            let left = deadline.left(); // None: no limit
            if left.is_some_and(|left| left.is_zero()) {
                return false;
            }
            self.in_flight.wait(count, left);
        }
    }

    /// Open again, nothing in flight: a forked child has none of its
    /// parent's threads (plain stores; this runs right after fork).
    pub(crate) fn reset_after_fork(&self) {
        self.in_flight.atomic().store(0, Ordering::Relaxed);
        self.closed.store(false, Ordering::Relaxed);
    }

    /// On the thread that forked, in the child: the calls it was inside
    /// were counted in the parent's gate and are not the child's (plain
    /// thread-local store, for the atfork child handler).
    pub(crate) fn forget_own_calls_after_fork() {
        INSIDE.with(|inside| inside.set(0));
    }

    /// Open again (the testing reset); calls in flight stay counted.
    pub(crate) fn reopen(&self) {
        self.closed.store(false, Ordering::SeqCst);
    }
}

/// One call into host code, counted until dropped.
pub struct HostCall<'a> {
    calls: &'a HostCalls,
    /// The fork generation it was entered in: a call that a forked child
    /// returns from was never counted in the child's gate (reset to no
    /// call at the fork), so it must not be uncounted there: the count
    /// would wrap and the child's `host_exiting` wait for a call that does
    /// not exist.
    process: u64,
}

impl Drop for HostCall<'_> {
    fn drop(&mut self) {
        if crate::fork::generation() != self.process {
            return;
        }
        INSIDE.with(|inside| inside.set(inside.get().saturating_sub(1)));
        self.calls.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_shut_gate_lets_no_call_in() {
        let calls = HostCalls::new();
        assert!(calls.enter().is_some());
        assert!(calls.close_and_wait(Mono::now()));
        assert!(calls.enter().is_none());
    }

    #[test]
    fn closing_waits_for_a_call_in_flight_and_no_longer() {
        let calls = Arc::new(HostCalls::new());
        let (entered, entered_rx) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let caller = {
            let calls = Arc::clone(&calls);
            std::thread::spawn(move || {
                let call = calls.enter().unwrap();
                entered.send(()).unwrap();
                release_rx.recv_timeout(Duration::from_secs(30)).ok();
                drop(call);
            })
        };
        entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // Still in flight at the deadline: false.
        assert!(!calls.close_and_wait(Mono::now().after(Duration::from_millis(50))));
        release.send(()).unwrap();
        assert!(calls.close_and_wait(Mono::now().after(Duration::from_secs(10))));
        caller.join().unwrap();
    }

    #[test]
    fn a_call_that_closes_the_gate_does_not_wait_for_itself() {
        let calls = HostCalls::new();
        let _call = calls.enter().unwrap();
        assert!(calls.close_and_wait(Mono::now().after(Duration::from_secs(10))));
    }

    #[test]
    fn a_forked_child_starts_open_with_nothing_in_flight() {
        let calls = Arc::new(HostCalls::new());
        let other = Arc::clone(&calls);
        // A call whose thread vanished, as a parent's thread does in a fork.
        std::thread::spawn(move || std::mem::forget(other.enter().unwrap()))
            .join()
            .unwrap();
        assert!(!calls.close_and_wait(Mono::now()));
        calls.reset_after_fork();
        assert!(calls.close_and_wait(Mono::now()));
    }

    // ----- through the runtime -----

    use crate::{Config, Error, HookOutcome, Phase, Runtime};

    fn stopped(runtime: &Runtime) {
        assert!(matches!(
            runtime.wait_for_phase(Phase::Stopped, Some(Duration::from_secs(30))),
            Ok(Phase::Stopped)
        ));
    }

    #[test]
    fn a_hook_left_running_past_its_share_is_reported_in_flight_until_it_returns() {
        let runtime = Runtime::new();
        runtime.configure(Config::millis(0, 400, 100, 200)).unwrap();
        let (release, release_rx) = mpsc::channel::<()>();
        runtime
            .register_shutdown_hook("outlives its share", move |_| {
                release_rx.recv_timeout(Duration::from_secs(30)).is_ok()
            })
            .unwrap();
        runtime.begin_shutdown().unwrap();
        stopped(&runtime);
        assert_eq!(runtime.hook_reports()[0].outcome, HookOutcome::Overran);
        assert!(matches!(
            runtime.host_exiting(Some(Duration::from_millis(50))),
            Err(Error::TimedOut(Phase::Stopped))
        ));
        release.send(()).unwrap();
        runtime.host_exiting(Some(Duration::from_secs(10))).unwrap();
    }

    #[test]
    fn once_the_host_is_exiting_no_listener_or_hook_is_called() {
        let runtime = Runtime::new();
        runtime.configure(Config::millis(0, 400, 100, 200)).unwrap();
        let (heard, heard_rx) = mpsc::channel();
        let hook_heard = heard.clone();
        runtime
            .on_phase(move |change| heard.send(format!("{:?}", change.to)).unwrap())
            .unwrap();
        runtime
            .register_shutdown_hook("late", move |_| {
                hook_heard.send("hook".into()).unwrap();
                true
            })
            .unwrap();
        runtime.host_exiting(Some(Duration::from_secs(10))).unwrap();
        runtime.begin_shutdown().unwrap();
        stopped(&runtime);
        // The sequence still ran to Stopped; the host heard nothing of it.
        assert!(heard_rx.recv_timeout(Duration::from_millis(300)).is_err());
        assert_eq!(runtime.hook_reports()[0].outcome, HookOutcome::NotStarted);
    }
}
