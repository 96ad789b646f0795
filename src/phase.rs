//! The process phase: one atomic word that only moves forward (except
//! Draining -> Serving before the shutdown sequence starts).
//!
//! The word packs three things so that every decision about the phase is a
//! single compare-and-swap:
//!
//! ```text
//!   bits 31..4: transition number (wraps)   bit 3: sequence started   bits 2..0: phase
//! ```
//!
//! * Packing the "sequence started" bit with the phase is what makes
//!   `set_draining(false)` racing `begin_shutdown()` safe: whichever CAS lands
//!   first wins, and the loser sees the winner's word.
//! * The transition number lets the core thread deliver *every* phase change
//!   to listeners, in order, even when several happened before it woke up:
//!   outside the sequence the only possible changes are Serving <-> Draining
//!   flips, so the intermediate phases between two observed words are known.
//! * Every change wakes sleepers on the word (futex), so waiting for a phase
//!   never polls.
//!
//! Everything here is plain atomics plus one system call, which is why the
//! signal handler may call [`PhaseCell::begin_sequence`].

use crate::clock::{self, AtomicStamp, Stamp};
use crate::wait_word::{Ordering, WaitWord};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// Where the process is in its life. The numeric values are part of the C
/// ABI (`gs_phase`) and of the `gs_phase` metric.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Normal operation: ready, accepting new tasks.
    Serving = 0,
    /// Not ready; new tasks refused; open streams run to their natural end.
    Draining = 1,
    /// The deadline is near: open streams are asked to finish now (a last
    /// event with a reconnect hint, then close).
    ClosingStreams = 2,
    /// Streams are done or the deadline passed: shutdown hooks run.
    Stopping = 3,
    /// Every hook ran; the host exits.
    Stopped = 4,
}

impl Phase {
    /// All phases, in order.
    pub const ALL: [Phase; 5] = [
        Phase::Serving,
        Phase::Draining,
        Phase::ClosingStreams,
        Phase::Stopping,
        Phase::Stopped,
    ];

    /// A stable lower-case name (`"serving"`, `"closing_streams"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Serving => "serving",
            Phase::Draining => "draining",
            Phase::ClosingStreams => "closing_streams",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
        }
    }

    fn from_bits(bits: u32) -> Phase {
        match bits & PHASE_MASK {
            0 => Phase::Serving,
            1 => Phase::Draining,
            2 => Phase::ClosingStreams,
            3 => Phase::Stopping,
            _ => Phase::Stopped,
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One phase change, as delivered to phase listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseChange {
    /// The phase left.
    pub from: Phase,
    /// The phase entered.
    pub to: Phase,
}

const PHASE_MASK: u32 = 0b111;
const SEQUENCE_STARTED: u32 = 0b1000;
const TRANSITION_ONE: u32 = 0b1_0000;

/// A snapshot of the phase word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PhaseWord(u32);

impl PhaseWord {
    pub(crate) fn phase(self) -> Phase {
        Phase::from_bits(self.0)
    }

    pub(crate) fn sequence_started(self) -> bool {
        self.0 & SEQUENCE_STARTED != 0
    }

    fn transition_number(self) -> u32 {
        self.0 >> 4
    }

    fn with_phase(self, phase: Phase) -> PhaseWord {
        let moved = if phase == self.phase() {
            0
        } else {
            TRANSITION_ONE
        };
        PhaseWord(((self.0 & !PHASE_MASK).wrapping_add(moved)) | phase as u32)
    }

    /// The phase changes that lead from `self` to `later`, in order.
    ///
    /// Between two words observed by the core thread, every change it did not
    /// make itself is a Serving <-> Draining flip, so the path is determined
    /// by the number of transitions alone.
    pub(crate) fn changes_until(self, later: PhaseWord) -> Vec<PhaseChange> {
        let count = later
            .transition_number()
            .wrapping_sub(self.transition_number())
            & (u32::MAX >> 4);
        let mut changes = Vec::with_capacity(count as usize);
        let mut from = self.phase();
        for step in 0..count {
            let to = if step + 1 == count {
                later.phase()
            } else if from == Phase::Serving {
                Phase::Draining
            } else {
                Phase::Serving
            };
            changes.push(PhaseChange { from, to });
            from = to;
        }
        changes
    }
}

/// Why a phase change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The shutdown sequence has started; the phase can no longer go back.
    SequenceStarted,
}

/// The phase word, the time each phase was last entered, and the time the
/// shutdown sequence started.
#[derive(Debug)]
pub(crate) struct PhaseCell {
    word: WaitWord,
    entered: [AtomicStamp; 5],
    sequence_started_at: AtomicStamp,
    /// Streams that were still open when ClosingStreams began.
    pub(crate) streams_asked_to_close: AtomicU64,
}

impl PhaseCell {
    pub(crate) const fn new() -> Self {
        Self {
            word: WaitWord::new(0),
            entered: [
                AtomicStamp::unset(),
                AtomicStamp::unset(),
                AtomicStamp::unset(),
                AtomicStamp::unset(),
                AtomicStamp::unset(),
            ],
            sequence_started_at: AtomicStamp::unset(),
            streams_asked_to_close: AtomicU64::new(0),
        }
    }

    pub(crate) fn load(&self) -> PhaseWord {
        PhaseWord(self.word.atomic().load(Ordering::Acquire))
    }

    pub(crate) fn phase(&self) -> Phase {
        self.load().phase()
    }

    /// When `phase` was last entered, if ever.
    pub(crate) fn entered_at(&self, phase: Phase) -> Option<Stamp> {
        self.entered[phase as usize].get()
    }

    /// When the shutdown sequence started, if it has.
    pub(crate) fn sequence_started_at(&self) -> Option<Stamp> {
        self.sequence_started_at.get()
    }

    /// Applies `decide` to the current word until a CAS lands. `decide`
    /// returns the phase to move to, `Ok(None)` to leave the word alone, or an
    /// error. Records the entry time and wakes sleepers on a change.
    fn update(
        &self,
        mut decide: impl FnMut(PhaseWord) -> Result<Option<(Phase, bool)>, Refused>,
    ) -> Result<(PhaseWord, PhaseWord), Refused> {
        let atomic = self.word.atomic();
        let mut current = PhaseWord(atomic.load(Ordering::Acquire));
        loop {
            let Some((phase, start_sequence)) = decide(current)? else {
                return Ok((current, current));
            };
            let mut next = current.with_phase(phase);
            if start_sequence {
                next = PhaseWord(next.0 | SEQUENCE_STARTED);
            }
            if next == current {
                return Ok((current, current));
            }
            // Stamp before publishing so that whoever sees the new phase also
            // sees (at least) this entry time. Async-signal-safe: atomics and
            // clock_gettime only.
            let now = clock::now();
            match atomic.compare_exchange(current.0, next.0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if next.phase() != current.phase() {
                        self.entered[phase as usize].set(now);
                    }
                    if start_sequence && !current.sequence_started() {
                        self.sequence_started_at.set(now);
                    }
                    self.word.wake_all();
                    return Ok((current, next));
                }
                Err(actual) => current = PhaseWord(actual),
            }
        }
    }

    /// Serving -> Draining, outside the sequence. Already draining (or
    /// further): nothing to do.
    pub(crate) fn enter_draining(&self) {
        let _ =
            self.update(|w| Ok((w.phase() == Phase::Serving).then_some((Phase::Draining, false))));
    }

    /// Draining -> Serving; refused once the sequence has started.
    pub(crate) fn leave_draining(&self) -> Result<(), Refused> {
        self.update(|w| {
            if w.sequence_started() {
                Err(Refused::SequenceStarted)
            } else {
                Ok((w.phase() == Phase::Draining).then_some((Phase::Serving, false)))
            }
        })
        .map(|_| ())
    }

    /// Starts the shutdown sequence: Draining at once, with the sequence bit
    /// set. Returns `true` for the call that started it, `false` when it had
    /// already started. Async-signal-safe.
    pub(crate) fn begin_sequence(&self) -> bool {
        match self.update(|w| {
            if w.sequence_started() {
                Ok(None)
            } else {
                Ok(Some((Phase::Draining, true)))
            }
        }) {
            Ok((before, after)) => before != after,
            Err(_) => false,
        }
    }

    /// A forward move made by the sequence itself.
    pub(crate) fn advance(&self, to: Phase) -> (PhaseWord, PhaseWord) {
        self.update(|w| Ok((w.phase() < to).then_some((to, false))))
            .unwrap_or((self.load(), self.load()))
    }

    /// Sleeps until the word differs from `seen` or `timeout` passes.
    pub(crate) fn wait_for_change(&self, seen: PhaseWord, timeout: Option<Duration>) {
        self.word.wait(seen.0, timeout);
    }

    /// Blocks until the phase is at least `target` or `timeout` passes.
    /// Returns the phase reached.
    pub(crate) fn wait_for(
        &self,
        target: Phase,
        timeout: Option<Duration>,
    ) -> Result<Phase, Phase> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let word = self.load();
            if word.phase() >= target {
                return Ok(word.phase());
            }
            let left = match (timeout, deadline) {
                (Some(_), Some(deadline)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(word.phase());
                    }
                    Some(left)
                }
                _ => None,
            };
            self.wait_for_change(word, left);
        }
    }

    /// Back to a fresh Serving word, for a forked child.
    pub(crate) fn reset_after_fork(&self) {
        self.word.atomic().store(0, Ordering::Relaxed);
        for stamp in &self.entered {
            stamp.clear();
        }
        self.sequence_started_at.clear();
        self.streams_asked_to_close.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_flips_back_until_the_sequence_starts() {
        let cell = PhaseCell::new();
        cell.enter_draining();
        assert_eq!(cell.phase(), Phase::Draining);
        cell.leave_draining().unwrap();
        assert_eq!(cell.phase(), Phase::Serving);
        assert!(cell.begin_sequence());
        assert!(!cell.begin_sequence());
        assert_eq!(cell.phase(), Phase::Draining);
        assert_eq!(cell.leave_draining(), Err(Refused::SequenceStarted));
        assert_eq!(cell.phase(), Phase::Draining);
    }

    #[test]
    fn the_phase_only_moves_forward() {
        let cell = PhaseCell::new();
        cell.begin_sequence();
        cell.advance(Phase::Stopping);
        cell.advance(Phase::ClosingStreams);
        assert_eq!(cell.phase(), Phase::Stopping);
        cell.enter_draining();
        assert_eq!(cell.phase(), Phase::Stopping);
    }

    #[test]
    fn begin_sequence_while_draining_keeps_the_phase_and_sets_the_bit() {
        let cell = PhaseCell::new();
        cell.enter_draining();
        let before = cell.load();
        assert!(cell.begin_sequence());
        let after = cell.load();
        assert!(after.sequence_started());
        assert!(before.changes_until(after).is_empty());
        assert!(cell.sequence_started_at().is_some());
    }

    #[test]
    fn missed_flips_are_reconstructed_in_order() {
        let cell = PhaseCell::new();
        let start = cell.load();
        cell.enter_draining();
        cell.leave_draining().unwrap();
        cell.enter_draining();
        cell.begin_sequence();
        cell.advance(Phase::ClosingStreams);
        let changes = start.changes_until(cell.load());
        let path: Vec<_> = changes.iter().map(|c| (c.from, c.to)).collect();
        assert_eq!(
            path,
            vec![
                (Phase::Serving, Phase::Draining),
                (Phase::Draining, Phase::Serving),
                (Phase::Serving, Phase::Draining),
                (Phase::Draining, Phase::ClosingStreams),
            ]
        );
    }

    #[test]
    fn entry_times_are_recorded() {
        let cell = PhaseCell::new();
        assert!(cell.entered_at(Phase::Draining).is_none());
        cell.enter_draining();
        assert!(cell.entered_at(Phase::Draining).is_some());
    }

    #[test]
    fn wait_for_times_out_and_reports_the_phase() {
        let cell = PhaseCell::new();
        assert_eq!(
            cell.wait_for(Phase::Stopped, Some(Duration::from_millis(10))),
            Err(Phase::Serving)
        );
        assert_eq!(
            cell.wait_for(Phase::Serving, Some(Duration::ZERO)),
            Ok(Phase::Serving)
        );
    }
}
