//! The `GS_*` settings through the C ABI: every name the library reads,
//! and values set from code over the environment (a host whose settings
//! live in its own configuration: a Flask `app.config`, a Django
//! `settings.py`).

use super::{boundary, gs_status, status};
use crate::config;
use std::ffi::{c_char, CStr};

/// Every `GS_*` setting the library reads, in the order of the
/// configuration pages (docs/configuration.md): the shutdown sequence's,
/// the probe listener's, the stream hub's and its shared store's. The
/// Python package keeps its own table of these (with types and ranges)
/// and its tests hold the two equal; `tests/settings_list.rs` holds this
/// one to every `GS_*` constant of the crates.
pub(crate) fn names() -> Vec<&'static str> {
    let mut names = vec![
        config::env::SHUTDOWN_TIMEOUT,
        config::env::DRAIN_DELAY,
        config::env::CLOSE_NOTICE,
        config::env::HOOK_BUDGET,
        config::env::SECOND_SIGNAL,
        config::env::EXIT_WATCHDOG,
        config::env::EXIT_WATCHDOG_STATUS,
        config::env::SHUTDOWN_LOG,
    ];
    #[cfg(feature = "http")]
    {
        use crate::{hub, probes};
        names.extend([
            probes::PROBE_ADDR,
            probes::DRAIN_TOKEN,
            probes::HEARTBEAT_STALE,
            probes::LISTEN_BACKLOG,
            hub::STREAM_ADDR,
            hub::STREAM_SECRET,
            hub::STREAM_CORS_ORIGINS,
            hub::STREAM_HEARTBEAT,
            hub::STREAM_QUEUE,
            hub::STREAM_STALL,
            hub::STREAM_STORE,
            hub::STREAM_STORE_CA_FILE,
            hub::STREAM_STORE_CLIENT_CERT_FILE,
            hub::STREAM_STORE_CLIENT_KEY_FILE,
            hub::STREAM_PUBLISH_QUEUE,
            hub::STREAM_HISTORY,
            hub::STREAM_HISTORY_AGE,
            hub::STREAM_MAX_CONNECTIONS,
            hub::STREAM_MAX_CHANNELS,
            hub::STREAM_MAX_CHANNEL_BYTES,
            hub::STREAM_THREADS,
            hub::STREAM_IDLE,
        ]);
    }
    names
}

/// Writes the name of every `GS_*` setting the library reads into
/// `buffer`, one per line, by the out-buffer rule of `gs_render_metrics`
/// (`length` 0 asks for the size in `*written`).
///
/// # Safety
/// `buffer` must be valid for `length` bytes of writes; `written` NULL or
/// valid for one write.
#[no_mangle]
pub unsafe extern "C" fn gs_setting_names(
    buffer: *mut c_char,
    length: usize,
    written: *mut usize,
) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        if buffer.is_null() && length != 0 {
            return status::invalid_argument("buffer is NULL");
        }
        let text = names().join("\n");
        // SAFETY: forwarded from this function's contract.
        unsafe { super::buffer::copy_out(text.as_bytes(), buffer, length, written) }
    })
}

/// Sets the `GS_*` setting `name` to `value` for every later read in this
/// process, in place of its environment variable (`value` NULL: the
/// environment's again). The value is read, checked and refused where the
/// library reads the variable (`gs_config_from_env`, the listeners' start),
/// exactly as the variable's would be, the error naming it; a forked child
/// keeps what its parent set. Nothing already started changes: set a value
/// before what reads it starts. `GS_ERR_INVALID_ARGUMENT` for a name the
/// library does not read (`gs_setting_names`), NULL, or text that is not
/// UTF-8 or holds a line break in a name.
///
/// # Safety
/// `name` must be NULL or NUL-terminated; `value` likewise.
#[no_mangle]
pub unsafe extern "C" fn gs_set_setting(name: *const c_char, value: *const c_char) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        if name.is_null() {
            return status::invalid_argument("name is NULL");
        }
        // SAFETY: non-NULL and NUL-terminated per the caller's contract.
        let Ok(name) = unsafe { CStr::from_ptr(name) }.to_str() else {
            return status::invalid_argument("name is not UTF-8");
        };
        if !names().contains(&name) {
            return status::invalid_argument(&format!(
                "{name:?} is not a setting of the library (gs_setting_names lists them)"
            ));
        }
        let value = if value.is_null() {
            None
        } else {
            // SAFETY: non-NULL and NUL-terminated per the caller's contract.
            match unsafe { CStr::from_ptr(value) }.to_str() {
                Ok(text) => Some(text),
                Err(_) => {
                    return status::invalid_argument(&format!("the value of {name} is not UTF-8"))
                }
            }
        };
        last_call_runtime::settings::set(name, value);
        gs_status::GS_OK
    })
}
