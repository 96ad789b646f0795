//! A 32-bit atomic word that threads can sleep on until it changes.
//!
//! This is the only blocking primitive in the crate. `wait(expected,
//! timeout)` sleeps only if the word still holds `expected` when the sleeper
//! is queued, and `wake_all()` wakes every sleeper, so a waker that changes
//! the word before calling `wake_all` can never slip in between a sleeper's
//! check and its sleep: no wake-up is lost, and no one has to poll.
//!
//! Two implementations share that interface (`new`, `atomic`, `wait`,
//! `wake_all`):
//!
//! * `futex`: Linux and Android, the word is the futex (the default there);
//! * `portable`: std's `Mutex` and `Condvar` beside the word, everywhere
//!   else (macOS, the BSDs, Windows), and on Linux with the `portable-wait`
//!   feature, which is how its tests, the full suite and the loom model run
//!   it here.
//!
//! Under `cfg(loom)` the futex is replaced by a loom model of it
//! (`futex_model`), and the portable implementation runs over loom's own
//! `Mutex` and `Condvar`.

pub(crate) use crate::sync::{AtomicU32, Ordering};

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "portable-wait"),
    not(loom)
))]
mod futex;
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "portable-wait"),
    not(loom)
))]
pub use futex::WaitWord;

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "portable-wait"),
    loom
))]
mod futex_model;
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "portable-wait"),
    loom
))]
pub use futex_model::WaitWord;

// Compiled for the tests on Linux too, so the default `cargo test` checks
// the portable implementation beside the futex.
#[cfg(any(
    not(any(target_os = "linux", target_os = "android")),
    feature = "portable-wait",
    all(test, not(loom))
))]
mod portable;
#[cfg(any(
    not(any(target_os = "linux", target_os = "android")),
    feature = "portable-wait"
))]
pub use portable::WaitWord;

/// The same behaviour, asserted of whichever implementation `$word` names.
#[cfg(all(test, not(loom)))]
macro_rules! wait_word_tests {
    ($module:ident, $word:ty) => {
        mod $module {
            use crate::wait_word::Ordering;
            use std::sync::{Arc, Barrier};
            use std::time::{Duration, Instant};

            type Word = $word;

            #[test]
            fn wait_returns_at_once_when_the_word_differs() {
                let word = Word::new(1);
                let started = Instant::now();
                word.wait(0, Some(Duration::from_secs(10)));
                word.wait(0, None);
                assert!(started.elapsed() < Duration::from_secs(5));
            }

            #[test]
            fn wait_honours_its_timeout() {
                let word = Word::new(1);
                let started = Instant::now();
                word.wait(1, Some(Duration::from_millis(20)));
                assert!(started.elapsed() >= Duration::from_millis(20));
            }

            #[test]
            fn a_zero_timeout_and_an_enormous_one_are_both_accepted() {
                let word = Arc::new(Word::new(1));
                word.wait(1, Some(Duration::ZERO));
                let sleeper = {
                    let word = Arc::clone(&word);
                    std::thread::spawn(move || {
                        while word.atomic().load(Ordering::Acquire) == 1 {
                            word.wait(1, Some(Duration::MAX));
                        }
                    })
                };
                std::thread::sleep(Duration::from_millis(10));
                word.atomic().store(2, Ordering::Release);
                word.wake_all();
                sleeper.join().unwrap();
            }

            #[test]
            fn wake_all_without_sleepers_is_harmless() {
                let word = Word::new(0);
                for _ in 0..1000 {
                    word.wake_all();
                }
                assert_eq!(word.atomic().load(Ordering::Relaxed), 0);
            }

            #[test]
            fn wake_all_wakes_every_sleeper() {
                const SLEEPERS: usize = 8;
                let word = Arc::new(Word::new(1));
                let ready = Arc::new(Barrier::new(SLEEPERS + 1));
                let sleepers: Vec<_> = (0..SLEEPERS)
                    .map(|_| {
                        let word = Arc::clone(&word);
                        let ready = Arc::clone(&ready);
                        std::thread::spawn(move || {
                            ready.wait();
                            // Bounded: a lost wake-up fails the test by
                            // timing out here instead of hanging it.
                            let deadline = Instant::now() + Duration::from_secs(30);
                            while word.atomic().load(Ordering::Acquire) == 1 {
                                assert!(Instant::now() < deadline, "wake-up lost");
                                word.wait(1, Some(Duration::from_secs(30)));
                            }
                        })
                    })
                    .collect();
                ready.wait();
                std::thread::sleep(Duration::from_millis(10));
                word.atomic().store(2, Ordering::Release);
                word.wake_all();
                for sleeper in sleepers {
                    sleeper.join().unwrap();
                }
            }

            /// Many rounds of "change the word, wake" racing a sleeper that
            /// waits with no timeout: a lost wake-up leaves the sleeper
            /// asleep, and the bounded join below fails the test.
            #[test]
            fn no_wake_up_is_lost_over_many_rounds() {
                const ROUNDS: u32 = 2_000;
                let word = Arc::new(Word::new(0));
                let (done_tx, done_rx) = std::sync::mpsc::channel();
                let sleeper = {
                    let word = Arc::clone(&word);
                    std::thread::spawn(move || {
                        for round in 0..ROUNDS {
                            while word.atomic().load(Ordering::Acquire) == round {
                                word.wait(round, None);
                            }
                        }
                        done_tx.send(()).unwrap();
                    })
                };
                for round in 0..ROUNDS {
                    word.atomic().store(round + 1, Ordering::Release);
                    word.wake_all();
                }
                done_rx
                    .recv_timeout(Duration::from_secs(60))
                    .expect("the sleeper missed a wake-up");
                sleeper.join().unwrap();
            }
        }
    };
}

#[cfg(all(test, not(loom)))]
wait_word_tests!(selected, crate::wait_word::WaitWord);
#[cfg(all(test, not(loom)))]
wait_word_tests!(portable_tests, crate::wait_word::portable::WaitWord);

/// The futex implementation is the bare word; the portable one carries a
/// mutex and a condvar beside it. This tells a forced-portable build from a
/// futex one, so `make test-portable` cannot silently test the futex.
#[cfg(all(test, not(loom)))]
#[test]
fn the_build_selects_the_implementation_its_cfg_names() {
    let is_bare_word = std::mem::size_of::<WaitWord>() == std::mem::size_of::<AtomicU32>();
    let futex_expected = cfg!(all(
        any(target_os = "linux", target_os = "android"),
        not(feature = "portable-wait")
    ));
    assert_eq!(is_bare_word, futex_expected);
}
