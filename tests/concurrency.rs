//! Stream accounting under real threads.

use last_call::Runtime;
use std::sync::mpsc;
use std::time::Duration;

const THREADS: usize = 4;
const PAIRS_PER_THREAD: usize = 1_000_000;

#[test]
fn a_million_pairs_per_thread_return_the_count_to_exactly_zero() {
    let runtime = Runtime::new();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..PAIRS_PER_THREAD {
                    runtime.increment_active_streams().unwrap();
                    runtime.decrement_active_streams().unwrap();
                }
            });
        }
    });
    assert_eq!(runtime.active_streams(), 0);
    let total = (THREADS * PAIRS_PER_THREAD) as u64;
    assert_eq!(runtime.streams_started_total(), total);
    assert_eq!(runtime.streams_finished_total(), total);
    assert!(runtime.decrement_active_streams().is_err());
}

#[test]
fn overlapping_guards_on_many_threads_never_lose_a_count() {
    let runtime = Runtime::new();
    let held = runtime.begin_stream().unwrap();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..PAIRS_PER_THREAD / 10 {
                    let _a = runtime.begin_stream().unwrap();
                    let _b = runtime.begin_stream().unwrap();
                    assert!(runtime.active_streams() >= 3);
                }
            });
        }
    });
    assert_eq!(runtime.active_streams(), 1);
    drop(held);
    assert_eq!(runtime.active_streams(), 0);
}

#[test]
fn a_blocked_waiter_wakes_when_the_last_of_many_streams_ends() {
    let runtime = Runtime::new();
    let streams = 8;
    for _ in 0..streams {
        runtime.increment_active_streams().unwrap();
    }
    let (done, woke) = mpsc::channel();
    std::thread::scope(|scope| {
        let waiter_runtime = runtime.clone();
        scope.spawn(move || {
            // No timeout: only the last end can release this thread.
            done.send(waiter_runtime.wait_for_streams(None).unwrap())
                .unwrap();
        });
        // Ends from several threads; the waiter must still be asleep after
        // all but the last.
        std::thread::scope(|enders| {
            for _ in 0..streams - 1 {
                enders.spawn(|| runtime.decrement_active_streams().unwrap());
            }
        });
        assert!(
            woke.recv_timeout(Duration::from_millis(200)).is_err(),
            "the waiter returned while a stream was still active"
        );
        runtime.decrement_active_streams().unwrap();
        assert_eq!(woke.recv_timeout(Duration::from_secs(10)), Ok(true));
    });
}

#[test]
fn many_waiters_all_wake() {
    let runtime = Runtime::new();
    runtime.increment_active_streams().unwrap();
    let (done, woke) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..6 {
            let done = done.clone();
            let runtime = runtime.clone();
            scope.spawn(move || {
                done.send(
                    runtime
                        .wait_for_streams(Some(Duration::from_secs(30)))
                        .unwrap(),
                )
                .unwrap()
            });
        }
        std::thread::sleep(Duration::from_millis(50));
        runtime.decrement_active_streams().unwrap();
        for _ in 0..6 {
            assert_eq!(woke.recv_timeout(Duration::from_secs(10)), Ok(true));
        }
    });
}
