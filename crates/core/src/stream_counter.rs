//! Stream accounting: the hot path.
//!
//! Two 32-bit words: the state (the number of active streams and a
//! "someone is waiting for zero" bit) and the zeros (how many times the
//! count has reached zero, wrapping), which is what waiters sleep on:
//!
//! ```text
//!   state:  bits 31..26 unused  [ active stream count (+guard), bits 25..1 ][ W, bit 0 ]
//!   zeros:  [ times the count reached zero, modulo 2^32 ]
//! ```
//!
//! * `begin` is one `fetch_add`: no lock, no allocation, no system call.
//! * `end` is one compare-and-swap (it must refuse to go below zero, so a
//!   plain `fetch_sub` will not do). The end that brings the count to zero
//!   also clears the waiter bit in the same compare-and-swap, then counts
//!   the zero in `zeros` and, if a waiter had set the bit (before the
//!   compare-and-swap, or since), makes one system call to wake waiters.
//! * `wait_for_zero` reads `zeros` first, then sets the waiter bit with a
//!   read-modify-write that also tells it the count, re-reads `zeros` and
//!   sleeps on it (a futex, see `wait_word`) only while it still holds the
//!   first value. The waiter's "set the bit, read zeros" and the ender's
//!   "count the zero, read the bit" are sequentially consistent: either the
//!   waiter sees the zero or the ender sees the bit and wakes it; and since
//!   it sleeps on `zeros`, a wake that comes before it sleeps makes the
//!   sleep return at once. Any number of zeros between two of a waiter's
//!   reads moves `zeros` (only exactly 2^32 of them would not: over a minute
//!   of nothing but begin/end pairs between two instructions), so no burst
//!   of zeros can hide one from a waiter. (Before, a 6-bit epoch in the
//!   state word was the only trace of a zero, and exactly 64 zeros between
//!   a waiter's wake-up and its next read, about a microsecond of
//!   begin/end pairs, hid them all.) The loom model in
//!   `tests/loom_stream_counter.rs` checks every interleaving, across the
//!   wrap of `zeros` too.
//!
//! The totals of streams started and finished live on the same cache line:
//! a begin/end pair touches one line, so under contention one line moves
//! between cores, not three.

use crate::clock::Mono;
use crate::wait_word::{AtomicU32, Ordering, WaitWord};
use crossbeam_utils::CachePadded;
use std::time::Duration;

use crate::sync::{fence, AtomicU64};

const WAITERS: u32 = 1;
const ONE_STREAM: u32 = 2;
const COUNT_BITS: u32 = 25;
const COUNT_MASK: u32 = ((1 << COUNT_BITS) - 1) << 1;
/// At most this many streams may be active at once (2^24 - 1). The count's
/// field has room for twice as many, which leaves a guard band so that a
/// `begin` that overshoots and then backs out can never carry out of the
/// field.
pub const MAX_ACTIVE_STREAMS: u32 = (1 << (COUNT_BITS - 1)) - 1;

fn count(word: u32) -> u32 {
    (word & COUNT_MASK) >> 1
}

/// The state after a zero: count 0, no waiter bit (the wake that follows
/// serves everyone who had set it).
fn after_zero(word: u32) -> u32 {
    word & !(COUNT_MASK | WAITERS)
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
    state: AtomicU32,
    /// Zeros so far, wrapping: the word waiters sleep on.
    zeros: WaitWord,
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
                state: AtomicU32::new(0),
                zeros: WaitWord::new(0),
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
                state: AtomicU32::new(0),
                zeros: WaitWord::new(0),
                started: AtomicU64::new(0),
                finished: AtomicU64::new(0),
            }),
        }
    }

    /// Counts one more active stream.
    #[inline]
    pub fn begin(&self) -> Result<(), CountError> {
        let state = &self.line.state;
        // Relaxed is enough: nothing is published by starting a stream.
        let previous = state.fetch_add(ONE_STREAM, Ordering::Relaxed);
        if count(previous) >= MAX_ACTIVE_STREAMS {
            // Back out. Never reaches zero (previous count >= 2^24 - 1), so no
            // waiter needs waking; the guard band keeps the count from
            // carrying out of the count's field.
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
        let state = &self.line.state;
        let mut current = state.load(Ordering::Relaxed);
        loop {
            if count(current) == 0 {
                return Err(CountError::NoActiveStream);
            }
            // Reaching zero clears the waiter bit (the wake below serves
            // everyone who set it).
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
        if count(current) == 1 {
            self.zero_reached(current & WAITERS != 0);
        }
        Ok(())
    }

    /// Counts a zero and wakes the waiters: those whose bit the zero
    /// cleared (`had_waiters`) and any that set it since. The SeqCst fence
    /// pairs with the waiter's, between its "set the bit" and "read
    /// `zeros`": either it sees this zero, or this reload sees its bit.
    /// (Fences, not SeqCst accesses: the two are the same on x86 and ARM,
    /// and loom models only the fences as sequentially consistent.)
    fn zero_reached(&self, had_waiters: bool) {
        self.line.zeros.atomic().fetch_add(1, Ordering::AcqRel);
        fence(Ordering::SeqCst);
        if had_waiters || self.line.state.load(Ordering::Relaxed) & WAITERS != 0 {
            self.line.zeros.wake_all();
        }
    }

    /// The zeros word's lock, if it has one, for the fork handlers.
    #[cfg(not(loom))]
    pub fn hold_across_fork(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        self.line.zeros.hold_across_fork()
    }

    /// Number of streams active now.
    #[inline]
    pub fn active(&self) -> u32 {
        count(self.line.state.load(Ordering::Acquire))
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
        self.wait_for_zero_since(self.zeros_so_far(), deadline)
    }

    /// The count of zeros so far (wrapping), for
    /// [`StreamCounter::wait_for_zero_since`].
    #[doc(hidden)]
    pub fn zeros_so_far(&self) -> u32 {
        self.line.zeros.atomic().load(Ordering::Acquire)
    }

    /// As [`StreamCounter::wait_for_zero_until`], for a wait that began when
    /// [`StreamCounter::zeros_so_far`] returned `first`: true when the count
    /// is zero or has been zero since. (The loom model takes `first` before
    /// it starts the threads that end streams, so that "during the wait" is
    /// defined.)
    #[doc(hidden)]
    pub fn wait_for_zero_since(&self, first: u32, deadline: Mono) -> bool {
        let zeros = self.line.zeros.atomic();
        loop {
            // One read-modify-write sets the bit and reads the count; an
            // ender that does not see the bit counted its zero before the
            // read of `zeros` just after (the fences: see `zero_reached`).
            let current = self.line.state.fetch_or(WAITERS, Ordering::AcqRel);
            fence(Ordering::SeqCst);
            if count(current) == 0 || zeros.load(Ordering::Acquire) != first {
                return true;
            }
            let left = deadline.left();
            if left == Some(Duration::ZERO) {
                return false;
            }
            // Returns at once if a zero has moved `zeros` since `first`.
            self.line.zeros.wait(first, left);
        }
    }

    /// Back to zero active streams with the totals kept, waking every
    /// waiter: the testing reset. Streams still held by the caller's
    /// threads end later with [`CountError::NoActiveStream`].
    pub fn reset_active(&self) {
        self.line
            .state
            .fetch_and(!(COUNT_MASK | WAITERS), Ordering::AcqRel);
        self.line.zeros.atomic().fetch_add(1, Ordering::AcqRel);
        self.line.zeros.wake_all();
    }

    /// Returns the counter to zero, as at creation. For a forked child, whose
    /// parent's streams are not its own; see the runtime crate's `fork.rs`.
    pub fn reset_after_fork(&self) {
        self.line.state.store(0, Ordering::Relaxed);
        self.line.zeros.atomic().store(0, Ordering::Relaxed);
        self.line.started.store(0, Ordering::Relaxed);
        self.line.finished.store(0, Ordering::Relaxed);
    }

    /// A counter whose count of zeros is about to wrap: for the loom model
    /// of the wrap (`tests/loom_stream_counter.rs`).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn with_zeros_before_wrap() -> Self {
        let counter = Self::new();
        counter
            .line
            .zeros
            .atomic()
            .store(u32::MAX, Ordering::Relaxed);
        counter
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

    /// A counter with one stream open and a thread waiting for its zero
    /// (with `timeout`), returned once the waiter's bit is set: bounded by
    /// the waiter, which sets it at once.
    fn one_open_and_a_waiter(
        timeout: Option<Duration>,
    ) -> (Arc<StreamCounter>, std::thread::JoinHandle<bool>) {
        let counter = Arc::new(StreamCounter::new());
        counter.begin().unwrap();
        let waiter = {
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || counter.wait_for_zero(timeout))
        };
        while counter.line.state.load(Ordering::Acquire) & WAITERS == 0 {
            std::thread::yield_now();
        }
        (counter, waiter)
    }

    #[test]
    fn end_without_begin_keeps_a_waiter_bit_intact() {
        // The waiter's bit is set; the only stream ends.
        let (counter, waiter) = one_open_and_a_waiter(Some(Duration::from_secs(30)));
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
        let (counter, waiter) = one_open_and_a_waiter(Some(Duration::from_secs(30)));
        let started = std::time::Instant::now();
        counter.end().unwrap();
        counter.begin().unwrap();
        assert!(waiter.join().unwrap());
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(counter.active(), 1);
    }

    #[test]
    fn exactly_64_zeros_during_a_wait_are_seen() {
        // 64 end/begin pairs take about a microsecond, a futex wake-up
        // much longer. Before, the 6-bit zero epoch had wrapped by the time
        // the woken waiter read the word again: the same epoch, one stream,
        // and it slept on to its timeout (5 rounds of 5). 63 or 65 zeros
        // were seen.
        for zeros in [64, 128, 63, 65] {
            let (counter, waiter) = one_open_and_a_waiter(Some(Duration::from_secs(10)));
            std::thread::sleep(Duration::from_millis(5)); // asleep by now
            for _ in 0..zeros {
                counter.end().unwrap();
                counter.begin().unwrap();
            }
            assert!(waiter.join().unwrap(), "{zeros} zeros went unseen");
            assert_eq!(counter.active(), 1);
        }
    }

    #[test]
    fn a_huge_timeout_means_no_limit() {
        let (counter, waiter) = one_open_and_a_waiter(Some(Duration::MAX));
        counter.end().unwrap();
        assert!(waiter.join().unwrap());
    }
}
