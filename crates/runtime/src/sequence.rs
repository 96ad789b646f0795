//! The shutdown sequence, run on its own thread each time it starts:
//!
//! ```text
//! signal ─┬─ Draining at once (readiness 503, new tasks refused, streams run)
//!         │   ... drain delay: keep answering late load-balancer traffic ...
//!         ├─ no stream active and the drain delay over ──────────────┐
//!         │                                                           │
//!         ├─ deadline - hook budget - close notice, streams still open:
//!         │    ClosingStreams (hosts end each stream honestly)        │
//!         │    ... wait for them, at most until the hook budget ...   │
//!         ├─ Stopping: shutdown hooks, group by group, each group with
//!         │    its share of the time left (at least the hook budget)
//!         └─ Stopped: the host exits
//! ```
//!
//! Every wait here sleeps until an event (the last stream's end, a hook's
//! return, a deadline); nothing polls. All times are measured from the
//! moment the sequence started (the signal handler stamps it), so a slow
//! wake-up of this thread never stretches the deadline. No user code runs
//! on this thread: listeners are called by the delivery thread, hooks on
//! threads of their own. Each part of the sequence runs inside a panic
//! boundary, so a failure in one is logged and Stopped still comes on time.

use crate::clock::Mono;
use crate::log::warn;
use crate::phase::Phase;
use crate::runtime::{lock, Inner};
use crate::shutdown_log::RunLog;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The moments of one run of the sequence, fixed when it starts (see
/// [`Inner::timeline`]) so that the sequence thread and every stream asking
/// for its moment agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeline {
    pub(crate) started: Mono,
    pub(crate) drain_over: Mono,
    /// ClosingStreams, if streams are still open: the close notice before
    /// `hooks_at`, and the first nudge.
    pub(crate) closing_at: Mono,
    /// The streams' last moment: pod-bound streams get their final event
    /// here, and the last resumable stream is nudged here; the margin
    /// before `hooks_at` lets both be written and closed.
    pub(crate) streams_end: Mono,
    /// The hooks' budget begins: Stopping at the latest. The deadline itself
    /// when no hook is registered, so that streams may use the whole
    /// timeout.
    pub(crate) hooks_at: Mono,
    pub(crate) deadline: Mono,
}

impl Timeline {
    /// The timeline of a sequence started at `started` with `config`;
    /// `hooks` tells whether any shutdown hook is registered (without one,
    /// no budget is kept for hooks).
    pub(crate) fn new(started: Mono, config: &crate::Config, hooks: bool) -> Timeline {
        let timings = config.timings();
        let deadline = started.after(timings.shutdown_timeout);
        let budget = if hooks {
            timings.hook_budget
        } else {
            std::time::Duration::ZERO
        };
        let hooks_at = deadline.before(budget).max(started);
        let closing_at = hooks_at.before(timings.close_notice).max(started);
        let streams_end = hooks_at
            .before(crate::reconnect_spread::nudge_margin(timings.close_notice))
            .max(closing_at);
        let drain_over = started.after(timings.drain_delay).min(hooks_at);
        Timeline {
            started,
            drain_over,
            closing_at,
            streams_end,
            hooks_at,
            deadline,
        }
    }
}

/// The sequence thread's body: runs the sequence each time it starts (once
/// in a real process; again after each testing reset).
pub(crate) fn sequence_thread(inner: Arc<Inner>) {
    let mut last_run = None;
    loop {
        // Busy *before* reading the generation: with the testing reset's
        // "bump the generation, then wait until not busy" (both sequentially
        // consistent), either this thread sees the new generation or the
        // reset waits for this pass to end.
        inner.sequence_busy(true);
        let word = inner.phase.load();
        let generation = inner.generation();
        if word.sequence_started() && last_run != Some(generation) {
            last_run = Some(generation);
            run(&inner, generation);
            inner.sequence_busy(false);
            continue;
        }
        inner.sequence_busy(false);
        inner.phase.wait_for_change(word, None);
    }
}

fn guarded(part: &str, body: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(body)).is_err() {
        warn!("the shutdown sequence failed in {part}; going on");
    }
}

fn run(inner: &Arc<Inner>, generation: u64) {
    let timeline = inner.timeline().unwrap_or_else(|| {
        // Started, so stamped; a reset between the two reads ends this
        // generation's run at its first check.
        Timeline::new(Mono::now(), &inner.sequence_config(), true)
    });
    let mut log = RunLog::begin(inner, &timeline);
    guarded("the drain", || {
        drain(inner, timeline, generation, log.as_ref())
    });
    if !inner.is_generation(generation) {
        return;
    }
    if let Some(log) = log.as_mut() {
        let hooks = lock(&inner.shared).hooks.registered_count();
        log.stopping(inner, hooks, timeline.deadline);
    }
    inner.phase.advance(Phase::Stopping);
    guarded("the shutdown hooks", || {
        crate::hooks::run(inner, timeline.deadline, generation)
    });
    if inner.is_generation(generation) {
        // Before Stopped: the host may exit as soon as it is entered.
        if let Some(log) = &log {
            let reports = lock(&inner.shared).hooks.reports();
            log.done(inner, &reports);
        }
        inner.phase.advance(Phase::Stopped);
    }
}

/// Draining, and ClosingStreams if streams outlast the close time.
fn drain(inner: &Inner, timeline: Timeline, generation: u64, log: Option<&RunLog>) {
    // Keep serving through the drain delay (or until closing time, if the
    // configuration put that first).
    inner.sleep_until(timeline.drain_over.min(timeline.closing_at), generation);
    // Wait for the last stream, at most until closing time.
    let mut drained = inner.wait_idle_until(timeline.closing_at);
    if !inner.is_generation(generation) {
        return;
    }
    if !drained {
        inner
            .phase
            .streams_asked_to_close
            .store(u64::from(inner.streams.active()), Ordering::Relaxed);
        inner.phase.advance(Phase::ClosingStreams);
        if let Some(log) = log {
            log.closing(inner, &timeline);
        }
        drained = inner.wait_idle_until(timeline.hooks_at);
    }
    inner.sleep_until(timeline.drain_over, generation);
    if !drained && inner.is_generation(generation) {
        let work = inner.work.active();
        let and_work = if work > 0 {
            format!(", and {work} piece(s) of work still running")
        } else {
            String::new()
        };
        warn!(
            "{} stream(s) still open when the hooks' budget began{and_work}",
            inner.streams.active()
        );
    }
}

#[cfg(test)]
mod timeline_tests {
    use super::Timeline;
    use crate::clock::Mono;
    use crate::Config;
    use std::time::Duration;

    const START: Mono = Mono::from_ns(1_000_000_000);

    fn at(moment: Mono) -> Duration {
        START.until(moment)
    }

    fn secs(value: f64) -> Duration {
        Duration::from_secs_f64(value)
    }

    /// For every timeout from 1 s to 120 s, with and without hooks, with
    /// and without an explicit budget: the defaults are accepted, and the
    /// moments follow the rule (`docs/how-it-works.md`, "The shutdown sequence and its timeline").
    #[test]
    fn the_timeline_for_timeouts_from_1_to_120_s() {
        let timeouts = [
            1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 45.0, 60.0,
            90.0, 120.0,
        ];
        for timeout in timeouts {
            for budget in [None, Some(secs(timeout / 10.0))] {
                for hooks in [false, true] {
                    let config = Config {
                        shutdown_timeout: secs(timeout),
                        hook_budget: budget,
                        ..Config::default()
                    };
                    let case = format!("timeout {timeout} s, budget {budget:?}, hooks {hooks}");
                    config.validate().unwrap_or_else(|e| panic!("{case}: {e}"));
                    let timings = config.timings();
                    let line = Timeline::new(START, &config, hooks);
                    assert_eq!(at(line.deadline), secs(timeout), "{case}");
                    // The hooks' budget: kept only when a hook is registered.
                    let kept = if hooks {
                        timings.hook_budget
                    } else {
                        Duration::ZERO
                    };
                    assert_eq!(at(line.hooks_at), secs(timeout) - kept, "{case}");
                    // ClosingStreams: the close notice before the hooks.
                    assert_eq!(
                        at(line.closing_at),
                        at(line.hooks_at) - timings.close_notice,
                        "{case}"
                    );
                    // Pod-bound streams end at the streams' last moment,
                    // the margin before the hooks.
                    let margin = (timings.close_notice / 4).min(Duration::from_secs(1));
                    assert_eq!(at(line.streams_end), at(line.hooks_at) - margin, "{case}");
                    assert!(line.closing_at <= line.streams_end, "{case}");
                    assert!(line.drain_over <= line.hooks_at, "{case}");
                    // The defaults: 5, 5, 3 s, scaled down for short timeouts.
                    assert_eq!(
                        timings.drain_delay,
                        secs(5.0).min(secs(timeout) / 5),
                        "{case}"
                    );
                    if budget.is_none() {
                        assert_eq!(
                            timings.close_notice,
                            secs(5.0).min(secs(timeout) / 5),
                            "{case}"
                        );
                        assert_eq!(
                            timings.hook_budget,
                            secs(3.0).min(secs(timeout) / 4),
                            "{case}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_default_timeline_is_unchanged_with_a_hook() {
        let line = Timeline::new(START, &Config::default(), true);
        assert_eq!(at(line.drain_over), secs(5.0));
        assert_eq!(at(line.closing_at), secs(17.0));
        assert_eq!(at(line.streams_end), secs(21.0));
        assert_eq!(at(line.hooks_at), secs(22.0));
        assert_eq!(at(line.deadline), secs(25.0));
        // Without one, the streams have until the deadline.
        let line = Timeline::new(START, &Config::default(), false);
        assert_eq!(at(line.closing_at), secs(20.0));
        assert_eq!(at(line.streams_end), secs(24.0));
        assert_eq!(at(line.hooks_at), secs(25.0));
    }

    #[test]
    fn a_short_timeout_with_a_close_notice_set_runs_as_set() {
        // The issue's case: 3 s with a 1 s notice was refused at SIGTERM
        // by the 3 s default budget. Now the budget is 0.75 s.
        let config = Config {
            shutdown_timeout: secs(3.0),
            close_notice: Some(secs(1.0)),
            ..Config::default()
        };
        config.validate().unwrap();
        let line = Timeline::new(START, &config, true);
        assert_eq!(at(line.hooks_at), secs(2.25));
        assert_eq!(at(line.closing_at), secs(1.25));
        assert_eq!(at(line.streams_end), secs(2.0));
        // A notice that fills the timeout leaves no default budget.
        let config = Config {
            shutdown_timeout: secs(3.0),
            close_notice: Some(secs(3.0)),
            ..Config::default()
        };
        config.validate().unwrap();
        assert_eq!(config.timings().hook_budget, Duration::ZERO);
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Error, HookOrder, HookOutcome, Phase, Runtime};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    fn config(drain: u64, timeout: u64, notice: u64, hooks: u64) -> Config {
        Config::millis(drain, timeout, notice, hooks)
    }

    const LONG: Option<Duration> = Some(Duration::from_secs(30));

    fn stopped(runtime: &Runtime) {
        assert!(matches!(
            runtime.wait_for_phase(Phase::Stopped, LONG),
            Ok(Phase::Stopped)
        ));
    }

    #[test]
    fn with_no_stream_it_stops_after_the_drain_delay() {
        let runtime = Runtime::new();
        runtime
            .configure(config(100, 10_000, 1_000, 1_000))
            .unwrap();
        let begun = Instant::now();
        runtime.begin_shutdown().unwrap();
        assert_eq!(runtime.phase(), Phase::Draining);
        stopped(&runtime);
        assert!(begun.elapsed() >= Duration::from_millis(100));
        assert!(runtime.phase_entered_at(Phase::ClosingStreams).is_none());
        assert_eq!(runtime.streams_closed_by_deadline(), 0);
        assert!(runtime.shutdown_duration().unwrap() >= Duration::from_millis(100));
    }

    #[test]
    fn a_stream_that_never_ends_is_asked_to_close_before_the_hooks_budget() {
        let runtime = Runtime::new();
        runtime.configure(config(0, 600, 200, 200)).unwrap();
        // A hook is registered: the budget is kept for it.
        runtime.register_shutdown_hook("h", |_| true).unwrap();
        let (sender, receiver) = mpsc::channel();
        runtime
            .on_phase(move |change| sender.send(change).unwrap())
            .unwrap();
        let _stream = runtime.begin_stream().unwrap();
        runtime.begin_shutdown().unwrap();
        stopped(&runtime);
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
        let at = |phase| {
            runtime
                .phase_entered_at(phase)
                .unwrap()
                .duration_since(started)
                .unwrap()
        };
        // Closing at 600 - 200 - 200 ms; Stopping when the hooks' budget
        // begins, 200 ms before the deadline.
        assert!(at(Phase::ClosingStreams) >= Duration::from_millis(200));
        assert!(at(Phase::Stopping) >= Duration::from_millis(400));
        assert!(at(Phase::Stopping) < Duration::from_millis(600));
    }

    #[test]
    fn an_instant_hook_gets_its_share_beside_a_hung_one_even_with_a_stream_open() {
        let runtime = Runtime::new();
        runtime.configure(config(0, 600, 100, 300)).unwrap();
        let _stream = runtime.begin_stream().unwrap();
        let (sender, receiver) = mpsc::channel();
        let first = sender.clone();
        runtime
            .register_shutdown_hook("hangs", move |given| {
                first.send(("hangs", given)).unwrap();
                std::thread::sleep(Duration::from_secs(60));
                true
            })
            .unwrap();
        runtime
            .register_shutdown_hook("instant", move |given| {
                sender.send(("instant", given)).unwrap();
                true
            })
            .unwrap();
        let begun = Instant::now();
        runtime.begin_shutdown().unwrap();
        stopped(&runtime);
        assert!(begun.elapsed() < Duration::from_secs(20));
        let seen: Vec<_> = (0..2)
            .map(|_| receiver.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(seen[0].0, "hangs");
        assert_eq!(seen[1].0, "instant");
        // The hung hook's overrun did not take the instant hook's share.
        assert!(seen[1].1 > Duration::from_millis(50), "{seen:?}");
        let reports = runtime.hook_reports();
        assert_eq!(reports[0].outcome, HookOutcome::Overran);
        assert_eq!(reports[1].outcome, HookOutcome::Finished);
        assert!(reports[1].finished);
    }

    #[test]
    fn hooks_with_previous_run_together_and_outcomes_are_reported_honestly() {
        let runtime = Runtime::new();
        runtime.configure(config(0, 2_000, 100, 1_000)).unwrap();
        let (sender, receiver) = mpsc::channel::<&str>();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        for name in ["a", "b"] {
            let barrier = std::sync::Arc::clone(&barrier);
            let sender = sender.clone();
            let order = if name == "a" {
                HookOrder::AfterPrevious
            } else {
                HookOrder::WithPrevious
            };
            // Each waits for the other: only running together lets both
            // finish.
            runtime
                .register_shutdown_hook_with(name, order, move |_| {
                    barrier.wait();
                    sender.send(name).unwrap();
                    true
                })
                .unwrap();
        }
        runtime
            .register_shutdown_hook("refuses", |_| false)
            .unwrap();
        runtime
            .register_shutdown_hook("panics", |_| panic!("a hook that panics"))
            .unwrap();
        let removed = runtime.register_shutdown_hook("removed", |_| true).unwrap();
        assert!(runtime.remove_shutdown_hook(removed));
        runtime.begin_shutdown().unwrap();
        stopped(&runtime);
        let mut together: Vec<_> = (0..2)
            .map(|_| receiver.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        together.sort_unstable();
        assert_eq!(together, ["a", "b"]);
        let outcomes: Vec<_> = runtime
            .hook_reports()
            .into_iter()
            .map(|r| (r.name, r.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("a".to_string(), HookOutcome::Finished),
                ("b".to_string(), HookOutcome::Finished),
                ("refuses".to_string(), HookOutcome::ReturnedFalse),
                ("panics".to_string(), HookOutcome::Panicked),
            ]
        );
    }

    #[test]
    fn the_last_stream_ending_moves_the_sequence_on() {
        let runtime = Runtime::new();
        runtime.configure(config(0, 30_000, 1_000, 1_000)).unwrap();
        let stream = runtime.begin_stream().unwrap();
        runtime.begin_shutdown().unwrap();
        assert!(matches!(
            runtime.wait_for_phase(Phase::Stopping, Some(Duration::from_millis(100))),
            Err(Error::TimedOut(Phase::Draining))
        ));
        drop(stream);
        stopped(&runtime);
        // Well before the 28 s closing time: the end woke the sequence.
        assert!(runtime.shutdown_duration().unwrap() < Duration::from_secs(10));
    }

    #[test]
    fn a_listener_that_blocks_does_not_hold_the_sequence() {
        let runtime = Runtime::new();
        runtime.configure(config(0, 400, 100, 100)).unwrap();
        runtime
            .on_phase(|_| std::thread::sleep(Duration::from_secs(60)))
            .unwrap();
        let begun = Instant::now();
        runtime.begin_shutdown().unwrap();
        stopped(&runtime);
        assert!(begun.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn the_testing_reset_abandons_a_running_sequence_and_a_new_one_runs() {
        let runtime = Runtime::new();
        runtime
            .configure(config(20_000, 25_000, 1_000, 1_000))
            .unwrap();
        let _stream = runtime.begin_stream().unwrap();
        let (sender, receiver) = mpsc::channel();
        runtime
            .on_phase(move |change| sender.send(change.to).unwrap())
            .unwrap();
        runtime.begin_shutdown().unwrap();
        assert_eq!(
            receiver.recv_timeout(Duration::from_secs(10)).unwrap(),
            Phase::Draining
        );
        runtime.reset_for_testing().unwrap();
        assert_eq!(runtime.phase(), Phase::Serving);
        assert_eq!(runtime.active_streams(), 0);
        assert!(runtime.shutdown_started_at().is_none());
        // The removed listener hears nothing more.
        runtime.configure(config(0, 1_000, 100, 100)).unwrap();
        runtime.begin_shutdown().unwrap();
        stopped(&runtime);
        assert!(receiver.recv_timeout(Duration::from_millis(200)).is_err());
        assert!(runtime.shutdown_duration().unwrap() < Duration::from_secs(10));
    }
}
