//! The shutdown log: a few lines on stderr that tell an operator watching
//! `kubectl logs` what the shutdown is doing, the same lines on every host
//! (the Python hosts, the Rust server, a C host that opts in):
//!
//! ```text
//! last-call: shutdown (pid 7) began on SIGTERM: 3 streams open; drain delay 5.0 s, deadline in 25.0 s (streams asked to close from 17.0 s, hooks from 22.0 s)
//! last-call: shutdown (pid 7) closing streams at 17.0 s: 2 still open; resumable ones are nudged to reconnect by 21.0 s, pod-bound ones get their final event at 21.0 s
//! last-call: shutdown (pid 7) stopping at 21.2 s: 0 streams open; 1 hook to run within 3.8 s
//! last-call: shutdown (pid 7) done in 21.3 s: 3 streams open at the start and 1 begun since: 2 ended on their own, 1 nudged to reconnect, 1 given its final event, 0 left open when the deadline came; hooks: "flush" finished in 0.104 s
//! ```
//!
//! One line when the sequence begins (a signal or `begin_shutdown`), one
//! at each phase it enters (ClosingStreams, Stopping) and one at the end,
//! written just before Stopped (after Stopped the host may exit at once).
//! They are written by the sequence thread through the runtime's
//! diagnostics writer (`log.rs`) in a single non-blocking attempt: a line
//! that stderr cannot take at once is dropped and counted
//! (`gs_log_lines_dropped_total`), and the sequence never waits for stderr.
//!
//! **How the streams are counted.** Every number comes from the stream
//! counter, sampled when the sequence begins and when the streams' time is
//! up (Stopping), except how the streams that were ended ended: a host tells
//! the runtime when it sends a stream its ending ([`Runtime::stream_ending_sent`],
//! `gs_stream_ending_sent`; the axum layer, the hub and the Python stream
//! wrappers do it themselves): a resumable stream's nudge to reconnect (or
//! the hub's hand-off to another pod), a pod-bound stream's final event.
//! The streams that ended before Stopping without being sent an ending
//! "ended on their own"; those still open at Stopping were "left open when
//! the deadline came" (the host ends them as the process stops). A host
//! that does not report its endings has them counted as ended on their
//! own.
//!
//! **On or off.** Off unless the host turns it on ([`Runtime::set_shutdown_log`],
//! `gs_set_shutdown_log`): the Python package and the Rust example server
//! do, so their logs say what happens with the host's default logging; a C
//! host opts in. `GS_SHUTDOWN_LOG=1` or `0` in the environment, read where
//! the host configures the runtime, wins over the host's default.

use crate::clock::Mono;
use crate::hooks::{HookOutcome, HookReport};
use crate::reconnect_spread::StreamKind;
use crate::runtime::{Inner, Runtime};
use crate::sequence::Timeline;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

/// The shutdown log's settings and counts, per runtime.
#[derive(Default)]
pub(crate) struct ShutdownLog {
    /// The host's default.
    host: AtomicBool,
    /// `GS_SHUTDOWN_LOG` at the last configuration: [`UNSET`], [`OFF`] or
    /// [`ON`].
    env: AtomicU8,
    /// Streams sent their ending, by kind, since the process started.
    nudged: AtomicU64,
    final_events: AtomicU64,
    /// What the sequence wrote, for the crate's tests.
    #[cfg(test)]
    pub(crate) written: std::sync::Mutex<Vec<String>>,
}

const UNSET: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

impl ShutdownLog {
    /// Notes `GS_SHUTDOWN_LOG` as read where the host configures.
    pub(crate) fn note_env(&self, value: Option<bool>) {
        let value = match value {
            None => UNSET,
            Some(false) => OFF,
            Some(true) => ON,
        };
        self.env.store(value, Ordering::Relaxed);
    }

    /// Forgets the environment's word (the testing reset forgets the
    /// configuration; the host's default stays, as the host set it).
    pub(crate) fn forget_env(&self) {
        self.env.store(UNSET, Ordering::Relaxed);
    }

    fn on(&self) -> bool {
        match self.env.load(Ordering::Relaxed) {
            ON => true,
            OFF => false,
            _ => self.host.load(Ordering::Relaxed),
        }
    }

    fn endings(&self) -> (u64, u64) {
        (
            self.nudged.load(Ordering::Relaxed),
            self.final_events.load(Ordering::Relaxed),
        )
    }
}

impl Runtime {
    /// Turns the shutdown log (one line on stderr when the shutdown
    /// begins, one per phase, one at the end with what became of the
    /// streams and the hooks; see `shutdown_log.rs`) on or off for the
    /// sequences to come. Off by default; `GS_SHUTDOWN_LOG` in the
    /// environment, when set, wins (it is read when the runtime is
    /// configured: [`Runtime::configure`], installing the signal handlers,
    /// or the first use of the environment's configuration).
    pub fn set_shutdown_log(&self, on: bool) {
        self.inner.shutdown_log.host.store(on, Ordering::Relaxed);
    }

    /// Whether the next sequence writes the shutdown log.
    pub fn shutdown_log(&self) -> bool {
        self.inner.shutdown_log.on()
    }

    /// The host has just sent a stream its ending and is ending it: for a
    /// [`StreamKind::Resumable`] stream the nudge to reconnect (or a
    /// hand-off to another pod), for a [`StreamKind::PodBound`] one its
    /// final event. Counted for the shutdown log's last line ("nudged to
    /// reconnect", "given its final event"); a stream ended without it
    /// counts as ended on its own. Lock-free.
    pub fn stream_ending_sent(&self, kind: StreamKind) {
        let counter = match kind {
            StreamKind::Resumable => &self.inner.shutdown_log.nudged,
            StreamKind::PodBound => &self.inner.shutdown_log.final_events,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The counts at one moment of the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) active: u32,
    pub(crate) work: u32,
    pub(crate) started: u64,
    pub(crate) finished: u64,
    pub(crate) nudged: u64,
    pub(crate) final_events: u64,
}

impl Counts {
    fn take(inner: &Inner) -> Counts {
        let (nudged, final_events) = inner.shutdown_log.endings();
        Counts {
            // The totals before the gauge: a stream that ends in between
            // is counted as ended and not as open, never twice.
            finished: inner.streams.finished_total(),
            started: inner.streams.started_total(),
            active: inner.streams.active(),
            work: inner.work.active(),
            nudged,
            final_events,
        }
    }
}

/// What became of the streams between the start and Stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Endings {
    pub(crate) open_at_start: u32,
    pub(crate) begun_since: u64,
    pub(crate) on_their_own: u64,
    pub(crate) nudged: u64,
    pub(crate) final_events: u64,
    pub(crate) left_open: u32,
}

impl Endings {
    pub(crate) fn between(start: Counts, stopping: Counts) -> Endings {
        let ended = stopping.finished.saturating_sub(start.finished);
        // An ending reported for a stream that had not ended yet when the
        // sample was taken is not taken from the others.
        let nudged = stopping.nudged.saturating_sub(start.nudged).min(ended);
        let final_events = stopping
            .final_events
            .saturating_sub(start.final_events)
            .min(ended - nudged);
        Endings {
            open_at_start: start.active,
            begun_since: stopping.started.saturating_sub(start.started),
            on_their_own: ended - nudged - final_events,
            nudged,
            final_events,
            left_open: stopping.active,
        }
    }
}

/// One run of the sequence's log: `None` when the log is off.
pub(crate) struct RunLog {
    pid: u32,
    started: Mono,
    at_start: Counts,
    at_stopping: Option<Counts>,
}

impl RunLog {
    /// At the start of a run: writes the first line, if the log is on.
    pub(crate) fn begin(inner: &Inner, timeline: &Timeline) -> Option<RunLog> {
        if !inner.shutdown_log.on() {
            return None;
        }
        let log = RunLog {
            pid: std::process::id(),
            started: timeline.started,
            at_start: Counts::take(inner),
            at_stopping: None,
        };
        let cause = match began_by_signal(inner) {
            Some(signal) => signal_name(signal),
            None => "begin_shutdown",
        };
        let timings = inner.sequence_config().timings();
        let mut line = format!(
            "began on {cause}: {}",
            streams(u64::from(log.at_start.active))
        );
        if log.at_start.work > 0 {
            let _ = write!(line, " and {}", pieces_of_work(log.at_start.work));
        }
        let _ = write!(
            line,
            " open; drain delay {}, deadline in {} (streams asked to close from {}, hooks from {})",
            secs(timings.drain_delay.min(log.since(timeline.hooks_at))),
            secs(log.since(timeline.deadline)),
            secs(log.since(timeline.closing_at)),
            secs(log.since(timeline.hooks_at)),
        );
        log.write(inner, &line);
        Some(log)
    }

    /// Just after ClosingStreams was entered.
    pub(crate) fn closing(&self, inner: &Inner, timeline: &Timeline) {
        let open = inner.streams.active();
        let last = secs(self.since(timeline.streams_end));
        self.write(
            inner,
            &format!(
                "closing streams at {}: {} still open; resumable ones are nudged to reconnect by {last}, pod-bound ones get their final event at {last}",
                secs(self.since(Mono::now())),
                streams(u64::from(open)),
            ),
        );
    }

    /// Just before Stopping is entered: the streams' time is up. `hooks`
    /// hooks will run until `deadline`.
    pub(crate) fn stopping(&mut self, inner: &Inner, hooks: usize, deadline: Mono) {
        let counts = Counts::take(inner);
        self.at_stopping = Some(counts);
        let now = Mono::now();
        let mut line = format!(
            "stopping at {}: {} open",
            secs(self.since(now)),
            streams(u64::from(counts.active)),
        );
        if counts.work > 0 {
            let _ = write!(line, ", {} running", pieces_of_work(counts.work));
        }
        match hooks {
            0 => line.push_str("; no hook to run"),
            1 => {
                let _ = write!(line, "; 1 hook to run within {}", secs(now.until(deadline)));
            }
            n => {
                let _ = write!(
                    line,
                    "; {n} hooks to run within {}",
                    secs(now.until(deadline))
                );
            }
        }
        self.write(inner, &line);
    }

    /// Just before Stopped: what became of the streams and the hooks.
    pub(crate) fn done(&self, inner: &Inner, hooks: &[HookReport]) {
        let stopping = self.at_stopping.unwrap_or_else(|| Counts::take(inner));
        let endings = Endings::between(self.at_start, stopping);
        let line = format!(
            "done in {}: {}; hooks: {}",
            secs(self.since(Mono::now())),
            describe_endings(&endings),
            describe_hooks(hooks),
        );
        self.write(inner, &line);
    }

    fn since(&self, moment: Mono) -> Duration {
        self.started.until(moment)
    }

    fn write(&self, inner: &Inner, line: &str) {
        let line = format!("shutdown (pid {}) {line}", self.pid);
        crate::log::write_line_now(format_args!("{line}"));
        #[cfg(test)]
        crate::runtime::lock(&inner.shutdown_log.written).push(line);
        #[cfg(not(test))]
        let _ = inner;
    }
}

/// The signal that started this runtime's running sequence, if one did:
/// signals drive the process-wide runtime only.
fn began_by_signal(inner: &Inner) -> Option<libc::c_int> {
    let global = Runtime::global_if_created()?;
    if global.inner.address() != inner.address() {
        return None;
    }
    crate::signals::signal_that_began()
}

fn signal_name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "a signal",
    }
}

/// "1 stream", "3 streams".
fn streams(count: u64) -> String {
    if count == 1 {
        "1 stream".to_owned()
    } else {
        format!("{count} streams")
    }
}

/// "1 piece of work", "3 pieces of work".
fn pieces_of_work(count: u32) -> String {
    if count == 1 {
        "1 piece of work".to_owned()
    } else {
        format!("{count} pieces of work")
    }
}

/// Seconds with one decimal: "17.0 s".
fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

pub(crate) fn describe_endings(endings: &Endings) -> String {
    let mut text = format!(
        "{} open at the start",
        streams(u64::from(endings.open_at_start))
    );
    if endings.begun_since > 0 {
        let _ = write!(text, " and {} begun since", endings.begun_since);
    }
    let _ = write!(
        text,
        ": {} ended on their own, {} nudged to reconnect, {} given their final event, {} left open when the deadline came",
        endings.on_their_own, endings.nudged, endings.final_events, endings.left_open
    );
    text
}

/// At most this many hooks are named; beyond, the outcomes are counted.
const HOOKS_NAMED: usize = 8;
/// A hook's name is cut to this many characters in the log.
const NAME_CHARS: usize = 48;

pub(crate) fn describe_hooks(reports: &[HookReport]) -> String {
    if reports.is_empty() {
        return "none".to_owned();
    }
    if reports.len() > HOOKS_NAMED {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for report in reports {
            let word = outcome_word(report.outcome);
            match counts.iter_mut().find(|(w, _)| *w == word) {
                Some((_, n)) => *n += 1,
                None => counts.push((word, 1)),
            }
        }
        let parts: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
        return format!("{} hooks: {}", reports.len(), parts.join(", "));
    }
    let parts: Vec<String> = reports.iter().map(describe_hook).collect();
    parts.join(", ")
}

fn outcome_word(outcome: HookOutcome) -> &'static str {
    match outcome {
        HookOutcome::Finished => "finished",
        HookOutcome::ReturnedFalse => "returned false",
        HookOutcome::Panicked => "panicked",
        HookOutcome::Overran => "overran (left running)",
        HookOutcome::NotStarted => "not started",
        HookOutcome::NoTimeLeft => "not run (no time left)",
    }
}

fn describe_hook(report: &HookReport) -> String {
    let name: String = report.name.chars().take(NAME_CHARS).collect();
    let took = format!("{:.3} s", report.took.as_secs_f64());
    match report.outcome {
        HookOutcome::Finished => format!("{name:?} finished in {took}"),
        HookOutcome::ReturnedFalse => format!("{name:?} returned false in {took}"),
        HookOutcome::Panicked => format!("{name:?} panicked"),
        HookOutcome::Overran => format!(
            "{name:?} overran its {:.3} s share (left running)",
            report.given.as_secs_f64()
        ),
        HookOutcome::NotStarted => format!("{name:?} not started"),
        HookOutcome::NoTimeLeft => format!("{name:?} not run (no time left)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Error, Phase};

    const LONG: Option<Duration> = Some(Duration::from_secs(30));

    fn written(runtime: &Runtime) -> Vec<String> {
        crate::runtime::lock(&runtime.inner.shutdown_log.written).clone()
    }

    /// The seconds written after `prefix` in `line` ("at 1.0 s").
    fn seconds_after(line: &str, prefix: &str) -> f64 {
        let rest = &line[line
            .find(prefix)
            .unwrap_or_else(|| panic!("{prefix:?} in {line}"))
            + prefix.len()..];
        rest.split(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn the_lines_say_what_became_of_each_stream_and_hook() {
        let runtime = Runtime::new();
        runtime.set_shutdown_log(true);
        runtime
            .configure(Config::millis(200, 3_000, 1_000, 1_000))
            .unwrap();
        runtime.register_shutdown_hook("flush", |_| true).unwrap();
        let on_its_own = runtime.begin_stream().unwrap();
        let nudged = runtime.begin_stream().unwrap();
        let final_event = runtime.begin_stream_of(StreamKind::PodBound).unwrap();
        let left_open = runtime.begin_stream().unwrap();
        runtime.begin_shutdown().unwrap();
        // The first line counts the streams when the sequence thread
        // starts the run (a moment after the signal).
        let begun = std::time::Instant::now();
        while written(&runtime).is_empty() {
            assert!(begun.elapsed() < Duration::from_secs(20), "no first line");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(on_its_own);
        // A reconnecting client's stream, begun during the drain, ends on
        // its own too.
        drop(runtime.begin_stream().unwrap());
        runtime.wait_for_phase(Phase::ClosingStreams, LONG).unwrap();
        // The phase's line is written by the sequence thread after the
        // phase is seen: the streams it counts end only once it is out.
        let closing = std::time::Instant::now();
        while written(&runtime).len() < 2 {
            assert!(
                closing.elapsed() < Duration::from_secs(20),
                "no second line"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        runtime.stream_ending_sent(StreamKind::Resumable);
        drop(nudged);
        runtime.stream_ending_sent(StreamKind::PodBound);
        drop(final_event);
        runtime.wait_for_phase(Phase::Stopped, LONG).unwrap();
        drop(left_open);
        let lines = written(&runtime);
        let pid = std::process::id();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines
            .iter()
            .all(|l| l.starts_with(&format!("shutdown (pid {pid}) "))));
        assert!(
            lines[0].ends_with(
                "began on begin_shutdown: 4 streams open; drain delay 0.2 s, deadline in 3.0 s \
                 (streams asked to close from 1.0 s, hooks from 2.0 s)"
            ),
            "{}",
            lines[0]
        );
        // The moments as measured (bounded below by the timeline; a loaded
        // machine may wake the sequence late).
        assert!(lines[1].contains(" s: 3 streams still open; resumable ones are nudged to reconnect by 1.8 s, pod-bound ones get their final event at 1.8 s"), "{}", lines[1]);
        assert!(
            seconds_after(&lines[1], "closing streams at ") >= 1.0,
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains(" s: 1 stream open; 1 hook to run within "),
            "{}",
            lines[2]
        );
        assert!(
            seconds_after(&lines[2], "stopping at ") >= 2.0,
            "{}",
            lines[2]
        );
        assert!(
            seconds_after(&lines[2], "to run within ") <= 1.0,
            "{}",
            lines[2]
        );
        assert!(
            lines[3].contains(
                ": 4 streams open at the start and 1 begun since: 2 ended on their own, \
                 1 nudged to reconnect, 1 given their final event, 1 left open when the deadline came; \
                 hooks: \"flush\" finished in "
            ),
            "{}",
            lines[3]
        );
        assert!(seconds_after(&lines[3], "done in ") >= 2.0, "{}", lines[3]);
    }

    #[test]
    fn without_streams_or_hooks_it_goes_from_the_first_line_to_stopping() {
        let runtime = Runtime::new();
        runtime.set_shutdown_log(true);
        runtime
            .configure(Config::millis(0, 2_000, 500, 500))
            .unwrap();
        runtime.begin_shutdown().unwrap();
        runtime.wait_for_phase(Phase::Stopped, LONG).unwrap();
        let lines = written(&runtime);
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines[0].contains("began on begin_shutdown: 0 streams open"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("0 streams open; no hook to run"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("0 streams open at the start: 0 ended on their own, 0 nudged to reconnect, 0 given their final event, 0 left open when the deadline came; hooks: none"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn it_is_off_unless_the_host_turns_it_on() {
        let runtime = Runtime::new();
        assert!(!runtime.shutdown_log());
        runtime
            .configure(Config::millis(0, 1_000, 200, 200))
            .unwrap();
        runtime.begin_shutdown().unwrap();
        runtime.wait_for_phase(Phase::Stopped, LONG).unwrap();
        assert_eq!(written(&runtime), Vec::<String>::new());
    }

    #[test]
    fn the_environment_wins_over_the_hosts_default_and_a_typo_is_refused() {
        // nextest runs each test in a process of its own.
        let runtime = Runtime::new();
        runtime.set_shutdown_log(true);
        std::env::set_var(crate::env::SHUTDOWN_LOG, "off");
        runtime
            .configure(Config::millis(0, 1_000, 200, 200))
            .unwrap();
        assert!(!runtime.shutdown_log());
        runtime.begin_shutdown().unwrap();
        runtime.wait_for_phase(Phase::Stopped, LONG).unwrap();
        assert_eq!(written(&runtime), Vec::<String>::new());

        let runtime = Runtime::new();
        std::env::set_var(crate::env::SHUTDOWN_LOG, " 1 ");
        runtime.configure(Config::default()).unwrap();
        assert!(runtime.shutdown_log());

        std::env::set_var(crate::env::SHUTDOWN_LOG, "loud");
        match runtime.configure(Config::default()) {
            Err(Error::Config(error)) => {
                assert_eq!(error.variable, "GS_SHUTDOWN_LOG");
                assert!(error.to_string().contains("\"loud\""), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(Config::from_env(), Err(error) if error.variable == "GS_SHUTDOWN_LOG"));
        std::env::remove_var(crate::env::SHUTDOWN_LOG);
        runtime.configure(Config::default()).unwrap();
        assert!(!runtime.shutdown_log(), "back to the host's default: off");
    }

    #[test]
    fn many_hooks_are_counted_and_long_names_cut() {
        let report = |name: &str, outcome| HookReport {
            name: name.to_owned(),
            given: Duration::from_millis(1_500),
            took: Duration::from_millis(120),
            outcome,
            finished: outcome == HookOutcome::Finished,
        };
        let few = [
            report("flush", HookOutcome::Finished),
            report("audit", HookOutcome::Overran),
            report("late", HookOutcome::NoTimeLeft),
            report(&"x".repeat(500), HookOutcome::ReturnedFalse),
        ];
        let text = describe_hooks(&few);
        assert!(text.starts_with("\"flush\" finished in 0.120 s, \"audit\" overran its 1.500 s share (left running), \"late\" not run (no time left), "), "{text}");
        assert!(text.len() < 200, "{text}");
        let many: Vec<_> = (0..20)
            .map(|i| {
                report(
                    &format!("h{i}"),
                    if i < 15 {
                        HookOutcome::Finished
                    } else {
                        HookOutcome::Panicked
                    },
                )
            })
            .collect();
        assert_eq!(describe_hooks(&many), "20 hooks: 15 finished, 5 panicked");
    }
}
