//! Metrics rendered into a caller's buffer.

use super::{boundary, gs_status, runtime, status};
use std::ffi::c_char;

/// Which rendering `gs_render_metrics` produces.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum gs_metrics_format {
    /// Prometheus text exposition format 0.0.4.
    GS_METRICS_PROMETHEUS = 0,
    /// One JSON object with the same figures.
    GS_METRICS_JSON = 1,
}

/// Renders the metrics (a `gs_metrics_format` value) into `buffer` of
/// `length` bytes, NUL-terminated, and writes the rendering's length without
/// the NUL to `*written` (if not NULL). When the buffer is too small the
/// text is truncated, `GS_ERR_BUFFER_TOO_SMALL` is returned and `*written`
/// tells the size to retry with (plus one for the NUL). Call with
/// `length` 0 to ask for the size.
///
/// # Safety
/// `buffer` must be valid for `length` bytes of writes; `written` NULL or
/// valid for one write.
#[no_mangle]
pub unsafe extern "C" fn gs_render_metrics(
    format: u32,
    buffer: *mut c_char,
    length: usize,
    written: *mut usize,
) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        if buffer.is_null() && length != 0 {
            return status::invalid_argument("buffer is NULL");
        }
        let text = match format {
            0 => crate::metrics::render_prometheus(runtime()),
            1 => crate::metrics::render_json(runtime()),
            _ => return status::invalid_argument("format is not a gs_metrics_format value"),
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { super::buffer::copy_out(text.as_bytes(), buffer, length, written) }
    })
}
