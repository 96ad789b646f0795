//! How a C host ends its streams at ClosingStreams: the kind of each stream,
//! the moment each should end (the reconnect spread, see
//! `reconnect_spread.rs`), and the all-at-once option.
//!
//! The C pattern, in each stream's loop (see `examples/c_host/c_host.c`):
//!
//! ```c
//! double end_in;
//! gs_stream_end_in(GS_STREAM_RESUMABLE, &end_in);  // once per stream and wake-up
//! if (end_in == INFINITY)  { /* keep streaming */ }
//! else { /* keep streaming until end_in has passed, then send `retry:`,
//!           the last `id:` and `event: reconnect` (or, for a pod-bound
//!           stream, the host's final event), and end */ }
//! ```

use super::{boundary, gs_status, runtime, status};
use crate::reconnect_spread::{ReconnectSpread, StreamKind};

/// Resumable: any pod can serve the stream; it is told to reconnect, at its
/// own moment of the close notice. (A `gs_stream_kind` value.)
pub const GS_STREAM_RESUMABLE: u32 = 0;
/// Pod-bound: only this process can serve it (a task in its memory); it
/// runs until the streams' last moment, then gets the host's final event;
/// it is never sent to another pod.
pub const GS_STREAM_POD_BOUND: u32 = 1;

/// Spread the nudges of resumable streams uniformly over the close notice
/// (the default). (A `gs_set_reconnect_spread` value.)
pub const GS_RECONNECT_SPREAD: u32 = 0;
/// Nudge every resumable stream at the start of ClosingStreams.
pub const GS_RECONNECT_ALL_AT_ONCE: u32 = 1;

/// Draws when a stream of `kind` (`GS_STREAM_RESUMABLE` or
/// `GS_STREAM_POD_BOUND`) should end, in seconds from now, into
/// `*seconds_out`: `INFINITY` before ClosingStreams (keep streaming); once
/// it has begun, for a pod-bound stream the time until the streams' last
/// moment (the end of the nudge window: then send the final event and end)
/// and, for a resumable one, the time until a freshly drawn, uniformly
/// jittered moment of the nudge window (0 with `GS_RECONNECT_ALL_AT_ONCE`).
/// Each call after ClosingStreams began draws anew: call it once per
/// stream, then count down. `GS_ERR_INVALID_ARGUMENT` for an unknown kind
/// or a NULL pointer.
///
/// # Safety
/// `seconds_out` must be NULL or point to a writable `double`.
#[no_mangle]
pub unsafe extern "C" fn gs_stream_end_in(kind: u32, seconds_out: *mut f64) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        let kind = match stream_kind(kind) {
            Ok(kind) => kind,
            Err(status) => return status,
        };
        if seconds_out.is_null() {
            return status::report(&crate::Error::InvalidArgument("seconds_out is NULL"));
        }
        let seconds = runtime()
            .reconnect_delay(kind)
            .map_or(f64::INFINITY, |delay| delay.as_secs_f64());
        // SAFETY: checked non-NULL above; the caller promises it points to a
        // writable double.
        unsafe { seconds_out.write(seconds) };
        gs_status::GS_OK
    })
}

/// Tells the runtime that the host has just sent a stream of `kind` its
/// ending at its moment and is ending it: the reconnect hint for a
/// `GS_STREAM_RESUMABLE` stream, the final event for a `GS_STREAM_POD_BOUND`
/// one. Counted for the shutdown log's last line ("nudged to reconnect",
/// "given their final event", see `gs_set_shutdown_log`); a stream ended
/// without it counts as ended on its own. Lock-free.
/// `GS_ERR_INVALID_ARGUMENT` for an unknown kind.
#[no_mangle]
pub extern "C" fn gs_stream_ending_sent(kind: u32) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || match stream_kind(kind) {
        Ok(kind) => {
            runtime().stream_ending_sent(kind);
            gs_status::GS_OK
        }
        Err(status) => status,
    })
}

/// A `gs_stream_kind` value, or `GS_ERR_INVALID_ARGUMENT` (reported).
fn stream_kind(kind: u32) -> Result<StreamKind, gs_status> {
    match kind {
        GS_STREAM_RESUMABLE => Ok(StreamKind::Resumable),
        GS_STREAM_POD_BOUND => Ok(StreamKind::PodBound),
        _ => Err(status::report(&crate::Error::InvalidArgument(
            "kind is not a gs_stream_kind value",
        ))),
    }
}

/// Chooses when resumable streams are nudged: `GS_RECONNECT_SPREAD` (the
/// default) or `GS_RECONNECT_ALL_AT_ONCE`. `GS_ERR_INVALID_ARGUMENT` for
/// any other value.
#[no_mangle]
pub extern "C" fn gs_set_reconnect_spread(spread: u32) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        let spread = match spread {
            GS_RECONNECT_SPREAD => ReconnectSpread::Spread,
            GS_RECONNECT_ALL_AT_ONCE => ReconnectSpread::AllAtOnce,
            _ => {
                return status::report(&crate::Error::InvalidArgument(
                    "not a reconnect spread value",
                ))
            }
        };
        runtime().set_reconnect_spread(spread);
        gs_status::GS_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_refused_and_serving_means_keep_streaming() {
        let mut seconds = -1.0;
        // SAFETY: a valid out-pointer, or NULL, which is checked.
        unsafe {
            assert_eq!(
                gs_stream_end_in(7, &mut seconds),
                gs_status::GS_ERR_INVALID_ARGUMENT
            );
            assert_eq!(
                gs_stream_end_in(GS_STREAM_RESUMABLE, std::ptr::null_mut()),
                gs_status::GS_ERR_INVALID_ARGUMENT
            );
            assert_eq!(seconds, -1.0);
            assert_eq!(
                gs_stream_end_in(GS_STREAM_POD_BOUND, &mut seconds),
                gs_status::GS_OK
            );
        }
        assert_eq!(seconds, f64::INFINITY);
        assert_eq!(
            gs_set_reconnect_spread(9),
            gs_status::GS_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            gs_set_reconnect_spread(GS_RECONNECT_ALL_AT_ONCE),
            gs_status::GS_OK
        );
        assert_eq!(runtime().reconnect_spread(), ReconnectSpread::AllAtOnce);
        assert_eq!(gs_stream_ending_sent(2), gs_status::GS_ERR_INVALID_ARGUMENT);
        assert_eq!(gs_stream_ending_sent(GS_STREAM_POD_BOUND), gs_status::GS_OK);
    }
}
