//! Phase callbacks through the C ABI.

use super::status::not_found;
use super::streams::gs_phase;
use super::{boundary, gs_status, registered, runtime, status, UserData};
use crate::RegistrationId;
use std::ffi::c_void;

/// Called at each phase change with the phase left, the phase entered, and
/// the `user_data` given at registration. Runs on the runtime's delivery
/// thread, one call at a time, in the order of the changes, with no lock
/// held; never in a signal handler. The shutdown sequence and the exit
/// watchdog do not wait for it: a callback that blocks delays only the
/// callbacks after it. Inside it, `gs_wait_for_streams` and
/// `gs_wait_for_phase` return `GS_ERR_REENTRANT` at once.
pub type gs_phase_callback =
    Option<unsafe extern "C" fn(from: gs_phase, to: gs_phase, user_data: *mut c_void)>;

/// Registers `callback` for every phase change from now on (only those
/// made after this call, even when the delivery thread is still telling
/// earlier callbacks of earlier ones), and writes its id to `*id` (if not
/// NULL) for `gs_remove_phase_callback`.
/// `GS_ERR_INVALID_ARGUMENT` if `callback` is NULL.
///
/// # Safety
/// `callback` must be safe to call with `user_data` from another thread
/// until removed; `id` NULL or valid for one write.
#[no_mangle]
pub unsafe extern "C" fn gs_on_phase(
    callback: gs_phase_callback,
    user_data: *mut c_void,
    id: *mut u64,
) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        let Some(callback) = callback else {
            return status::invalid_argument("callback is NULL");
        };
        let user_data = UserData(user_data);
        let result = runtime().on_phase(move |change| {
            let user_data = user_data;
            // SAFETY: the caller registered a function valid for these
            // arguments until it is removed.
            unsafe { callback(change.from.into(), change.to.into(), user_data.0) }
        });
        // SAFETY: `id` is NULL or writable per the contract.
        unsafe { registered(result, id) }
    })
}

/// Removes a phase callback. `GS_ERR_NOT_FOUND` for an unknown id.
///
/// * A callback removed before its delivery starts is never called.
/// * Called from outside any callback, this returns once the callback is
///   not running, and it is never called again.
/// * Called from inside a callback (to remove itself, even on its first
///   delivery, or another one), it returns at once and never deadlocks;
///   the removed callback is not called again after the call in flight,
///   if any, returns.
#[no_mangle]
pub extern "C" fn gs_remove_phase_callback(id: u64) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        if runtime().remove_phase_listener(RegistrationId(id)) {
            gs_status::GS_OK
        } else {
            not_found(id)
        }
    })
}
