//! The C ABI: every symbol is prefixed `gs_`, every entry point catches
//! panics, every fallible function returns a [`gs_status`], every pointer is
//! checked for NULL, and every duration is a `double` in seconds (NaN or
//! negative: `GS_ERR_INVALID_ARGUMENT`; infinity: no limit).
//!
//! All functions act on the process-wide runtime. They are safe to call from
//! any thread. Callbacks registered here run on the runtime's own threads,
//! never inside a signal handler.

#![allow(non_camel_case_types)]

// One file per C concept. The header lists them in this order (cbindgen
// reads the modules as declared), so the groups below keep it: rustfmt
// sorts only within a group.
mod buffer;
mod host_exit;
#[cfg(feature = "http")]
mod hub;
mod metrics;
mod pod_figures;
#[cfg(feature = "http")]
mod probes;
#[cfg(feature = "http")]
mod workers;

mod config;
mod settings;

mod watchdog;

mod shutdown_log;

mod testing;

mod signals;

mod phase_callbacks;

mod hooks;

mod status;
mod stream_endings;

mod version;

mod streams;

mod work;

pub use config::*;
pub use hooks::*;
pub use host_exit::*;
#[cfg(feature = "http")]
pub use hub::*;
pub use metrics::*;
pub use phase_callbacks::*;
pub use pod_figures::*;
#[cfg(feature = "http")]
pub use probes::*;
pub use settings::*;
pub use shutdown_log::*;
pub use signals::*;
pub use status::*;
pub use stream_endings::*;
pub use streams::*;
pub use testing::*;
pub use version::*;
pub use watchdog::*;
pub use work::*;
#[cfg(feature = "http")]
pub use workers::*;

use crate::Runtime;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `body`, turning a panic into `on_panic` (and a last-error message):
/// no panic ever unwinds into C.
fn boundary<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        status::set_last_error("internal error: a panic was caught at the C boundary".into());
        on_panic
    })
}

/// Like [`boundary`], for functions that return a status.
fn status_boundary(body: impl FnOnce() -> Result<(), crate::Error>) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || match body() {
        Ok(()) => gs_status::GS_OK,
        Err(error) => status::report(&error),
    })
}

/// The size of a buffer that holds any address a start function copies
/// out (`[v6-address%scope]:port` and the NUL): a smaller `bound` is
/// refused before anything starts.
pub const GS_ADDRESS_LENGTH_MAX: usize = 64;

#[cfg(feature = "http")]
/// How a listener is configured and started: the options read from the
/// environment (`None`: its address variable is unset), or with an address
/// given, and the start itself.
struct ListenerStart<O> {
    variable: &'static str,
    from_env: fn() -> Result<Option<O>, crate::ConfigError>,
    with_addr: fn(&str) -> Result<O, crate::ConfigError>,
    start: fn(&Runtime, O) -> Result<std::net::SocketAddr, crate::Error>,
}

#[cfg(feature = "http")]
/// The one body of the listeners' start functions (`gs_start_probe_listener`,
/// `gs_hub_start`): `addr` (NULL: the environment), the start, and the
/// address bound copied out.
///
/// # Safety
/// `addr` NULL or NUL-terminated; `bound` valid for `bound_length` bytes of
/// writes; `written` NULL or valid for one write.
unsafe fn start_listener<O>(
    listener: ListenerStart<O>,
    addr: *const std::ffi::c_char,
    bound: *mut std::ffi::c_char,
    bound_length: usize,
    written: *mut usize,
) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        if bound.is_null() && bound_length != 0 {
            return status::invalid_argument("bound is NULL");
        }
        // Checked before anything starts: a start either starts and
        // succeeds, or fails with nothing started (the address is not
        // known until it is bound, but never longer than this).
        if !bound.is_null() && bound_length < GS_ADDRESS_LENGTH_MAX {
            if !written.is_null() {
                // SAFETY: non-NULL and writable per the contract.
                unsafe { *written = GS_ADDRESS_LENGTH_MAX - 1 };
            }
            status::set_last_error(format!(
                "bound holds {bound_length} bytes; an address needs up to GS_ADDRESS_LENGTH_MAX ({GS_ADDRESS_LENGTH_MAX})"
            ));
            return gs_status::GS_ERR_BUFFER_TOO_SMALL;
        }
        let options = if addr.is_null() {
            match (listener.from_env)() {
                Ok(Some(options)) => options,
                Ok(None) => {
                    status::set_last_error(format!("{} is not set", listener.variable));
                    return gs_status::GS_ERR_INVALID_CONFIG;
                }
                Err(error) => return status::report(&error.into()),
            }
        } else {
            // SAFETY: non-NULL and NUL-terminated per the contract.
            let Ok(addr) = unsafe { std::ffi::CStr::from_ptr(addr) }.to_str() else {
                return status::invalid_argument("addr is not UTF-8");
            };
            match (listener.with_addr)(addr) {
                Ok(options) => options,
                Err(error) => return status::report(&error.into()),
            }
        };
        match (listener.start)(runtime(), options) {
            Ok(address) => {
                let text = address.to_string();
                // SAFETY: forwarded from this function's contract; `bound`
                // is NULL (the address is optional: only its length is
                // told) or holds GS_ADDRESS_LENGTH_MAX bytes, enough.
                unsafe { buffer::copy_out_optional(text.as_bytes(), bound, bound_length, written) }
            }
            Err(error) => status::report(&error),
        }
    })
}

fn runtime() -> &'static Runtime {
    Runtime::global()
}

/// A host pointer handed back to its callback.
#[derive(Clone, Copy)]
struct UserData(*mut std::ffi::c_void);
// SAFETY: the header tells hosts that callbacks, hooks and checks receive
// `user_data` on the runtime's threads; making that sound is the host's
// side of the contract.
unsafe impl Send for UserData {}
// SAFETY: as above; the runtime never dereferences it.
unsafe impl Sync for UserData {}

/// The status of a registration, writing its id to `*id` when not NULL.
///
/// # Safety
/// `id` must be NULL or valid for one write.
unsafe fn registered(
    result: Result<crate::RegistrationId, crate::Error>,
    id: *mut u64,
) -> gs_status {
    match result {
        Ok(crate::RegistrationId(value)) => {
            if !id.is_null() {
                // SAFETY: non-NULL and writable per the contract.
                unsafe { *id = value };
            }
            gs_status::GS_OK
        }
        Err(error) => status::report(&error),
    }
}
