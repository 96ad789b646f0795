//! `gs_status`, its messages, and the per-thread last error.

use crate::error::Error;
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

/// The result of every fallible `gs_` function. `GS_OK` is 0; every other
/// value is distinct and stable. `gs_status_message` describes a code;
/// `gs_last_error_message` gives the details of this thread's last failure.
// `repr(u32)`: a fixed width on both sides (C gets `typedef uint32_t
// gs_status`, C++ an enum with `uint32_t` as its underlying type), so that
// new codes never change its size.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum gs_status {
    /// Success.
    GS_OK = 0,
    /// A NULL pointer, a NaN or negative timeout, or a value outside its
    /// enum.
    GS_ERR_INVALID_ARGUMENT = 1,
    /// A stream ended with none active (decrement without increment). The
    /// count stays at 0.
    GS_ERR_NO_ACTIVE_STREAM = 2,
    /// Too many streams are active to count another.
    GS_ERR_TOO_MANY_STREAMS = 3,
    /// The shutdown sequence has started; draining can no longer be turned
    /// off.
    GS_ERR_SEQUENCE_STARTED = 4,
    /// The wait ended at its timeout before the condition held.
    GS_TIMED_OUT = 5,
    /// Signal handlers are already installed in this process.
    GS_ERR_ALREADY_INSTALLED = 6,
    /// A configuration value is malformed; the last error names it.
    GS_ERR_INVALID_CONFIG = 7,
    /// The caller's buffer is too small; the needed size was written.
    GS_ERR_BUFFER_TOO_SMALL = 8,
    /// The operating system refused (signal installation, thread start).
    GS_ERR_OS = 9,
    /// An internal error (a caught panic). Please report it.
    GS_ERR_PANIC = 10,
    /// No registration has that id.
    GS_ERR_NOT_FOUND = 11,
    /// A blocking wait (`gs_wait_for_streams`, `gs_wait_for_phase`) or the
    /// testing reset was called from a phase callback or a shutdown hook,
    /// where it could wait for itself. Returned at once; wait on another
    /// thread.
    GS_ERR_REENTRANT = 12,
    /// The probe listener or the stream hub already runs in this process;
    /// the last error gives its address.
    GS_ERR_ALREADY_STARTED = 13,
    /// The stream hub has not been started in this process
    /// (`gs_hub_start`).
    GS_ERR_HUB_NOT_STARTED = 14,
    /// The stream hub holds as many channels as it may, none of them idle.
    GS_ERR_HUB_FULL = 15,
    /// The stream hub's queue to its shared store is full: the store is
    /// slower than the publishers (retry later, or publish less).
    GS_ERR_HUB_BUSY = 16,
    /// Too late in the shutdown for this to take effect: a shutdown hook
    /// registered once Stopping has begun would never run, so it is refused
    /// (the last error says why).
    GS_ERR_TOO_LATE = 17,
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

pub(super) fn set_last_error(message: String) {
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = Some(message));
}

/// Records `error` as this thread's last error and returns its code.
pub(super) fn report(error: &Error) -> gs_status {
    set_last_error(error.to_string());
    match error {
        Error::NoActiveStream => gs_status::GS_ERR_NO_ACTIVE_STREAM,
        Error::TooManyStreams => gs_status::GS_ERR_TOO_MANY_STREAMS,
        Error::SequenceStarted => gs_status::GS_ERR_SEQUENCE_STARTED,
        Error::InvalidTimeout(_) => gs_status::GS_ERR_INVALID_ARGUMENT,
        Error::AlreadyInstalled => gs_status::GS_ERR_ALREADY_INSTALLED,
        Error::Config(_) => gs_status::GS_ERR_INVALID_CONFIG,
        Error::Os(_) => gs_status::GS_ERR_OS,
        Error::Reentrant(_) => gs_status::GS_ERR_REENTRANT,
        Error::TimedOut(_) => gs_status::GS_TIMED_OUT,
        Error::InvalidArgument(_) => gs_status::GS_ERR_INVALID_ARGUMENT,
        Error::AlreadyStarted(_) => gs_status::GS_ERR_ALREADY_STARTED,
        Error::HubNotStarted => gs_status::GS_ERR_HUB_NOT_STARTED,
        Error::HubBusy => gs_status::GS_ERR_HUB_BUSY,
        Error::HubFull => gs_status::GS_ERR_HUB_FULL,
        Error::TooLate(_) => gs_status::GS_ERR_TOO_LATE,
        // `Error` is non-exhaustive, and defined in the runtime crate: a
        // variant added there without a code here is an internal error.
        _ => gs_status::GS_ERR_PANIC,
    }
}

/// Records an invalid-argument failure.
pub(super) fn invalid_argument(what: &str) -> gs_status {
    set_last_error(format!("invalid argument: {what}"));
    gs_status::GS_ERR_INVALID_ARGUMENT
}

/// A static, NUL-terminated description of `status` (never NULL; an unknown
/// value gives "unknown status").
#[no_mangle]
pub extern "C" fn gs_status_message(status: u32) -> *const c_char {
    let text: &'static CStr = match status {
        0 => c"ok",
        1 => c"invalid argument",
        2 => c"no active stream: a stream ended without a matching begin",
        3 => c"too many active streams",
        4 => c"the shutdown sequence has started",
        5 => c"timed out",
        6 => c"signal handlers are already installed in this process",
        7 => c"invalid configuration",
        8 => c"buffer too small",
        9 => c"operating system error",
        10 => c"internal error (panic caught at the C boundary)",
        11 => c"no registration has that id",
        12 => c"a blocking call from a phase callback or shutdown hook (it could wait for itself)",
        13 => c"the listener already runs in this process",
        14 => c"the stream hub has not been started",
        15 => c"the stream hub holds as many channels as it may",
        16 => c"the stream hub's queue to its shared store is full",
        17 => c"too late in the shutdown: it would never take effect",
        _ => c"unknown status",
    };
    text.as_ptr()
}

/// Copies this thread's last error message (NUL-terminated, possibly
/// truncated) into `buffer` of `length` bytes and writes the full message
/// length, without the NUL, to `*message_length` if it is not NULL. An empty
/// message means no error has been recorded on this thread.
///
/// Returns `GS_ERR_INVALID_ARGUMENT` if `buffer` is NULL while `length` is
/// not 0, and `GS_ERR_BUFFER_TOO_SMALL` if the message was truncated.
///
/// # Safety
/// `buffer` must be valid for `length` bytes of writes; `message_length`
/// must be NULL or valid for one write.
#[no_mangle]
pub unsafe extern "C" fn gs_last_error_message(
    buffer: *mut c_char,
    length: usize,
    message_length: *mut usize,
) -> gs_status {
    super::boundary(gs_status::GS_ERR_PANIC, || {
        if buffer.is_null() && length != 0 {
            return invalid_argument("buffer is NULL");
        }
        LAST_ERROR.with(|slot| {
            let slot = slot.borrow();
            let bytes = slot.as_ref().map_or(&b""[..], |m| m.as_bytes());
            // SAFETY: the caller guarantees `buffer` is writable for `length`
            // bytes and `message_length` is NULL or writable.
            unsafe { super::buffer::copy_out(bytes, buffer, length, message_length) }
        })
    })
}

/// `GS_ERR_NOT_FOUND` for a registration id nothing has.
pub(super) fn not_found(id: u64) -> gs_status {
    set_last_error(format!("no registration has id {id}"));
    gs_status::GS_ERR_NOT_FOUND
}
