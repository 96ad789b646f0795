//! Stream accounting: the hot path.
//!
//! One 32-bit word holds both the number of active streams and a "someone is
//! waiting for zero" bit, in the shape of tokio-util's `TaskTracker`:
//!
//! ```text
//!   bit 31 ........................ 1   bit 0
//!   [ active stream count           ][ W ]
//! ```
//!
//! * `begin` is one `fetch_add`: no lock, no allocation, no system call.
//! * `end` is one compare-and-swap (it must refuse to go below zero, so a
//!   plain `fetch_sub` will not do). Only the end that brings the count to
//!   zero *while the waiter bit is set* makes a system call, to wake waiters.
//! * `wait_for_zero` sets the waiter bit and sleeps on the word itself (a
//!   futex, see `wait_word.rs`). Because the bit and the count live in
//!   the same word, the waker's compare-and-swap and the sleeper's "is it
//!   still this value?" check are ordered by the word itself: either the
//!   sleeper sees the zero, or the waker sees the bit. That is the property
//!   the loom model in `tests/loom_stream_counter.rs` checks.
//!
//! The totals of streams started and finished live on the same cache line:
//! a begin/end pair touches one line, so under contention one line moves
//! between cores, not three.

use crate::wait_word::{Ordering, WaitWord};
use crossbeam_utils::CachePadded;
use std::time::{Duration, Instant};

#[cfg(gs_loom)]
use loom::sync::atomic::AtomicU64;
#[cfg(not(gs_loom))]
use std::sync::atomic::AtomicU64;

const WAITERS: u32 = 1;
const ONE_STREAM: u32 = 2;
/// At most this many streams may be active at once (2^30 - 1). The word has
/// room for twice as many, which leaves a guard band so that a `begin` that
/// overshoots and then backs out can never wrap the word.
pub const MAX_ACTIVE_STREAMS: u32 = (1 << 30) - 1;

/// Why a stream could not be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountError {
    /// `end` without a matching `begin`: the count is already zero.
    NoActiveStream,
    /// `begin` with [`MAX_ACTIVE_STREAMS`] already active.
    TooManyStreams,
}

impl std::fmt::Display for CountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CountError::NoActiveStream => {
                f.write_str("a stream ended without a matching begin (no stream is active)")
            }
            CountError::TooManyStreams => write!(
                f,
                "too many active streams (at most {MAX_ACTIVE_STREAMS} may be active)"
            ),
        }
    }
}

impl std::error::Error for CountError {}

#[derive(Debug)]
struct Line {
    state: WaitWord,
    started: AtomicU64,
    finished: AtomicU64,
}

/// A lock-free count of active streams that can be waited on.
#[derive(Debug)]
pub struct StreamCounter {
    line: CachePadded<Line>,
}

impl Default for StreamCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamCounter {
    /// A counter at zero.
    #[cfg(not(gs_loom))]
    pub const fn new() -> Self {
        Self {
            line: CachePadded::new(Line {
                state: WaitWord::new(0),
                started: AtomicU64::new(0),
                finished: AtomicU64::new(0),
            }),
        }
    }

    /// A counter at zero.
    #[cfg(gs_loom)]
    pub fn new() -> Self {
        Self {
            line: CachePadded::new(Line {
                state: WaitWord::new(0),
                started: AtomicU64::new(0),
                finished: AtomicU64::new(0),
            }),
        }
    }

    /// Counts one more active stream.
    #[inline]
    pub fn begin(&self) -> Result<(), CountError> {
        let state = self.line.state.atomic();
        // Relaxed is enough: nothing is published by starting a stream.
        let previous = state.fetch_add(ONE_STREAM, Ordering::Relaxed);
        if previous >> 1 >= MAX_ACTIVE_STREAMS {
            // Back out. Never reaches zero (previous count >= 2^30 - 1), so no
            // waiter needs waking; the guard band keeps the word from wrapping.
            state.fetch_sub(ONE_STREAM, Ordering::Relaxed);
            return Err(CountError::TooManyStreams);
        }
        self.line.started.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Counts one stream as ended. Fails, leaving the count at zero, when no
    /// stream is active. The end that reaches zero wakes every waiter.
    #[inline]
    pub fn end(&self) -> Result<(), CountError> {
        let state = self.line.state.atomic();
        let mut current = state.load(Ordering::Relaxed);
        loop {
            if current < ONE_STREAM {
                return Err(CountError::NoActiveStream);
            }
            let remaining = current - ONE_STREAM;
            // Reaching zero clears the waiter bit: the wake below serves
            // everyone who set it.
            let next = if remaining < ONE_STREAM { 0 } else { remaining };
            // Release: what the stream did happens-before a waiter's return.
            match state.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.line.finished.fetch_add(1, Ordering::Relaxed);
        if current == ONE_STREAM | WAITERS {
            self.line.state.wake_all();
        }
        Ok(())
    }

    /// Number of streams active now.
    #[inline]
    pub fn active(&self) -> u32 {
        self.line.state.atomic().load(Ordering::Acquire) >> 1
    }

    /// Streams begun since the counter was created.
    pub fn started_total(&self) -> u64 {
        self.line.started.load(Ordering::Relaxed)
    }

    /// Streams ended since the counter was created.
    pub fn finished_total(&self) -> u64 {
        self.line.finished.load(Ordering::Relaxed)
    }

    /// Blocks until no stream is active, or until `timeout` passes
    /// (`None`: no limit). Returns `true` when the count reached zero.
    ///
    /// The caller sleeps in the kernel; the `end` that brings the count to
    /// zero wakes it. There is no poll interval.
    pub fn wait_for_zero(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let state = self.line.state.atomic();
        let mut current = state.load(Ordering::Acquire);
        loop {
            if current < ONE_STREAM {
                return true;
            }
            if current & WAITERS == 0 {
                match state.compare_exchange_weak(
                    current,
                    current | WAITERS,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => current |= WAITERS,
                    Err(actual) => {
                        current = actual;
                        continue;
                    }
                }
            }
            let remaining = match (timeout, deadline) {
                (None, _) => None,
                // A timeout too large to add to `now` is no limit in practice.
                (Some(_), None) => None,
                (Some(_), Some(deadline)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    Some(left)
                }
            };
            self.line.state.wait(current, remaining);
            current = state.load(Ordering::Acquire);
        }
    }

    /// Returns the counter to zero, as at creation. For a forked child, whose
    /// parent's streams are not its own; see [`crate::Runtime`].
    #[cfg(not(gs_loom))]
    pub(crate) fn reset_after_fork(&self) {
        self.line.state.atomic().store(0, Ordering::Relaxed);
        self.line.started.store(0, Ordering::Relaxed);
        self.line.finished.store(0, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(gs_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn begin_and_end_move_the_count_and_the_totals() {
        let counter = StreamCounter::new();
        counter.begin().unwrap();
        counter.begin().unwrap();
        assert_eq!(counter.active(), 2);
        counter.end().unwrap();
        assert_eq!(counter.active(), 1);
        assert_eq!(counter.started_total(), 2);
        assert_eq!(counter.finished_total(), 1);
    }

    #[test]
    fn end_without_begin_is_an_error_and_never_wraps() {
        let counter = StreamCounter::new();
        assert_eq!(counter.end(), Err(CountError::NoActiveStream));
        assert_eq!(counter.active(), 0);
        counter.begin().unwrap();
        counter.end().unwrap();
        assert_eq!(counter.end(), Err(CountError::NoActiveStream));
        assert_eq!(counter.active(), 0);
        assert_eq!(counter.finished_total(), 1);
    }

    #[test]
    fn end_without_begin_keeps_a_waiter_bit_intact() {
        let counter = Arc::new(StreamCounter::new());
        counter.begin().unwrap();
        let waiter = {
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || counter.wait_for_zero(Some(Duration::from_secs(30))))
        };
        // Let the waiter set its bit, then end the only stream.
        std::thread::sleep(Duration::from_millis(20));
        counter.end().unwrap();
        assert!(waiter.join().unwrap());
        assert_eq!(counter.end(), Err(CountError::NoActiveStream));
        assert_eq!(counter.active(), 0);
    }

    #[test]
    fn too_many_streams_is_refused_without_changing_the_count() {
        let counter = StreamCounter::new();
        counter
            .line
            .state
            .atomic()
            .store(MAX_ACTIVE_STREAMS << 1, Ordering::Relaxed);
        assert_eq!(counter.begin(), Err(CountError::TooManyStreams));
        assert_eq!(counter.active(), MAX_ACTIVE_STREAMS);
        counter.end().unwrap();
        counter.begin().unwrap();
        assert_eq!(counter.active(), MAX_ACTIVE_STREAMS);
    }

    #[test]
    fn wait_for_zero_returns_at_once_when_idle() {
        let counter = StreamCounter::new();
        assert!(counter.wait_for_zero(Some(Duration::ZERO)));
        assert!(counter.wait_for_zero(None));
    }

    #[test]
    fn wait_for_zero_times_out_while_a_stream_is_active() {
        let counter = StreamCounter::new();
        counter.begin().unwrap();
        let started = Instant::now();
        assert!(!counter.wait_for_zero(Some(Duration::from_millis(30))));
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(!counter.wait_for_zero(Some(Duration::ZERO)));
        assert_eq!(counter.active(), 1);
    }

    #[test]
    fn a_huge_timeout_means_no_limit() {
        let counter = Arc::new(StreamCounter::new());
        counter.begin().unwrap();
        let waiter = {
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || counter.wait_for_zero(Some(Duration::MAX)))
        };
        std::thread::sleep(Duration::from_millis(20));
        counter.end().unwrap();
        assert!(waiter.join().unwrap());
    }
}
