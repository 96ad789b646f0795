//! Stream accounting: the hot path.
//!
//! One 32-bit word holds the number of active streams, a "someone is
//! waiting for zero" bit, and a small count of the times the count reached
//! zero, in the shape of tokio-util's `TaskTracker`:
//!
//! ```text
//!   bits 31..26       bits 25..1                      bit 0
//!   [ zero epoch ]    [ active stream count (+guard) ][ W ]
//! ```
//!
//! * `begin` is one `fetch_add`: no lock, no allocation, no system call.
//! * `end` is one compare-and-swap (it must refuse to go below zero, so a
//!   plain `fetch_sub` will not do). The end that brings the count to zero
//!   also clears the waiter bit and moves the zero epoch on, in the same
//!   compare-and-swap; only if the waiter bit was set does it make a
//!   system call, to wake waiters.
//! * `wait_for_zero` sets the waiter bit and sleeps on the word itself (a
//!   futex, see `wait_word.rs`). Because the bit, the count and the epoch
//!   live in one word, the waker's compare-and-swap and the sleeper's "is it
//!   still this value?" check are ordered by the word itself: either the
//!   sleeper sees the zero, or the waker sees the bit. And because every
//!   zero moves the epoch, a zero followed at once by a new stream still
//!   changes the word: a waiter can neither set its bit over it (its
//!   compare-and-swap fails) nor sleep through it (it compares the epoch
//!   when it wakes). That is what the loom model in
//!   `tests/loom_stream_counter.rs` checks. (The epoch wraps after 64 zeros;
//!   a waiter misses a zero only if exactly a multiple of 64 happen between
//!   two of its reads of the word, nanoseconds apart.)
//!
//! The totals of streams started and finished live on the same cache line:
//! a begin/end pair touches one line, so under contention one line moves
//! between cores, not three.

use crate::clock::Mono;
use crate::wait_word::{Ordering, WaitWord};
use crossbeam_utils::CachePadded;
use std::time::Duration;

use crate::sync::AtomicU64;

const WAITERS: u32 = 1;
const ONE_STREAM: u32 = 2;
const COUNT_BITS: u32 = 25;
const COUNT_MASK: u32 = ((1 << COUNT_BITS) - 1) << 1;
const EPOCH_SHIFT: u32 = COUNT_BITS + 1;
const ONE_EPOCH: u32 = 1 << EPOCH_SHIFT;
/// At most this many streams may be active at once (2^24 - 1). The count's
/// field has room for twice as many, which leaves a guard band so that a
/// `begin` that overshoots and then backs out can never carry into the
/// epoch.
pub const MAX_ACTIVE_STREAMS: u32 = (1 << (COUNT_BITS - 1)) - 1;

fn count(word: u32) -> u32 {
    (word & COUNT_MASK) >> 1
}

fn epoch(word: u32) -> u32 {
    word >> EPOCH_SHIFT
}

/// The word after a zero: count 0, no waiter bit, the next epoch.
fn after_zero(word: u32) -> u32 {
    (word & !(COUNT_MASK | WAITERS)).wrapping_add(ONE_EPOCH)
}

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
    #[cfg(not(loom))]
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
    #[cfg(loom)]
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
        if count(previous) >= MAX_ACTIVE_STREAMS {
            // Back out. Never reaches zero (previous count >= 2^24 - 1), so no
            // waiter needs waking; the guard band keeps the count from
            // carrying into the epoch.
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
            if count(current) == 0 {
                return Err(CountError::NoActiveStream);
            }
            // Reaching zero clears the waiter bit (the wake below serves
            // everyone who set it) and moves the epoch on.
            let next = if count(current) == 1 {
                after_zero(current)
            } else {
                current - ONE_STREAM
            };
            // Release: what the stream did happens-before a waiter's return.
            match state.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.line.finished.fetch_add(1, Ordering::Relaxed);
        if count(current) == 1 && current & WAITERS != 0 {
            self.line.state.wake_all();
        }
        Ok(())
    }

    /// Number of streams active now.
    #[inline]
    pub fn active(&self) -> u32 {
        count(self.line.state.atomic().load(Ordering::Acquire))
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
    /// (`None`: no limit). Returns `true` when the count was zero at some
    /// moment during the wait (even if a new stream has begun since).
    ///
    /// The caller sleeps in the kernel; the `end` that brings the count to
    /// zero wakes it. There is no poll interval.
    pub fn wait_for_zero(&self, timeout: Option<Duration>) -> bool {
        self.wait_for_zero_until(Mono::deadline(timeout))
    }

    pub fn wait_for_zero_until(&self, deadline: Mono) -> bool {
        let state = self.line.state.atomic();
        let mut current = state.load(Ordering::Acquire);
        let first_epoch = epoch(current);
        loop {
            if count(current) == 0 || epoch(current) != first_epoch {
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
            let left = deadline.left();
            if left == Some(Duration::ZERO) {
                return false;
            }
            self.line.state.wait(current, left);
            current = state.load(Ordering::Acquire);
        }
    }

    /// Back to zero active streams with the totals kept, waking every
    /// waiter: the testing reset. Streams still held by the caller's
    /// threads end later with [`CountError::NoActiveStream`].
    pub fn reset_active(&self) {
        let state = self.line.state.atomic();
        let _ = state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| Some(after_zero(w)));
        self.line.state.wake_all();
    }

    /// Returns the counter to zero, as at creation. For a forked child, whose
    /// parent's streams are not its own; see the runtime crate's `fork.rs`.
    pub fn reset_after_fork(&self) {
        self.line.state.atomic().store(0, Ordering::Relaxed);
        self.line.started.store(0, Ordering::Relaxed);
        self.line.finished.store(0, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
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
        let started = std::time::Instant::now();
        assert!(!counter.wait_for_zero(Some(Duration::from_millis(30))));
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(!counter.wait_for_zero(Some(Duration::ZERO)));
        assert_eq!(counter.active(), 1);
    }

    #[test]
    fn a_brief_zero_is_not_slept_through() {
        // The last stream ends and a new one begins at once; before, the
        // waiter woke, saw one stream again, and slept until its timeout.
        let counter = Arc::new(StreamCounter::new());
        counter.begin().unwrap();
        let waiter = {
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || counter.wait_for_zero(Some(Duration::from_secs(30))))
        };
        while counter.line.state.atomic().load(Ordering::Acquire) & WAITERS == 0 {
            std::thread::yield_now();
        }
        let started = std::time::Instant::now();
        counter.end().unwrap();
        counter.begin().unwrap();
        assert!(waiter.join().unwrap());
        assert!(started.elapsed() < Duration::from_secs(20));
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
