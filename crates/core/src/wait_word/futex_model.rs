//! The loom model of the futex (`cfg(loom)` on Linux, without the
//! `portable-wait` feature).
//!
//! The "check the word, then sleep" step runs under a loom `Mutex`, and
//! `wake_all` notifies under the same mutex: exactly the guarantee the
//! kernel gives a futex (the check and the queueing are one step). loom then
//! explores every interleaving of the code *around* the word (the waiter
//! bit, the compare-and-swap, the decision to wake). loom's condvar has no
//! timeouts, so the model ignores them.

use super::{AtomicU32, Ordering};
use crate::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Debug)]
pub struct WaitWord {
    word: AtomicU32,
    model: (Mutex<()>, Condvar),
}

impl WaitWord {
    pub fn new(value: u32) -> Self {
        Self {
            word: AtomicU32::new(value),
            model: (Mutex::new(()), Condvar::new()),
        }
    }

    /// cbindgen:ignore
    /// Whether a signal handler may call `wake_all`. As the futex it models.
    pub const WAKE_IS_ASYNC_SIGNAL_SAFE: bool = true;

    #[inline(always)]
    pub fn atomic(&self) -> &AtomicU32 {
        &self.word
    }

    pub fn wait(&self, expected: u32, _timeout: Option<Duration>) {
        let guard = self.model.0.lock().unwrap();
        if self.word.load(Ordering::SeqCst) == expected {
            drop(self.model.1.wait(guard).unwrap());
        }
    }

    pub fn wake_all(&self) {
        let _guard = self.model.0.lock().unwrap();
        self.model.1.notify_all();
    }
}
