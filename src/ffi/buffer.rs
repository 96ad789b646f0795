//! The one out-buffer rule of the C ABI: the caller's buffer gets the text
//! and a NUL (truncated to fit), `*written` the full length, and a buffer
//! too small is `GS_ERR_BUFFER_TOO_SMALL` (the header's `gs_render_metrics`
//! states it for every function that copies text out).

use super::gs_status;
use std::ffi::c_char;

/// Copies `bytes` and a NUL into `buffer` (truncating to fit), writes the
/// full length to `*written` when not NULL.
///
/// # Safety
/// `buffer` must be valid for `length` bytes of writes (or `length` 0);
/// `written` NULL or valid for one write.
pub(crate) unsafe fn copy_out(
    bytes: &[u8],
    buffer: *mut c_char,
    length: usize,
    written: *mut usize,
) -> gs_status {
    if !written.is_null() {
        // SAFETY: non-NULL, and the caller guarantees it is writable.
        unsafe { *written = bytes.len() };
    }
    if length == 0 {
        return if bytes.is_empty() {
            gs_status::GS_OK
        } else {
            gs_status::GS_ERR_BUFFER_TOO_SMALL
        };
    }
    let copied = bytes.len().min(length - 1);
    // SAFETY: `copied + 1 <= length` bytes are written to a buffer the
    // caller guarantees holds `length`; the source is a live slice that
    // cannot overlap a C caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer.cast::<u8>(), copied);
        *buffer.add(copied) = 0;
    }
    if copied < bytes.len() {
        gs_status::GS_ERR_BUFFER_TOO_SMALL
    } else {
        gs_status::GS_OK
    }
}

/// As [`copy_out`], for an optional out-parameter: `buffer` NULL (with
/// `length` 0) is not "too small", it is "not wanted": only `*written` is
/// told.
///
/// # Safety
/// As [`copy_out`].
pub(crate) unsafe fn copy_out_optional(
    bytes: &[u8],
    buffer: *mut c_char,
    length: usize,
    written: *mut usize,
) -> gs_status {
    if buffer.is_null() {
        if !written.is_null() {
            // SAFETY: non-NULL, and the caller guarantees it is writable.
            unsafe { *written = bytes.len() };
        }
        return gs_status::GS_OK;
    }
    // SAFETY: forwarded.
    unsafe { copy_out(bytes, buffer, length, written) }
}
