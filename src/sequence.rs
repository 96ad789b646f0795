//! The shutdown sequence, run once on the core thread:
//!
//! ```text
//! signal ─┬─ Draining at once (readiness 503, new tasks refused, streams run)
//!         │   ... drain delay: keep answering late load-balancer traffic ...
//!         ├─ no stream active and the drain delay over ─────────────┐
//!         │                                                          │
//!         ├─ deadline - close notice, streams still open:            │
//!         │    ClosingStreams (hosts send `retry:` + reconnect)      │
//!         │    ... wait for them, at most until the deadline ...     │
//!         ├─ Stopping: shutdown hooks in order, each told the time left
//!         └─ Stopped: the host exits
//! ```
//!
//! Every wait here sleeps until an event (the last stream's end, a
//! deadline); nothing polls. All times are measured from the moment the
//! sequence started (the signal handler stamps it), so a slow wake-up of
//! this thread never stretches the deadline.

use crate::clock;
use crate::phase::{Phase, PhaseWord};
use crate::runtime::{lock, HookReport, Inner};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Nanoseconds on the monotonic clock, as a point to wait for.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct At(u64);

impl At {
    fn after(self, delay: Duration) -> At {
        At(self
            .0
            .saturating_add(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX)))
    }

    fn before(self, delay: Duration) -> At {
        At(self
            .0
            .saturating_sub(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX)))
    }

    fn left(self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(clock::monotonic_ns()))
    }

    fn sleep_until(self) {
        // One timed sleep (re-armed only if the OS wakes us early).
        loop {
            let left = self.left();
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left);
        }
    }
}

pub(crate) fn run(inner: &Inner, seen: &mut PhaseWord) {
    let config = inner.sequence_config();
    let started = inner
        .phase
        .sequence_started_at()
        .map_or_else(clock::monotonic_ns, |stamp| stamp.monotonic_ns);
    let started = At(started);
    let deadline = started.after(config.shutdown_timeout);
    let drain_over = started.after(config.drain_delay).min(deadline);
    let closing_at = deadline.before(config.close_notice).max(started);

    // Keep serving through the drain delay (or until closing time, if the
    // configuration put that first).
    drain_over.min(closing_at).sleep_until();

    // Wait for the last stream, at most until closing time.
    let mut drained = inner.streams.wait_for_zero(Some(closing_at.left()));
    if !drained {
        inner
            .phase
            .streams_asked_to_close
            .store(u64::from(inner.streams.active()), Ordering::Relaxed);
        inner.advance(Phase::ClosingStreams, seen);
        drained = inner.streams.wait_for_zero(Some(deadline.left()));
    }
    drain_over.sleep_until();
    if !drained {
        eprintln!(
            "last-call: {} stream(s) still open at the deadline",
            inner.streams.active()
        );
    }

    inner.advance(Phase::Stopping, seen);
    run_hooks(inner, deadline);
    inner.advance(Phase::Stopped, seen);
}

/// Runs the hooks in registration order, each on a thread of its own, each
/// waited for at most until the deadline. A hook that overruns is left
/// running; the next one is told it has no time left.
fn run_hooks(inner: &Inner, deadline: At) {
    for (name, hook) in inner.take_hooks() {
        let given = deadline.left();
        let begun = clock::monotonic_ns();
        let (sender, receiver) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("gs-hook-{name}"))
            .spawn(move || {
                let finished =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(given)));
                let _ = sender.send(finished.unwrap_or(false));
            });
        let finished = match spawned {
            Ok(_) => match receiver.recv_timeout(given) {
                Ok(finished) => finished,
                Err(_) => {
                    eprintln!("last-call: shutdown hook {name:?} overran the deadline");
                    false
                }
            },
            Err(error) => {
                eprintln!("last-call: could not start shutdown hook {name:?}: {error}");
                false
            }
        };
        lock(&inner.hook_reports).push(HookReport {
            name,
            given,
            took: Duration::from_nanos(clock::monotonic_ns().saturating_sub(begun)),
            finished,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Phase, Runtime};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    fn config(drain: u64, timeout: u64, notice: u64) -> Config {
        Config {
            drain_delay: Duration::from_millis(drain),
            shutdown_timeout: Duration::from_millis(timeout),
            close_notice: Duration::from_millis(notice),
            ..Config::default()
        }
    }

    const LONG: Option<Duration> = Some(Duration::from_secs(30));

    #[test]
    fn with_no_stream_it_stops_after_the_drain_delay() {
        let runtime = Runtime::new();
        runtime.configure(config(100, 10_000, 1_000)).unwrap();
        let begun = Instant::now();
        runtime.begin_shutdown().unwrap();
        assert_eq!(runtime.phase(), Phase::Draining);
        assert_eq!(
            runtime.wait_for_phase(Phase::Stopped, LONG),
            Ok(Phase::Stopped)
        );
        assert!(begun.elapsed() >= Duration::from_millis(100));
        assert!(runtime.phase_entered_at(Phase::ClosingStreams).is_none());
        assert_eq!(runtime.streams_closed_by_deadline(), 0);
        assert!(runtime.shutdown_duration().unwrap() >= Duration::from_millis(100));
    }

    #[test]
    fn a_stream_that_never_ends_is_asked_to_close_then_the_deadline_stops() {
        let runtime = Runtime::new();
        runtime.configure(config(0, 400, 200)).unwrap();
        let (sender, receiver) = mpsc::channel();
        runtime
            .on_phase(move |change| sender.send(change).unwrap())
            .unwrap();
        let _stream = runtime.begin_stream().unwrap();
        runtime.begin_shutdown().unwrap();
        assert_eq!(
            runtime.wait_for_phase(Phase::Stopped, LONG),
            Ok(Phase::Stopped)
        );
        // Listeners are told on the core thread, possibly just after waiters
        // of the phase wake up.
        let to: Vec<Phase> = (0..4)
            .map(|_| receiver.recv_timeout(Duration::from_secs(10)).unwrap().to)
            .collect();
        assert_eq!(
            to,
            vec![
                Phase::Draining,
                Phase::ClosingStreams,
                Phase::Stopping,
                Phase::Stopped
            ]
        );
        assert_eq!(runtime.streams_closed_by_deadline(), 1);
        let started = runtime.shutdown_started_at().unwrap();
        let closing = runtime.phase_entered_at(Phase::ClosingStreams).unwrap();
        assert!(closing.duration_since(started).unwrap() >= Duration::from_millis(200));
        assert!(runtime.shutdown_duration().unwrap() >= Duration::from_millis(400));
    }

    #[test]
    fn hooks_run_in_order_with_decreasing_time_and_an_overrun_does_not_hold_the_deadline() {
        let runtime = Runtime::new();
        runtime.configure(config(0, 500, 100)).unwrap();
        let (sender, receiver) = mpsc::channel();
        let first = sender.clone();
        runtime.register_shutdown_hook("first", move |left| {
            first.send(("first", left)).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            true
        });
        let second = sender.clone();
        runtime.register_shutdown_hook("overrun", move |left| {
            second.send(("overrun", left)).unwrap();
            std::thread::sleep(Duration::from_secs(5));
            true
        });
        runtime.register_shutdown_hook("late", move |left| {
            sender.send(("late", left)).unwrap();
            true
        });
        let removed = runtime.register_shutdown_hook("removed", |_| true);
        assert!(runtime.remove_shutdown_hook(removed));
        let begun = Instant::now();
        runtime.begin_shutdown().unwrap();
        assert_eq!(
            runtime.wait_for_phase(Phase::Stopped, LONG),
            Ok(Phase::Stopped)
        );
        // The overrunning hook sleeps 5 s; Stopped came at the 0.5 s deadline.
        assert!(begun.elapsed() < Duration::from_secs(4));
        // Each hook runs (the late one told it has no time left), even if the
        // sequence no longer waits for it.
        let seen: Vec<_> = (0..3)
            .map(|_| receiver.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(
            seen.iter().map(|s| s.0).collect::<Vec<_>>(),
            ["first", "overrun", "late"]
        );
        assert!(seen[0].1 > seen[1].1);
        assert_eq!(seen[2].1, Duration::ZERO);
        let reports = runtime.hook_reports();
        assert_eq!(
            reports.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["first", "overrun", "late"]
        );
        assert!(reports[0].finished);
        assert!(!reports[1].finished);
    }

    #[test]
    fn the_last_stream_ending_moves_the_sequence_on() {
        let runtime = Runtime::new();
        runtime.configure(config(0, 30_000, 1_000)).unwrap();
        let stream = runtime.begin_stream().unwrap();
        runtime.begin_shutdown().unwrap();
        assert_eq!(
            runtime.wait_for_phase(Phase::Stopping, Some(Duration::from_millis(100))),
            Err(Phase::Draining)
        );
        drop(stream);
        assert_eq!(
            runtime.wait_for_phase(Phase::Stopped, LONG),
            Ok(Phase::Stopped)
        );
        // Well before the 29 s closing time: the end woke the sequence.
        assert!(runtime.shutdown_duration().unwrap() < Duration::from_secs(10));
    }
}
