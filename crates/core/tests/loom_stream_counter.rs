//! loom model of the stream counter: no wake-up is ever lost between the
//! end that brings the count to zero and a waiter going to sleep.
//!
//! loom runs every interleaving of the atomics (and of the wait primitive:
//! the futex model in `src/wait_word/futex_model.rs`, or with the
//! `portable-wait` feature the portable implementation itself). A lost
//! wake-up shows up as a waiter asleep forever, which loom reports as a
//! deadlock and fails the test.
//!
//! Run with `make loom` (and over the portable wait, `make test-portable`;
//! both part of `make test`): it builds the core crate alone with
//! `RUSTFLAGS="--cfg loom"`. loom's condvar has no
//! timeouts, so the models wait without one; the timeout path is covered by
//! the ordinary tests.
#![cfg(loom)]

use last_call_core::clock::Mono;
use last_call_core::StreamCounter;
use loom::sync::Arc;
use loom::thread;

/// Runs `body` on a new thread with its own handle on `counter`.
fn on_thread<T: Send + 'static>(
    counter: &Arc<StreamCounter>,
    body: impl FnOnce(&StreamCounter) -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let counter = Arc::clone(counter);
    thread::spawn(move || body(&counter))
}

/// With one stream open, `churn` runs on another thread while this one
/// waits for a zero counted after its wait began: the wait must return.
/// The counter is handed back for the caller's checks.
fn a_zero_is_seen_through(
    counter: StreamCounter,
    churn: impl FnOnce(&StreamCounter) + Send + 'static,
) -> Arc<StreamCounter> {
    let counter = Arc::new(counter);
    counter.begin().unwrap();
    let first = counter.zeros_so_far(); // the wait begins before the churn
    let churn = on_thread(&counter, churn);
    assert!(counter.wait_for_zero_since(first, Mono::deadline(None)));
    churn.join().unwrap();
    counter
}

#[test]
fn the_last_end_wakes_a_waiter() {
    loom::model(|| {
        let counter = Arc::new(StreamCounter::new());
        counter.begin().unwrap();
        let ender = on_thread(&counter, |counter| counter.end().unwrap());
        assert!(counter.wait_for_zero(None));
        assert_eq!(counter.active(), 0);
        ender.join().unwrap();
    });
}

#[test]
fn two_enders_racing_wake_a_waiter_exactly_at_zero() {
    loom::model(|| {
        let counter = Arc::new(StreamCounter::new());
        counter.begin().unwrap();
        counter.begin().unwrap();
        let enders: Vec<_> = (0..2)
            .map(|_| on_thread(&counter, |counter| counter.end().unwrap()))
            .collect();
        assert!(counter.wait_for_zero(None));
        // The waiter returned, so both ends happened: zero is final here.
        assert_eq!(counter.active(), 0);
        for ender in enders {
            ender.join().unwrap();
        }
        assert_eq!(counter.finished_total(), 2);
    });
}

#[test]
fn every_waiter_is_woken() {
    loom::model(|| {
        let counter = Arc::new(StreamCounter::new());
        counter.begin().unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| on_thread(&counter, |counter| counter.wait_for_zero(None)))
            .collect();
        counter.end().unwrap();
        for waiter in waiters {
            assert!(waiter.join().unwrap());
        }
    });
}

#[test]
fn a_stream_that_begins_while_a_waiter_sleeps_is_waited_for() {
    loom::model(|| {
        let counter = Arc::new(StreamCounter::new());
        counter.begin().unwrap();
        let worker = on_thread(&counter, |counter| {
            // A second stream starts before the first ends.
            counter.begin().unwrap();
            counter.end().unwrap();
            counter.end().unwrap();
        });
        assert!(counter.wait_for_zero(None));
        worker.join().unwrap();
        assert_eq!(counter.active(), 0);
    });
}

#[test]
fn an_unmatched_end_never_wraps_under_races() {
    loom::model(|| {
        let counter = Arc::new(StreamCounter::new());
        counter.begin().unwrap();
        let other = on_thread(&counter, |counter| counter.end().is_ok());
        let mine = counter.end().is_ok();
        let theirs = other.join().unwrap();
        // Exactly one of the two ends matched the one begin.
        assert!(mine ^ theirs);
        assert_eq!(counter.active(), 0);
    });
}

#[test]
fn a_brief_zero_is_seen_even_when_a_new_stream_begins_at_once() {
    // The end reaches zero and a new stream begins straight after: the
    // waiter must still return (the count did touch zero), whatever the
    // interleaving. Before the "zeros" count, it could wake, see one stream
    // again and sleep on, which loom reports as a deadlock. (The wait
    // begins before the churn starts: a waiter that first looks after the
    // zero and the new begin rightly waits for the next zero.)
    loom::model(|| {
        let counter = a_zero_is_seen_through(StreamCounter::new(), |counter| {
            counter.end().unwrap();
            counter.begin().unwrap();
        });
        assert_eq!(counter.active(), 1);
    });
}

#[test]
fn two_zeros_in_a_row_are_seen_whatever_the_waiter_read_between_them() {
    // Any number of zeros between two of the waiter's reads must move what
    // it compares: before, a 6-bit epoch did, and exactly 64 zeros (one
    // full turn) hid them all. Two zeros with a begin after each put the
    // count back where it was, twice, in every interleaving with the
    // waiter's reads, its sleep and its wake-up.
    loom::model(|| {
        let counter = a_zero_is_seen_through(StreamCounter::new(), |counter| {
            for _ in 0..2 {
                counter.end().unwrap();
                counter.begin().unwrap();
            }
        });
        assert_eq!(counter.active(), 1);
    });
}

#[test]
fn a_zero_is_seen_across_the_wrap_of_the_zeros_count() {
    // The count of zeros waiters compare wraps from u32::MAX to 0 during
    // the wait.
    loom::model(|| {
        let counter = StreamCounter::with_zeros_before_wrap();
        assert_eq!(counter.zeros_so_far(), u32::MAX);
        a_zero_is_seen_through(counter, |counter| {
            counter.end().unwrap();
            counter.begin().unwrap();
        });
    });
}

#[test]
fn a_zero_is_seen_when_another_thread_begins_a_stream_right_after_it() {
    // The waiter's "set the bit" can read the state after the zero and a
    // begin from a thread that has no order with the ender: the ender then
    // neither saw the bit before its zero nor is seen by it, unless one of
    // them looks again (the fences in `zero_reached` and the wait).
    loom::model(|| {
        let counter = Arc::new(StreamCounter::new());
        counter.begin().unwrap();
        let first = counter.zeros_so_far();
        let ender = on_thread(&counter, |counter| counter.end().unwrap());
        let beginner = on_thread(&counter, |counter| {
            while counter.active() != 0 {
                thread::yield_now();
            }
            counter.begin().unwrap();
        });
        assert!(counter.wait_for_zero_since(first, Mono::deadline(None)));
        ender.join().unwrap();
        beginner.join().unwrap();
    });
}
