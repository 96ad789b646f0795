//! The portable implementation: the atomic word plus std's `Mutex` and
//! `Condvar`, used where there is no futex (macOS, the BSDs, Windows) and on
//! Linux when the `portable-wait` feature forces it (to test it there).
//!
//! The callers' waiter-bit protocol is unchanged: they set a waiter bit in
//! the word before sleeping and call `wake_all` only when they see it, so
//! the hot path (begin, end with no waiter) touches the atomic word alone,
//! exactly as with the futex. Only the slow path differs:
//!
//! * `wait` takes the mutex, re-checks the word, and sleeps on the condvar,
//!   which releases the mutex atomically. The check and the sleep are thus
//!   one step with respect to anyone else holding the mutex.
//! * `wake_all` takes and releases the mutex *after* the caller changed the
//!   word, then notifies. A sleeper is either already on the condvar (it
//!   released the mutex only by going to sleep) and gets the notification,
//!   or it takes the mutex after the waker did and then sees the new word.
//!   No wake-up is lost. Notifying after the unlock spares the woken thread
//!   from blocking at once on a mutex the waker still holds.
//!
//! The loom model runs this very code over loom's `Mutex` and `Condvar`
//! (`RUSTFLAGS="--cfg loom"` with the `portable-wait` feature, part of
//! `make test-portable`).
//!
//! One difference from the futex: the mutex is held for a few instructions
//! inside `wait` and `wake_all`. A `fork()` from another thread at that
//! instant would leave the child's copy locked, so the child's next wait or
//! wake on that word would block forever: the runtime's fork handlers take
//! every word's mutex before the fork (`hold_across_fork`) and release it
//! on both sides after. The futex implementation has no such window.

use super::{AtomicU32, Ordering};
use std::time::Duration;

use crate::sync::{Condvar, Mutex};

/// An atomic `u32` with futex-style wait and wake.
#[derive(Debug)]
pub struct WaitWord {
    word: AtomicU32,
    sleepers: Mutex<()>,
    wakeup: Condvar,
}

impl WaitWord {
    #[cfg(not(loom))]
    pub const fn new(value: u32) -> Self {
        Self {
            word: AtomicU32::new(value),
            sleepers: Mutex::new(()),
            wakeup: Condvar::new(),
        }
    }

    #[cfg(loom)]
    pub fn new(value: u32) -> Self {
        Self {
            word: AtomicU32::new(value),
            sleepers: Mutex::new(()),
            wakeup: Condvar::new(),
        }
    }

    /// cbindgen:ignore
    /// Whether a signal handler may call `wake_all`: no, it takes a mutex,
    /// and a handler on a thread inside `wait` or `wake_all` on the same
    /// word would wait for itself.
    // Unused where the tests compile this beside the futex.
    #[allow(dead_code)]
    pub const WAKE_IS_ASYNC_SIGNAL_SAFE: bool = false;

    /// The atomic itself, for loads and read-modify-writes.
    #[inline(always)]
    pub fn atomic(&self) -> &AtomicU32 {
        &self.word
    }

    /// Sleeps while the word equals `expected`, for at most `timeout`
    /// (`None`: no limit). May return spuriously; callers re-check the word.
    pub fn wait(&self, expected: u32, timeout: Option<Duration>) {
        // The mutex guards `()`: a panic elsewhere while it was held cannot
        // leave anything inconsistent, so a poisoned lock is used as is.
        let guard = self
            .sleepers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // SeqCst pairs with the waker's store, which happens before its own
        // lock of `sleepers`; the mutex makes whichever comes second see the
        // other.
        if self.word.load(Ordering::SeqCst) != expected {
            return;
        }
        match timeout {
            None => drop(
                self.wakeup
                    .wait(guard)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            ),
            Some(timeout) => drop(
                self.wakeup
                    .wait_timeout(guard, timeout)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            ),
        }
    }

    /// The mutex, held: what a thread inside `wait` or `wake_all` holds, for
    /// the test that a signal handler's path never takes it.
    #[cfg(all(test, feature = "portable-wait", not(loom)))]
    pub(crate) fn hold_mutex_for_test(&self) -> std::sync::MutexGuard<'_, ()> {
        self.sleepers.lock().unwrap()
    }

    /// Holds this word's mutex, for a `fork()` handler: taken just before
    /// the fork and released on both sides after it, so that the child
    /// never inherits it held by a thread it does not have.
    #[cfg(not(loom))]
    // Unused where the tests compile this beside the futex.
    #[allow(dead_code)]
    pub fn hold_across_fork(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        Some(
            self.sleepers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Wakes every thread sleeping in [`WaitWord::wait`] on this word.
    pub fn wake_all(&self) {
        // Taking the mutex orders this wake after any sleeper's check of the
        // word (see the module comment); it need not be held to notify.
        drop(
            self.sleepers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        self.wakeup.notify_all();
    }
}
