//! The probe listener, the liveness heartbeat and readiness checks through
//! the C ABI.

use super::status::not_found;
use super::UserData;
use super::{boundary, gs_status, registered, runtime, start_listener, status, ListenerStart};
use crate::error::timeout_from_secs;
use crate::probes::{ProbeOptions, PROBE_ADDR};
use crate::{RegistrationId, Runtime};
use std::ffi::{c_char, c_void, CStr};

/// Starts the probe listener (`GET /readyz`, `GET /healthz`, `GET /metrics`,
/// `POST /drain`) on a thread of the runtime's own, so that probes are
/// answered whatever the host's threads are doing. `addr` is `host:port`
/// (port 0: a free port); NULL reads `GS_PROBE_ADDR`. The drain token comes
/// from `GS_DRAIN_TOKEN` (unset: `/drain` answers 403 and never drains) and
/// the heartbeat staleness from `GS_HEARTBEAT_STALE_SECONDS` (default 10).
/// Prints `probes on http://HOST:PORT` on stdout, and copies `HOST:PORT`,
/// NUL-terminated, into `bound` if not NULL (and its length into `*written`
/// if not NULL). A `bound` smaller than `GS_ADDRESS_LENGTH_MAX` is
/// `GS_ERR_BUFFER_TOO_SMALL` with nothing started.
///
/// `GS_ERR_INVALID_CONFIG` for a malformed address, a port in use, or NULL
/// with `GS_PROBE_ADDR` unset (the last error names the variable);
/// `GS_ERR_ALREADY_STARTED` if it already runs in this process.
///
/// # Safety
/// `addr` must be NULL or a NUL-terminated string; `bound` valid for
/// `bound_length` bytes of writes; `written` NULL or valid for one write.
#[no_mangle]
pub unsafe extern "C" fn gs_start_probe_listener(
    addr: *const c_char,
    bound: *mut c_char,
    bound_length: usize,
    written: *mut usize,
) -> gs_status {
    let listener = ListenerStart {
        variable: PROBE_ADDR,
        from_env: ProbeOptions::from_env,
        with_addr: ProbeOptions::from_env_with_addr,
        start: Runtime::start_probe_listener,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { start_listener(listener, addr, bound, bound_length, written) }
}

/// Records a liveness heartbeat (one atomic store; any thread, as often as
/// wanted). Send it from the loop that matters: once one was sent, the probe
/// listener's `/healthz` answers 503 when the last is older than the
/// staleness. A host that never sends one is always alive.
#[no_mangle]
pub extern "C" fn gs_heartbeat() {
    boundary((), || runtime().heartbeat());
}

/// A readiness check: returns whether the host is ready. Called on one of
/// the probe listener's threads, at most once at a time per check.
pub type gs_readiness_check = Option<unsafe extern "C" fn(user_data: *mut c_void) -> u8>;

/// Adds a readiness check named `name` (copied) that the probe listener's
/// `/readyz` consults while serving: one that returns false, or takes longer
/// than `timeout_seconds`, makes `/readyz` answer 503 naming it. Writes its
/// id to `*id` (if not NULL). `GS_ERR_INVALID_ARGUMENT` for a NULL name or
/// check, a name that is not UTF-8, or a timeout that is NaN, negative, 0 or
/// infinite.
///
/// # Safety
/// `name` must be NULL or NUL-terminated; `check` must be safe to call with
/// `user_data` from another thread until removed; `id` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gs_add_readiness_check(
    name: *const c_char,
    check: gs_readiness_check,
    user_data: *mut c_void,
    timeout_seconds: f64,
    id: *mut u64,
) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        let Some(check) = check else {
            return status::invalid_argument("check is NULL");
        };
        if name.is_null() {
            return status::invalid_argument("name is NULL");
        }
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let Ok(name) = unsafe { CStr::from_ptr(name) }.to_str() else {
            return status::invalid_argument("name is not UTF-8");
        };
        let timeout = match timeout_from_secs(timeout_seconds) {
            Ok(Some(timeout)) => timeout,
            Ok(None) => {
                return status::invalid_argument("a readiness check needs a finite timeout")
            }
            Err(error) => return status::report(&error),
        };
        let user_data = UserData(user_data);
        let added = runtime().add_readiness_check(name, timeout, move || {
            let user_data = user_data;
            // SAFETY: the caller registered a function valid for this
            // argument until it is removed.
            unsafe { check(user_data.0) != 0 }
        });
        // SAFETY: `id` is NULL or writable per the contract.
        unsafe { registered(added, id) }
    })
}

/// Removes a readiness check. `GS_ERR_NOT_FOUND` for an unknown id.
#[no_mangle]
pub extern "C" fn gs_remove_readiness_check(id: u64) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        if runtime().remove_readiness_check(RegistrationId(id)) {
            gs_status::GS_OK
        } else {
            not_found(id)
        }
    })
}
