//! How streams still open at ClosingStreams end: the two kinds of stream,
//! and the rule that spreads the reconnects of the resumable ones over the
//! close notice.
//!
//! * A **pod-bound** stream ([`StreamKind::PodBound`]) can only be served by
//!   this process (a task running in its memory). Another pod cannot serve
//!   its client, so it is never told to reconnect, and nothing is gained by
//!   ending it early: it runs through ClosingStreams until the streams' last
//!   moment (`nudges_end` below), and only then does the host send it a
//!   final event of its own (the example servers send `task_failed` with
//!   reason `shutdown`) and end it. A task that finishes inside the close
//!   notice still completes.
//! * A **resumable** stream ([`StreamKind::Resumable`]) can be served by any
//!   pod (a feed, anything backed by shared state). At ClosingStreams it is
//!   sent `retry:`, its last event's `id:` and a `reconnect` event, at its
//!   own moment of the **nudge window**:
//!
//! ```text
//! hooks_at   = deadline - hook budget   (Stopping at the latest; the
//!                                        deadline when no hook is registered)
//! closing_at = hooks_at - close notice  (ClosingStreams)
//! nudges_end = hooks_at - margin, margin = min(close notice / 4, 1 s)
//!                                       (the streams' last moment)
//! a resumable stream's moment = closing_at + u * (nudges_end - closing_at),
//!                               u uniform in [0, 1), drawn once per stream
//! a pod-bound stream's moment = nudges_end
//! ```
//!
//! So N streams reach the surviving pods at about N / (nudges_end -
//! closing_at) per second instead of all at once (kube-apiserver spreads the
//! closing of its watches over its grace period the same way), and the last
//! one has the margin to send its event and close before the hooks' budget
//! begins. [`ReconnectSpread::AllAtOnce`] nudges every stream at
//! `closing_at` instead.

use crate::clock::Mono;
use crate::phase::Phase;
use crate::runtime::Runtime;
use crate::sequence::Timeline;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What another pod can do for a stream's client: chosen by the host when
/// it opens the stream ([`Runtime::begin_stream_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Any pod can serve it: told to reconnect, at its own moment of the
    /// nudge window. What [`Runtime::begin_stream`] opens.
    Resumable,
    /// Only this process can serve it: runs until the streams' last moment
    /// (the end of the nudge window), then ends with the host's final
    /// event, never pointed at another pod.
    PodBound,
}

/// When the resumable streams still open at ClosingStreams are nudged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReconnectSpread {
    /// Each at its own uniformly jittered moment of the nudge window (the
    /// default).
    #[default]
    Spread,
    /// All at the start of ClosingStreams.
    AllAtOnce,
}

/// The most the nudge window stops short of the hooks' budget.
pub const NUDGE_MARGIN_MAX: Duration = Duration::from_secs(1);

/// The margin between the last nudge and the start of the hooks' budget:
/// a quarter of the close notice, at most [`NUDGE_MARGIN_MAX`].
pub fn nudge_margin(close_notice: Duration) -> Duration {
    (close_notice / 4).min(NUDGE_MARGIN_MAX)
}

/// The moments of the close notice of a running shutdown sequence, as
/// offsets from the moment it started (the signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeWindow {
    /// ClosingStreams begins (if streams are still open): the first nudge.
    pub closing_at: Duration,
    /// The streams' last moment: the last nudge, and when pod-bound
    /// streams get their final event (`hooks_at` minus the margin).
    pub nudges_end: Duration,
    /// The hooks' budget begins: Stopping at the latest.
    pub hooks_at: Duration,
}

/// The nudge window of `timeline`: `(closing_at, streams_end)`.
fn nudge_window(timeline: &Timeline) -> (Mono, Mono) {
    (timeline.closing_at, timeline.streams_end)
}

/// The moment at fraction `unit` (clamped to [0, 1]) of the window.
fn moment_in(window: (Mono, Mono), unit: f64) -> Mono {
    let span = window.0.until(window.1);
    window.0.after(span.mul_f64(unit.clamp(0.0, 1.0)))
}

const SPREAD: u8 = 0;
const ALL_AT_ONCE: u8 = 1;

impl Runtime {
    /// Chooses when resumable streams are nudged at ClosingStreams (see
    /// [`ReconnectSpread`]). Takes effect for streams that have not drawn
    /// their moment yet.
    pub fn set_reconnect_spread(&self, spread: ReconnectSpread) {
        let value = match spread {
            ReconnectSpread::Spread => SPREAD,
            ReconnectSpread::AllAtOnce => ALL_AT_ONCE,
        };
        self.inner.reconnect_spread.store(value, Ordering::Relaxed);
    }

    /// The rule in force for nudging resumable streams.
    pub fn reconnect_spread(&self) -> ReconnectSpread {
        match self.inner.reconnect_spread.load(Ordering::Relaxed) {
            ALL_AT_ONCE => ReconnectSpread::AllAtOnce,
            _ => ReconnectSpread::Spread,
        }
    }

    /// The close notice of the running shutdown sequence, from the
    /// configuration it runs with; `None` before the sequence starts.
    pub fn notice_window(&self) -> Option<NoticeWindow> {
        let timeline = self.inner.timeline()?;
        let started = timeline.started;
        Some(NoticeWindow {
            closing_at: started.until(timeline.closing_at),
            nudges_end: started.until(timeline.streams_end),
            hooks_at: started.until(timeline.hooks_at),
        })
    }

    /// How long from now a stream of `kind` should still run: `None` while
    /// it should simply go on (before ClosingStreams); for a pod-bound
    /// stream, the time until the streams' last moment (the end of the
    /// nudge window); for a resumable one, the time until a freshly drawn,
    /// uniformly jittered moment of the nudge window (`ZERO` when all at
    /// once, or when the moment is already past). Each call draws anew:
    /// call it once per stream (the [`StreamGuard`](crate::StreamGuard)
    /// does).
    pub fn reconnect_delay(&self, kind: StreamKind) -> Option<Duration> {
        self.draw_moment(kind).map(|at| Mono::now().until(at))
    }

    /// For a stream that another pod can take over at once (its channel is
    /// in a store every pod shares, its publisher going on here): how long
    /// from now until its own moment of the **hand-off window**, which opens
    /// when the drain delay is over (load balancers have caught up, so the
    /// reconnect lands elsewhere) and lasts as long as the close notice (at
    /// most until the streams' last moment), drawn uniformly like the
    /// reconnect spread (all at once with [`ReconnectSpread::AllAtOnce`]).
    /// `None` before the shutdown sequence starts: Draining by
    /// `set_draining` alone hands nothing off. Each call draws anew.
    pub fn handoff_delay(&self) -> Option<Duration> {
        let timeline = self.inner.timeline()?;
        let now = Mono::now();
        let start = timeline.drain_over.min(timeline.streams_end);
        let notice = timeline.closing_at.until(timeline.hooks_at);
        let end = start.after(notice).min(timeline.streams_end).max(start);
        let moment = if self.reconnect_spread() == ReconnectSpread::AllAtOnce {
            start
        } else {
            moment_in((start, end), fastrand::f64())
        };
        Some(now.until(moment.max(now)))
    }

    /// This stream's moment to end, drawn as [`Runtime::reconnect_delay`]
    /// describes; `None` before ClosingStreams.
    pub(crate) fn draw_moment(&self, kind: StreamKind) -> Option<Mono> {
        if self.phase() < Phase::ClosingStreams {
            return None;
        }
        let now = Mono::now();
        let Some(timeline) = self.inner.timeline() else {
            return Some(now);
        };
        let window = nudge_window(&timeline);
        let moment = match kind {
            StreamKind::PodBound => window.1,
            StreamKind::Resumable if self.reconnect_spread() == ReconnectSpread::AllAtOnce => {
                window.0
            }
            StreamKind::Resumable => moment_in(window, fastrand::f64()),
        };
        Some(moment.max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn config(drain: u64, timeout: u64, notice: u64, hooks: u64) -> Config {
        Config::millis(drain, timeout, notice, hooks)
    }

    #[test]
    fn the_margin_is_a_quarter_of_the_notice_at_most_a_second() {
        assert_eq!(
            nudge_margin(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(nudge_margin(Duration::from_secs(5)), Duration::from_secs(1));
        assert_eq!(
            nudge_margin(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
        assert_eq!(nudge_margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn the_window_follows_the_sequences_timeline() {
        let runtime = Runtime::new();
        assert_eq!(runtime.notice_window(), None);
        assert_eq!(runtime.reconnect_delay(StreamKind::Resumable), None);
        runtime.configure(config(0, 25_000, 5_000, 3_000)).unwrap();
        let hook = runtime.register_shutdown_hook("h", |_| true).unwrap();
        let _stream = runtime.begin_stream().unwrap();
        runtime.begin_shutdown().unwrap();
        assert_eq!(
            runtime.notice_window(),
            Some(NoticeWindow {
                closing_at: Duration::from_secs(17),
                nudges_end: Duration::from_secs(21),
                hooks_at: Duration::from_secs(22),
            })
        );
        // Fixed when the sequence started: a hook removed now changes
        // nothing for the streams already told.
        assert!(runtime.remove_shutdown_hook(hook));
        assert_eq!(
            runtime.notice_window().unwrap().hooks_at,
            Duration::from_secs(22)
        );
        // Draining, not yet ClosingStreams: keep streaming.
        assert_eq!(runtime.reconnect_delay(StreamKind::Resumable), None);
        assert_eq!(runtime.reconnect_delay(StreamKind::PodBound), None);
        runtime.reset_for_testing().unwrap();
        assert_eq!(runtime.notice_window(), None);
    }

    #[test]
    fn moments_are_uniform_over_the_window_and_end_before_the_margin() {
        let runtime = Runtime::new();
        // Close notice 4 s (margin 1 s): the window is 3 s long and starts at
        // once; ClosingStreams comes at 0 because the notice fills the time
        // before the hooks' budget (kept: a hook is registered).
        runtime.configure(config(0, 6_000, 4_000, 2_000)).unwrap();
        runtime.register_shutdown_hook("h", |_| true).unwrap();
        let _stream = runtime.begin_stream().unwrap();
        runtime.begin_shutdown().unwrap();
        runtime
            .wait_for_phase(Phase::ClosingStreams, Some(Duration::from_secs(10)))
            .unwrap();
        let window = runtime.notice_window().unwrap();
        assert_eq!(window.nudges_end, Duration::from_secs(3));
        // Each draw lies between now and the window's end (a moment already
        // past is now).
        let timeline = runtime.inner.timeline().unwrap();
        let window = nudge_window(&timeline);
        for _ in 0..1_000 {
            let before = Mono::now();
            let at = runtime.draw_moment(StreamKind::Resumable).unwrap();
            assert!(at >= before && at <= window.1);
        }
        // And the moments are uniform over the window: measured on the
        // window itself, not from a clock that moves while a loaded machine
        // draws (3,000 expected per bucket).
        let draws = 30_000;
        let mut buckets = [0u32; 10];
        let span = window.0.until(window.1).as_secs_f64();
        for _ in 0..draws {
            let at = moment_in(window, fastrand::f64());
            let bucket = (window.0.until(at).as_secs_f64() / span * 10.0) as usize;
            buckets[bucket.min(9)] += 1;
        }
        for (index, count) in buckets.iter().enumerate() {
            assert!(
                (2_700..3_300).contains(count),
                "bucket {index}: {buckets:?}"
            );
        }
        // A pod-bound stream runs to the streams' last moment, the end of
        // the window, all at once or not.
        let pod_bound = runtime.reconnect_delay(StreamKind::PodBound).unwrap();
        assert!(
            pod_bound > Duration::from_millis(2_000) && pod_bound <= Duration::from_secs(3),
            "{pod_bound:?}"
        );
        runtime.set_reconnect_spread(ReconnectSpread::AllAtOnce);
        assert_eq!(
            runtime.reconnect_delay(StreamKind::Resumable),
            Some(Duration::ZERO)
        );
        assert!(
            runtime.reconnect_delay(StreamKind::PodBound).unwrap() > Duration::from_millis(2_000)
        );
        runtime.reset_for_testing().unwrap();
        assert_eq!(runtime.reconnect_spread(), ReconnectSpread::Spread);
    }

    #[test]
    fn the_guard_draws_its_moment_once_and_counts_down() {
        let runtime = Runtime::new();
        runtime.configure(config(0, 6_000, 4_000, 2_000)).unwrap();
        runtime.register_shutdown_hook("h", |_| true).unwrap();
        let mut resumable = runtime.begin_stream().unwrap();
        let mut pod_bound = runtime.begin_stream_of(StreamKind::PodBound).unwrap();
        assert_eq!(resumable.kind(), StreamKind::Resumable);
        assert_eq!(pod_bound.kind(), StreamKind::PodBound);
        assert_eq!(resumable.end_in(), None);
        runtime.begin_shutdown().unwrap();
        runtime
            .wait_for_phase(Phase::ClosingStreams, Some(Duration::from_secs(10)))
            .unwrap();
        let pod_bound_end = pod_bound.end_in().unwrap();
        assert!(
            pod_bound_end > Duration::from_millis(2_000) && pod_bound_end <= Duration::from_secs(3),
            "{pod_bound_end:?}"
        );
        let first = resumable.end_in().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let second = resumable.end_in().unwrap();
        // The same moment, nearer: never a fresh draw.
        assert!(second <= first.saturating_sub(Duration::from_millis(20)) || second.is_zero());
        assert!(first <= Duration::from_secs(3));
    }

    #[test]
    fn the_handoff_window_opens_when_the_drain_delay_is_over() {
        let runtime = Runtime::new();
        assert_eq!(runtime.handoff_delay(), None);
        // Drain delay 1 s, close notice 2 s, no hook: the window is 1 s to
        // 3 s after the signal.
        runtime
            .configure(config(1_000, 10_000, 2_000, 1_000))
            .unwrap();
        runtime.set_draining(true).unwrap();
        assert_eq!(
            runtime.handoff_delay(),
            None,
            "an operator's drain hands nothing off"
        );
        runtime.set_draining(false).unwrap();
        runtime.begin_shutdown().unwrap();
        let mut early = 0;
        for _ in 0..2_000 {
            let delay = runtime.handoff_delay().unwrap();
            assert!(delay <= Duration::from_secs(3), "{delay:?}");
            assert!(delay >= Duration::from_millis(900), "{delay:?}");
            if delay < Duration::from_secs(2) {
                early += 1;
            }
        }
        // Uniform: about half in each second.
        assert!((800..1200).contains(&early), "{early}");
        runtime.set_reconnect_spread(ReconnectSpread::AllAtOnce);
        let at_once = runtime.handoff_delay().unwrap();
        assert!(at_once <= Duration::from_secs(1) && at_once >= Duration::from_millis(900));
    }

    #[test]
    fn a_window_with_no_room_nudges_at_once() {
        let start = Mono::from_ns(1_000);
        assert_eq!(moment_in((start, start), 0.7), start);
        let end = start.after(Duration::from_secs(1));
        assert_eq!(moment_in((start, end), 2.0), end);
        assert_eq!(moment_in((start, end), f64::NAN.max(0.0)), start);
    }
}
