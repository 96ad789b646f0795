//! What a forked child inherits, and what it does not.
//!
//! `fork()` copies memory but only the calling thread. A child of a process
//! that uses this crate therefore has the parent's counters and phase in
//! memory but no core thread, and the parent's signal handler code in place.
//! The rules (the gunicorn pattern: load in the master, serve in workers):
//!
//! * The child starts afresh: Serving, no active streams, totals at zero, no
//!   sequence. The parent's streams belong to the parent's threads, which do
//!   not exist in the child. A `pthread_atfork` child handler resets these
//!   with plain atomic stores (all a post-fork handler may safely do).
//! * Phase listeners and shutdown hooks registered before the fork are kept:
//!   they are the application's, and the child runs the same application.
//! * The child has no signal handling of its own until it installs it
//!   (`install_signal_handlers` succeeds once in each process). Until then a
//!   SIGTERM/SIGINT to the child behaves as it would have without this
//!   crate (the disposition found at install: usually, termination).
//! * Nothing crosses between the processes afterwards: the wait words are
//!   process-private futexes and there is no shared pipe, so a signal to one
//!   never drives the other's sequence.
//! * Registering listeners or hooks concurrently with `fork()` from another
//!   thread is not supported: the child could inherit their mutex held.

use crate::runtime::Runtime;
use std::sync::Once;

/// Registers the child-side reset once per process image.
pub(crate) fn reset_global_in_forked_children() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: `after_fork_in_child` is an `extern "C" fn()` that lives for
        // the whole program and only performs atomic stores, which is what a
        // handler running in the child right after fork may do.
        let status = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
        if status != 0 {
            eprintln!("last-call: pthread_atfork failed ({status}); forked children will inherit the parent's counters");
        }
    });
}

extern "C" fn after_fork_in_child() {
    if let Some(runtime) = Runtime::global_if_created() {
        runtime.reset_after_fork();
    }
}
