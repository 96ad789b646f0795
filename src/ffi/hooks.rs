//! Shutdown hooks through the C ABI.

use super::status::not_found;
use super::{boundary, gs_status, registered, runtime, status, UserData};
use crate::hooks::HookOrder;
use crate::seconds::config_to_secs;
use crate::RegistrationId;
use std::ffi::{c_char, c_void, CStr};

/// Called at most once in Stopping (not when its group's turn comes with
/// no time left, reported as not called), on a thread of its own, with the seconds it is
/// given (its group's share of the time left) and the registration's
/// `user_data`; returns whether it finished its work. Hooks run in
/// registration order, a group at a time (see
/// `gs_register_shutdown_hook_ex`); one still running at the end of its
/// share is left running, reported as overrunning, and the next group
/// starts with its own share. Inside it, `gs_wait_for_streams` and
/// `gs_wait_for_phase` return `GS_ERR_REENTRANT` at once.
pub type gs_shutdown_hook =
    Option<unsafe extern "C" fn(remaining_seconds: f64, user_data: *mut c_void) -> u8>;

/// `flags` for `gs_register_shutdown_hook_ex`: run at the same time as the
/// hook registered just before it (in its group, with the group's share).
pub const GS_HOOK_WITH_PREVIOUS: u32 = 1;

/// Registers a shutdown hook named `name` (copied; used in logs and
/// reports), to run in Stopping after the hooks registered before it, and
/// writes its id to `*id` (if not NULL). `GS_ERR_INVALID_ARGUMENT` if `name`
/// or `hook` is NULL or `name` is not UTF-8; `GS_ERR_TOO_LATE` once
/// Stopping has begun (the hooks have been taken to run: this one never
/// would). The same as `gs_register_shutdown_hook_ex` with `flags` 0.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string; `hook` must be safe to
/// call with `user_data` from another thread; `id` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gs_register_shutdown_hook(
    name: *const c_char,
    hook: gs_shutdown_hook,
    user_data: *mut c_void,
    id: *mut u64,
) -> gs_status {
    // SAFETY: forwarded from this function's contract.
    unsafe { gs_register_shutdown_hook_ex(name, hook, user_data, 0, id) }
}

/// Registers a shutdown hook, as `gs_register_shutdown_hook`, with `flags`:
/// 0 (after the hooks registered before it) or `GS_HOOK_WITH_PREVIOUS` (at
/// the same time as the one registered just before it). Each group of
/// hooks gets an equal share of the time left when it starts, at least the
/// hooks' budget (`hook_budget_seconds`) in total. `GS_ERR_INVALID_ARGUMENT`
/// for an unknown flag.
///
/// # Safety
/// As `gs_register_shutdown_hook`.
#[no_mangle]
pub unsafe extern "C" fn gs_register_shutdown_hook_ex(
    name: *const c_char,
    hook: gs_shutdown_hook,
    user_data: *mut c_void,
    flags: u32,
    id: *mut u64,
) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        let Some(hook) = hook else {
            return status::invalid_argument("hook is NULL");
        };
        if name.is_null() {
            return status::invalid_argument("name is NULL");
        }
        let order = match flags {
            0 => HookOrder::AfterPrevious,
            GS_HOOK_WITH_PREVIOUS => HookOrder::WithPrevious,
            _ => return status::invalid_argument("flags has an unknown bit"),
        };
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let Ok(name) = unsafe { CStr::from_ptr(name) }.to_str() else {
            return status::invalid_argument("name is not UTF-8");
        };
        let user_data = UserData(user_data);
        let result = runtime().register_shutdown_hook_with(name, order, move |left| {
            let user_data = user_data;
            // SAFETY: the caller registered a function valid for these
            // arguments.
            unsafe { hook(config_to_secs(left), user_data.0) != 0 }
        });
        // SAFETY: `id` is NULL or writable per the contract.
        unsafe { registered(result, id) }
    })
}

/// Removes a shutdown hook that has not run yet. `GS_ERR_NOT_FOUND` for an
/// unknown id or a hook that already ran.
#[no_mangle]
pub extern "C" fn gs_remove_shutdown_hook(id: u64) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        if runtime().remove_shutdown_hook(RegistrationId(id)) {
            gs_status::GS_OK
        } else {
            not_found(id)
        }
    })
}
