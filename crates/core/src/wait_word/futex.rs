//! The Linux implementation: the word itself is the futex.
//!
//! `wait` is `FUTEX_WAIT`, which sleeps only if the word still holds
//! `expected` at the moment the kernel queues the sleeper; `wake_all` is
//! `FUTEX_WAKE`. Because the check and the sleep are one atomic step in the
//! kernel, nothing but the word is needed: no lock, so nothing a `fork()`
//! can copy in a held state, and the hot path never touches anything else.

use super::AtomicU32;
use std::time::Duration;

/// An atomic `u32` with futex-style wait and wake.
#[derive(Debug)]
pub struct WaitWord {
    word: AtomicU32,
}

impl WaitWord {
    pub const fn new(value: u32) -> Self {
        Self {
            word: AtomicU32::new(value),
        }
    }

    /// cbindgen:ignore
    /// Whether a signal handler may call `wake_all`. FUTEX_WAKE is a plain system call: no lock.
    pub const WAKE_IS_ASYNC_SIGNAL_SAFE: bool = true;

    /// The atomic itself, for loads and read-modify-writes.
    #[inline(always)]
    pub fn atomic(&self) -> &AtomicU32 {
        &self.word
    }

    /// Nothing to hold across `fork()`: the futex is the word itself.
    pub fn hold_across_fork(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        None
    }

    /// Sleeps while the word equals `expected`, for at most `timeout`
    /// (`None`: no limit). May return spuriously; callers re-check the word.
    pub fn wait(&self, expected: u32, timeout: Option<Duration>) {
        let timespec = timeout.map(|t| libc::timespec {
            // Durations beyond time_t are "no limit" in practice; saturate.
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            // subsec_nanos() < 1e9 always fits a c_long.
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let timespec_ptr = timespec
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `self.word` is a live, aligned 32-bit atomic for the
        // duration of the call; the kernel only reads it. `timespec_ptr` is
        // NULL or points to a timespec on this stack frame. The remaining
        // arguments are unused by FUTEX_WAIT. Any error (EAGAIN: the word
        // already differs, EINTR, ETIMEDOUT) is fine: callers re-check the
        // word. FUTEX_PRIVATE_FLAG keys the futex by address in this process
        // only, so after `fork()` a parent and a child never wake each other
        // through their copies of the word.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                expected,
                timespec_ptr,
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }

    /// Wakes every thread sleeping in [`WaitWord::wait`] on this word.
    pub fn wake_all(&self) {
        // SAFETY: `self.word` is a live, aligned 32-bit atomic; FUTEX_WAKE
        // does not dereference anything else. It cannot fail for a valid
        // address.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
            );
        }
    }
}
