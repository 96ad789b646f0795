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

use last_call_core::StreamCounter;
use loom::sync::Arc;
use loom::thread;

#[test]
fn the_last_end_wakes_a_waiter() {
    loom::model(|| {
        let counter = Arc::new(StreamCounter::new());
        counter.begin().unwrap();
        let ender = {
            let counter = Arc::clone(&counter);
            thread::spawn(move || counter.end().unwrap())
        };
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
            .map(|_| {
                let counter = Arc::clone(&counter);
                thread::spawn(move || counter.end().unwrap())
            })
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
            .map(|_| {
                let counter = Arc::clone(&counter);
                thread::spawn(move || counter.wait_for_zero(None))
            })
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
        let worker = {
            let counter = Arc::clone(&counter);
            thread::spawn(move || {
                // A second stream starts before the first ends.
                counter.begin().unwrap();
                counter.end().unwrap();
                counter.end().unwrap();
            })
        };
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
        let other = {
            let counter = Arc::clone(&counter);
            thread::spawn(move || counter.end().is_ok())
        };
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
    // again and sleep on, which loom reports as a deadlock.
    loom::model(|| {
        let counter = Arc::new(StreamCounter::new());
        counter.begin().unwrap();
        let churn = {
            let counter = Arc::clone(&counter);
            thread::spawn(move || {
                counter.end().unwrap();
                counter.begin().unwrap();
            })
        };
        assert!(counter.wait_for_zero(None));
        churn.join().unwrap();
        assert_eq!(counter.active(), 1);
    });
}
