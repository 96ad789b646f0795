//! Stream accounting and the phase, named after the methods the legacy
//! Python app calls.

use super::{boundary, gs_status, runtime, status, status_boundary};
use crate::error::timeout_from_secs;
use crate::phase::Phase;

/// The phase of the process. See "Phases" in `docs/how-it-works.md`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum gs_phase {
    /// Normal operation: ready, accepting new tasks.
    GS_PHASE_SERVING = 0,
    /// Not ready; new tasks refused; open streams run to their natural end.
    GS_PHASE_DRAINING = 1,
    /// The deadline is near: end each open stream with a reconnect hint.
    GS_PHASE_CLOSING_STREAMS = 2,
    /// Streams are done or the deadline passed; shutdown hooks run.
    GS_PHASE_STOPPING = 3,
    /// The hooks are done (each returned, was left running past its share,
    /// or had no time left to be called); the host should exit.
    GS_PHASE_STOPPED = 4,
}

impl From<Phase> for gs_phase {
    fn from(phase: Phase) -> Self {
        match phase {
            Phase::Serving => gs_phase::GS_PHASE_SERVING,
            Phase::Draining => gs_phase::GS_PHASE_DRAINING,
            Phase::ClosingStreams => gs_phase::GS_PHASE_CLOSING_STREAMS,
            Phase::Stopping => gs_phase::GS_PHASE_STOPPING,
            Phase::Stopped => gs_phase::GS_PHASE_STOPPED,
        }
    }
}

/// A phase from a C integer, or `None` outside the enum.
pub(super) fn phase_from_c(value: u32) -> Option<Phase> {
    Phase::ALL.get(usize::try_from(value).ok()?).copied()
}

/// At most this many streams may be active at once.
// A literal (not `crate::MAX_ACTIVE_STREAMS`) so that cbindgen can emit it;
// the test below keeps the two equal.
pub const GS_MAX_ACTIVE_STREAMS: u32 = (1 << 24) - 1;

#[test]
fn the_c_constant_matches_the_rust_one() {
    assert_eq!(GS_MAX_ACTIVE_STREAMS, crate::MAX_ACTIVE_STREAMS);
}

/// Counts one more active stream. Lock-free; safe from any thread.
/// `GS_ERR_TOO_MANY_STREAMS` if 2^24 - 1 are already active.
#[no_mangle]
pub extern "C" fn gs_increment_active_streams() -> gs_status {
    status_boundary(|| runtime().increment_active_streams())
}

/// Counts one stream as ended. Lock-free; safe from any thread. Without a
/// matching increment: `GS_ERR_NO_ACTIVE_STREAM`, and the count stays at 0.
/// The end that brings the count to 0 wakes every `gs_wait_for_streams`.
#[no_mangle]
pub extern "C" fn gs_decrement_active_streams() -> gs_status {
    status_boundary(|| runtime().decrement_active_streams())
}

/// Streams active now.
#[no_mangle]
pub extern "C" fn gs_active_streams() -> u64 {
    boundary(0, || u64::from(runtime().active_streams()))
}

/// Streams begun since the process started (a Prometheus counter).
#[no_mangle]
pub extern "C" fn gs_streams_started_total() -> u64 {
    boundary(0, || runtime().streams_started_total())
}

/// Streams ended since the process started (a Prometheus counter).
#[no_mangle]
pub extern "C" fn gs_streams_finished_total() -> u64 {
    boundary(0, || runtime().streams_finished_total())
}

/// Non-zero: leave rotation (Serving -> Draining) without starting the
/// shutdown sequence; a no-op in any later phase. 0: back to Serving;
/// `GS_ERR_SEQUENCE_STARTED` once the shutdown sequence has started.
// `uint8_t`, not `bool`: a C `bool` holding anything but 0 or 1 would be
// undefined behaviour on this side; any byte is a valid `u8`.
#[no_mangle]
pub extern "C" fn gs_set_draining(draining: u8) -> gs_status {
    status_boundary(|| runtime().set_draining(draining != 0))
}

/// `true` in every phase but Serving (not ready, refuse new tasks).
#[no_mangle]
pub extern "C" fn gs_is_draining() -> bool {
    boundary(true, || runtime().is_draining())
}

/// The current phase.
#[no_mangle]
pub extern "C" fn gs_current_phase() -> gs_phase {
    boundary(gs_phase::GS_PHASE_SERVING, || runtime().phase().into())
}

/// Blocks until no stream is active, or `timeout_seconds` pass (INFINITY:
/// no limit). The calling thread sleeps; the last stream's end wakes it.
/// `GS_OK`: the count was zero at some moment of the wait.
/// `GS_TIMED_OUT`: streams remained. `GS_ERR_INVALID_ARGUMENT`: NaN or
/// negative timeout. `GS_ERR_REENTRANT`, at once, from a phase callback or
/// a shutdown hook.
#[no_mangle]
pub extern "C" fn gs_wait_for_streams(timeout_seconds: f64) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        match timeout_from_secs(timeout_seconds).and_then(|t| runtime().wait_for_streams(t)) {
            Err(error) => status::report(&error),
            Ok(true) => gs_status::GS_OK,
            Ok(false) => gs_status::GS_TIMED_OUT,
        }
    })
}

/// Blocks until the phase is at least `phase` (a `gs_phase` value), or
/// `timeout_seconds` pass (INFINITY: no limit). `GS_OK` when reached,
/// `GS_TIMED_OUT` otherwise; `GS_ERR_INVALID_ARGUMENT` for a value outside
/// `gs_phase` or a NaN or negative timeout; `GS_ERR_REENTRANT`, at once,
/// from a phase callback or a shutdown hook (where the phase could wait for
/// the caller). Typical use: the host's main thread waits for
/// `GS_PHASE_STOPPED`, then returns from `main`.
#[no_mangle]
pub extern "C" fn gs_wait_for_phase(phase: u32, timeout_seconds: f64) -> gs_status {
    status_boundary(|| {
        let target = phase_from_c(phase).ok_or(crate::Error::InvalidArgument(
            "phase is not a gs_phase value",
        ))?;
        let timeout = timeout_from_secs(timeout_seconds)?;
        runtime().wait_for_phase(target, timeout).map(|_| ())
    })
}
