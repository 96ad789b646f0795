//! The stream hub through the C ABI: start it, publish to channels from any
//! thread, close channels, mint subscription tokens.

use super::stream_endings::{GS_STREAM_POD_BOUND, GS_STREAM_RESUMABLE};
use super::{boundary, gs_status, runtime, start_listener, status, ListenerStart};
use crate::error::timeout_from_secs;
use crate::hub::{HubOptions, STREAM_ADDR};
use crate::reconnect_spread::StreamKind;
use crate::Runtime;
use std::ffi::{c_char, CStr};

/// A NUL-terminated UTF-8 argument; `None` (with the last error set) if it
/// is NULL or not UTF-8.
///
/// # Safety
/// `text` must be NULL or NUL-terminated.
unsafe fn text<'a>(text: *const c_char, what: &str) -> Result<&'a str, gs_status> {
    if text.is_null() {
        return Err(status::invalid_argument(&format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(text) }
        .to_str()
        .map_err(|_| status::invalid_argument(&format!("{what} is not UTF-8")))
}

/// Like [`text`], NULL giving `None`.
///
/// # Safety
/// As [`text`].
unsafe fn optional_text<'a>(
    value: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, gs_status> {
    if value.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded.
        unsafe { text(value, what) }.map(Some)
    }
}

fn kind_of(kind: u32) -> Result<StreamKind, gs_status> {
    match kind {
        GS_STREAM_RESUMABLE => Ok(StreamKind::Resumable),
        GS_STREAM_POD_BOUND => Ok(StreamKind::PodBound),
        _ => Err(status::invalid_argument(
            "kind is not a gs_stream_kind value",
        )),
    }
}

/// Starts the stream hub (`GET /streams/<channel>`, Server-Sent Events) on
/// a thread of the runtime's own. `addr` is `host:port` (port 0: a free
/// port); NULL reads `GS_STREAM_ADDR`. The secret comes from
/// `GS_STREAM_SECRET` (required), the CORS allow-list and bounds from the
/// other `GS_STREAM_*` variables. Prints `streams on http://HOST:PORT` on
/// stdout and copies `HOST:PORT`, NUL-terminated, into `bound` if not NULL
/// (and its length into `*written` if not NULL). A `bound` smaller than
/// `GS_ADDRESS_LENGTH_MAX` is `GS_ERR_BUFFER_TOO_SMALL` with nothing
/// started.
///
/// `GS_ERR_INVALID_CONFIG` for a missing secret, a malformed value or a
/// port in use (the last error names the variable);
/// `GS_ERR_ALREADY_STARTED` if it already runs in this process.
///
/// # Safety
/// `addr` NULL or NUL-terminated; `bound` valid for `bound_length` bytes of
/// writes; `written` NULL or valid for one write.
#[no_mangle]
pub unsafe extern "C" fn gs_hub_start(
    addr: *const c_char,
    bound: *mut c_char,
    bound_length: usize,
    written: *mut usize,
) -> gs_status {
    let listener = ListenerStart {
        variable: STREAM_ADDR,
        from_env: HubOptions::from_env,
        with_addr: HubOptions::from_env_with_addr,
        start: Runtime::start_hub,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { start_listener(listener, addr, bound, bound_length, written) }
}

/// The size of an `id_out` buffer that holds any id the hub numbers (a
/// 64-bit number in decimal, and the NUL).
pub const GS_EVENT_NUMBER_LENGTH_MAX: usize = 21;

/// Publishes an event to `channel` without blocking, from any thread: the
/// event `event` (NULL: `message`) with `data_length` bytes of UTF-8 `data`
/// (line breaks become several `data:` lines), the id `id` (NULL: the
/// channel's next number; not used with a shared store, `GS_STREAM_STORE`,
/// which numbers the event when it writes it: the id copied out is then
/// empty), and the channel's kind from now on (`GS_STREAM_RESUMABLE` or
/// `GS_STREAM_POD_BOUND`). Copies the event's id into `id_out` if not NULL,
/// and its length into `*written` if not NULL.
/// An `id_out` that could not hold the id (`id`'s length and a NUL, or
/// `GS_EVENT_NUMBER_LENGTH_MAX` when the hub numbers the event) is
/// `GS_ERR_BUFFER_TOO_SMALL` with nothing published and `*written` set to
/// the length to make room for: retrying never publishes twice.
///
/// `GS_ERR_INVALID_ARGUMENT` for a bad channel name (1 to 200 of
/// `A-Z a-z 0-9 - _ . ~ :`), a name or id with a line break, data that is
/// not UTF-8 or holds a NUL, or (without a shared store) a closed channel;
/// `GS_ERR_HUB_FULL`; `GS_ERR_HUB_BUSY` (the queue to the shared store is
/// full); `GS_ERR_HUB_NOT_STARTED`.
///
/// # Safety
/// `channel` NUL-terminated; `event` and `id` NULL or NUL-terminated;
/// `data` valid for `data_length` bytes of reads (may be NULL if 0);
/// `id_out` valid for `id_out_length` bytes of writes; `written` NULL or
/// valid for one write.
#[no_mangle]
pub unsafe extern "C" fn gs_hub_publish(
    channel: *const c_char,
    event: *const c_char,
    data: *const u8,
    data_length: usize,
    id: *const c_char,
    kind: u32,
    id_out: *mut c_char,
    id_out_length: usize,
    written: *mut usize,
) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        if id_out.is_null() && id_out_length != 0 {
            return status::invalid_argument("id_out is NULL");
        }
        if data.is_null() && data_length != 0 {
            return status::invalid_argument("data is NULL");
        }
        // SAFETY: per the contract, for each.
        let (channel, event, id) = match unsafe {
            (
                text(channel, "channel"),
                optional_text(event, "event"),
                optional_text(id, "id"),
            )
        } {
            (Ok(channel), Ok(event), Ok(id)) => (channel, event.unwrap_or("message"), id),
            (Err(code), _, _) | (_, Err(code), _) | (_, _, Err(code)) => return code,
        };
        let bytes: &[u8] = if data_length == 0 {
            &[]
        } else {
            // SAFETY: non-NULL and readable for `data_length` bytes per the
            // contract.
            unsafe { std::slice::from_raw_parts(data, data_length) }
        };
        let Ok(data) = std::str::from_utf8(bytes) else {
            return status::invalid_argument("data is not UTF-8");
        };
        let kind = match kind_of(kind) {
            Ok(kind) => kind,
            Err(code) => return code,
        };
        // Checked before publishing, so that following the buffer rule
        // (retry with the size told) never publishes twice: the id is the
        // one given, or a number the hub gives (at most 20 digits).
        let needed = id.map_or(GS_EVENT_NUMBER_LENGTH_MAX - 1, str::len);
        if !id_out.is_null() && id_out_length <= needed {
            if !written.is_null() {
                // SAFETY: non-NULL and writable per the contract.
                unsafe { *written = needed };
            }
            status::set_last_error(format!(
                "id_out holds {id_out_length} bytes; the id needs up to {} (nothing was published)",
                needed + 1
            ));
            return gs_status::GS_ERR_BUFFER_TOO_SMALL;
        }
        match runtime().hub_publish(channel, event, data, id, kind) {
            Ok(assigned) => {
                // SAFETY: forwarded from this function's contract; `id_out`
                // is NULL (the id is optional) or big enough (above).
                unsafe {
                    super::buffer::copy_out_optional(
                        assigned.as_bytes(),
                        id_out,
                        id_out_length,
                        written,
                    )
                }
            }
            Err(error) => status::report(&error),
        }
    })
}

/// Publishes like `gs_hub_publish`, in the fewest arguments: for hosts
/// that publish per event through a foreign-function interface whose cost
/// grows with each argument (Python's ctypes). `data` is NUL-terminated
/// UTF-8 (so it cannot hold a NUL, which `gs_hub_publish` refuses anyway);
/// `event` NULL is `message`; `id` NULL lets the hub number the event.
///
/// Returns the number the hub gave the event (1 or more; its id is that
/// number in decimal) when `id` is NULL, 0 when `id` was given (the
/// event's id is `id`) or with a shared store (`GS_STREAM_STORE`: queued,
/// its id given by the store when written, `id` not used), or a failure as
/// a negative `gs_status`: `-result` is `GS_ERR_INVALID_ARGUMENT`,
/// `GS_ERR_HUB_BUSY` (the queue to the shared store is full), `GS_ERR_HUB_FULL`,
/// `GS_ERR_HUB_NOT_STARTED` or `GS_ERR_PANIC`, as for `gs_hub_publish`
/// (the last error says more).
///
/// # Safety
/// `channel` and `data` NUL-terminated; `event` and `id` NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn gs_hub_send(
    channel: *const c_char,
    kind: u32,
    event: *const c_char,
    data: *const c_char,
    id: *const c_char,
) -> i64 {
    let failed = |code: gs_status| -(code as i64);
    boundary(failed(gs_status::GS_ERR_PANIC), || {
        // SAFETY: per the contract, for each.
        let (channel, event, data, id) = match unsafe {
            (
                text(channel, "channel"),
                optional_text(event, "event"),
                text(data, "data"),
                optional_text(id, "id"),
            )
        } {
            (Ok(channel), Ok(event), Ok(data), Ok(id)) => {
                (channel, event.unwrap_or("message"), data, id)
            }
            (Err(code), ..) | (_, Err(code), ..) | (.., Err(code), _) | (.., Err(code)) => {
                return failed(code)
            }
        };
        let kind = match kind_of(kind) {
            Ok(kind) => kind,
            Err(code) => return failed(code),
        };
        match runtime().hub_publish_event(channel, event, data, id, kind) {
            Ok(published) => published
                .number
                .map_or(0, |number| i64::try_from(number).unwrap_or(i64::MAX)),
            Err(error) => failed(status::report(&error)),
        }
    })
}

/// Closes `channel`: its subscribers get the final event and their streams
/// end. `event` and `data` give the final event (both NULL: the one set
/// with `gs_hub_set_final_event`, else `event: close`). Writes whether the
/// channel was known to `*known` (if not NULL).
///
/// # Safety
/// `channel` NUL-terminated; `event` and `data` NULL or NUL-terminated;
/// `known` NULL or valid for one write.
#[no_mangle]
pub unsafe extern "C" fn gs_hub_close_channel(
    channel: *const c_char,
    event: *const c_char,
    data: *const c_char,
    known: *mut bool,
) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        // SAFETY: per the contract, for each.
        let (channel, event, data) = match unsafe {
            (
                text(channel, "channel"),
                optional_text(event, "event"),
                optional_text(data, "data"),
            )
        } {
            (Ok(channel), Ok(event), Ok(data)) => (channel, event, data),
            (Err(code), _, _) | (_, Err(code), _) | (_, _, Err(code)) => return code,
        };
        let final_event = match (event, data) {
            (None, None) => None,
            (event, data) => Some((event.unwrap_or("close"), data.unwrap_or(""))),
        };
        match runtime().hub_close_channel(channel, final_event) {
            Ok(was_known) => {
                if !known.is_null() {
                    // SAFETY: non-NULL and writable per the contract.
                    unsafe { *known = was_known };
                }
                gs_status::GS_OK
            }
            Err(error) => status::report(&error),
        }
    })
}

/// Sets the final event of `channel` and its kind: a pod-bound channel is
/// closed with it at ClosingStreams (such as `task_failed` with reason
/// `shutdown`).
///
/// # Safety
/// `channel`, `event` and `data` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn gs_hub_set_final_event(
    channel: *const c_char,
    kind: u32,
    event: *const c_char,
    data: *const c_char,
) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        // SAFETY: per the contract, for each.
        let (channel, event, data) = match unsafe {
            (
                text(channel, "channel"),
                text(event, "event"),
                text(data, "data"),
            )
        } {
            (Ok(channel), Ok(event), Ok(data)) => (channel, event, data),
            (Err(code), _, _) | (_, Err(code), _) | (_, _, Err(code)) => return code,
        };
        let kind = match kind_of(kind) {
            Ok(kind) => kind,
            Err(code) => return code,
        };
        match runtime().hub_set_final_event(channel, kind, event, data) {
            Ok(()) => gs_status::GS_OK,
            Err(error) => status::report(&error),
        }
    })
}

/// The size of a `token` buffer that holds any subscription token (the
/// longest channel, the farthest expiry, and the NUL).
// A literal, for cbindgen; the test below checks it against the hub's bound.
pub const GS_SUBSCRIBE_TOKEN_LENGTH_MAX: usize = 336;

#[test]
fn the_token_buffer_constant_is_the_hubs_bound() {
    assert_eq!(
        GS_SUBSCRIBE_TOKEN_LENGTH_MAX,
        crate::hub::SUBSCRIBE_TOKEN_LEN_MAX + 1
    );
}

/// Mints a subscription token for `channel`, valid `ttl_seconds` on every
/// pod sharing `GS_STREAM_SECRET`, into `token` (see `gs_render_metrics`
/// for the buffer rules; `GS_SUBSCRIBE_TOKEN_LENGTH_MAX` bytes hold any
/// token).
///
/// # Safety
/// `channel` NUL-terminated; `token` valid for `token_length` bytes of
/// writes; `written` NULL or valid for one write.
#[no_mangle]
pub unsafe extern "C" fn gs_hub_subscribe_token(
    channel: *const c_char,
    ttl_seconds: f64,
    token: *mut c_char,
    token_length: usize,
    written: *mut usize,
) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        if token.is_null() && token_length != 0 {
            return status::invalid_argument("token is NULL");
        }
        // SAFETY: per the contract.
        let channel = match unsafe { text(channel, "channel") } {
            Ok(channel) => channel,
            Err(code) => return code,
        };
        let ttl = match timeout_from_secs(ttl_seconds) {
            Ok(Some(ttl)) => ttl,
            Ok(None) => return status::invalid_argument("a token needs a finite lifetime"),
            Err(error) => return status::report(&error),
        };
        match runtime().hub_subscribe_token(channel, ttl) {
            Ok(minted) => {
                // SAFETY: forwarded from this function's contract.
                unsafe { super::buffer::copy_out(minted.as_bytes(), token, token_length, written) }
            }
            Err(error) => status::report(&error),
        }
    })
}

/// Hub clients disconnected for falling too far behind.
#[no_mangle]
pub extern "C" fn gs_hub_slow_clients_disconnected_total() -> u64 {
    boundary(0, || runtime().hub_slow_clients_disconnected())
}
