//! A 32-bit atomic word that threads can sleep on until it changes.
//!
//! This is the only blocking primitive in the crate. It is a thin layer over
//! the Linux futex: `wait(expected, timeout)` sleeps only if the word still
//! holds `expected` at the moment the kernel queues the sleeper, and
//! `wake_all()` wakes every sleeper. Because the check and the sleep are one
//! atomic step in the kernel, a waker that changes the word before calling
//! `wake_all` can never slip in between a sleeper's check and its sleep: no
//! wake-up is lost, and no one has to poll.
//!
//! Why not `Mutex` + `Condvar`: a futex word holds no lock, so there is
//! nothing a `fork()` can copy in a held state, and the hot path never
//! touches anything but the word itself.
//!
//! Under `cfg(gs_loom)` the same interface is modelled with loom's `Mutex` and
//! `Condvar`: the "check the word, then sleep" step runs under the mutex and
//! `wake_all` takes the same mutex, which is exactly the guarantee the kernel
//! gives a futex. loom then explores every interleaving of the code *around*
//! the word (the waiter bit, the compare-and-swap, the decision to wake).
//! loom's condvar has no timeouts, so the model ignores them.

use std::time::Duration;

#[cfg(gs_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, Ordering};
#[cfg(not(gs_loom))]
pub(crate) use std::sync::atomic::{AtomicU32, Ordering};

/// An atomic `u32` with futex-style wait and wake.
#[derive(Debug)]
pub(crate) struct WaitWord {
    word: AtomicU32,
    #[cfg(gs_loom)]
    model: (loom::sync::Mutex<()>, loom::sync::Condvar),
}

impl WaitWord {
    #[cfg(not(gs_loom))]
    pub(crate) const fn new(value: u32) -> Self {
        Self {
            word: AtomicU32::new(value),
        }
    }

    #[cfg(gs_loom)]
    pub(crate) fn new(value: u32) -> Self {
        Self {
            word: AtomicU32::new(value),
            model: (loom::sync::Mutex::new(()), loom::sync::Condvar::new()),
        }
    }

    /// The atomic itself, for loads and read-modify-writes.
    #[inline(always)]
    pub(crate) fn atomic(&self) -> &AtomicU32 {
        &self.word
    }

    /// Sleeps while the word equals `expected`, for at most `timeout`
    /// (`None`: no limit). May return spuriously; callers re-check the word.
    #[cfg(not(gs_loom))]
    pub(crate) fn wait(&self, expected: u32, timeout: Option<Duration>) {
        futex::wait(&self.word, expected, timeout);
    }

    #[cfg(gs_loom)]
    pub(crate) fn wait(&self, expected: u32, _timeout: Option<Duration>) {
        let guard = self.model.0.lock().unwrap();
        if self.word.load(Ordering::SeqCst) == expected {
            drop(self.model.1.wait(guard).unwrap());
        }
    }

    /// Wakes every thread sleeping in [`WaitWord::wait`] on this word.
    #[cfg(not(gs_loom))]
    pub(crate) fn wake_all(&self) {
        futex::wake_all(&self.word);
    }

    #[cfg(gs_loom)]
    pub(crate) fn wake_all(&self) {
        let _guard = self.model.0.lock().unwrap();
        self.model.1.notify_all();
    }
}

#[cfg(not(gs_loom))]
mod futex {
    use super::AtomicU32;
    use std::time::Duration;

    /// `FUTEX_WAIT` on a process-private futex. Private futexes are keyed by
    /// the address in this process only, so after `fork()` a parent and a
    /// child never wake each other through their copies of the word.
    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let timespec = timeout.map(|t| libc::timespec {
            // Durations beyond time_t are "no limit" in practice; saturate.
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            // subsec_nanos() < 1e9 always fits a c_long.
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let timespec_ptr = timespec
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of
        // the call; the kernel only reads it. `timespec_ptr` is NULL or points
        // to a timespec on this stack frame. The remaining arguments are
        // unused by FUTEX_WAIT. Any error (EAGAIN: the word already differs,
        // EINTR, ETIMEDOUT) is fine: callers re-check the word.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                expected,
                timespec_ptr,
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }

    pub(super) fn wake_all(word: &AtomicU32) {
        // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does
        // not dereference anything else. It cannot fail for a valid address.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
            );
        }
    }
}

#[cfg(all(test, not(gs_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn wait_returns_at_once_when_the_word_differs() {
        let word = WaitWord::new(1);
        let started = Instant::now();
        word.wait(0, Some(Duration::from_secs(10)));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn wait_honours_its_timeout() {
        let word = WaitWord::new(1);
        let started = Instant::now();
        word.wait(1, Some(Duration::from_millis(20)));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn wake_all_wakes_a_sleeper() {
        let word = Arc::new(WaitWord::new(1));
        let sleeper = {
            let word = Arc::clone(&word);
            std::thread::spawn(move || {
                while word.atomic().load(Ordering::Acquire) == 1 {
                    word.wait(1, Some(Duration::from_secs(30)));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(10));
        word.atomic().store(2, Ordering::Release);
        word.wake_all();
        sleeper.join().unwrap();
    }
}
