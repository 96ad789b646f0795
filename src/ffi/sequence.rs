//! The shutdown sequence through the C ABI: configuration, signal
//! handlers, phase callbacks and shutdown hooks.

use super::streams::gs_phase;
use super::{boundary, gs_status, registered, runtime, status, status_boundary, UserData};
use crate::config::{self, duration_from_secs, exit_status, Config, SecondSignal};
use crate::hooks::HookOrder;
use crate::runtime::RegistrationId;
use crate::seconds::config_to_secs;
use crate::Error;
use std::ffi::{c_char, c_void, CStr};

/// What a second SIGTERM/SIGINT does once the sequence has started.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum gs_second_signal {
    /// A second SIGINT exits at once (status 130); a second SIGTERM is
    /// ignored. The default.
    GS_SECOND_SIGNAL_SIGINT_EXITS = 0,
    /// Both are ignored.
    GS_SECOND_SIGNAL_IGNORE = 1,
    /// Both exit at once, with status 128 + the signal number.
    GS_SECOND_SIGNAL_EXIT = 2,
}

/// "Not set": the drain delay, the close notice and the hooks' budget take
/// their default, scaled to the shutdown timeout (see `gs_config`).
pub const GS_DEFAULT_SECONDS: f64 = -1.0;

/// Shutdown timings, all in seconds (NaN or negative: invalid; INFINITY:
/// no limit, the rule of every duration in this API). Fill one with
/// `gs_config_from_env` (defaults overridden by the `GS_*` environment
/// variables), change what you need, and pass it to
/// `gs_install_signal_handlers` or `gs_configure`.
///
/// The drain delay, the close notice and the hooks' budget also accept
/// `GS_DEFAULT_SECONDS`: their default, scaled to the timeout T (drain
/// delay and close notice 5 s, at most T/5; hooks' budget 3 s, at most T/4;
/// never more than what the values set leave). `gs_config_from_env` leaves
/// each one that no variable sets at `GS_DEFAULT_SECONDS`, so that changing
/// the timeout afterwards rescales them.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct gs_config {
    /// Keep serving this long after the signal (GS_DRAIN_DELAY_SECONDS;
    /// `GS_DEFAULT_SECONDS`: 5, at most T/5).
    pub drain_delay_seconds: f64,
    /// From the signal to Stopped, at most (GS_SHUTDOWN_TIMEOUT_SECONDS, 25).
    pub shutdown_timeout_seconds: f64,
    /// Streams still open this long before the hooks' budget begins are
    /// asked to finish (GS_CLOSE_NOTICE_SECONDS; `GS_DEFAULT_SECONDS`: 5, at
    /// most T/5). With the hooks' budget, at most the shutdown timeout.
    pub close_notice_seconds: f64,
    /// End the process if it is still running this long after Stopped, or
    /// after the deadline if Stopped never came (GS_EXIT_WATCHDOG_SECONDS,
    /// 3); 0 disables.
    pub exit_watchdog_seconds: f64,
    /// A `gs_second_signal` value (GS_SECOND_SIGNAL: `ignore` or `exit`).
    pub second_signal: u32,
    /// Whether SIGINT starts the sequence as SIGTERM does (default true).
    pub handle_sigint: bool,
    /// The last part of the shutdown timeout, kept for the shutdown hooks
    /// when one is registered: the sequence stops waiting for streams this
    /// long before the deadline (GS_HOOK_BUDGET_SECONDS;
    /// `GS_DEFAULT_SECONDS`: 3, at most T/4).
    pub hook_budget_seconds: f64,
    /// The exit status the watchdog ends the process with, 1 to 255
    /// (GS_EXIT_WATCHDOG_STATUS, 70).
    pub exit_watchdog_status: i32,
}

impl From<&Config> for gs_config {
    fn from(config: &Config) -> Self {
        gs_config {
            drain_delay_seconds: or_default(config.drain_delay),
            shutdown_timeout_seconds: config_to_secs(config.shutdown_timeout),
            close_notice_seconds: or_default(config.close_notice),
            exit_watchdog_seconds: config.exit_watchdog.map_or(0.0, config_to_secs),
            second_signal: config.second_signal as u32,
            handle_sigint: config.handle_sigint,
            hook_budget_seconds: or_default(config.hook_budget),
            exit_watchdog_status: i32::from(config.exit_watchdog_status),
        }
    }
}

/// A duration that may be left to its default: `GS_DEFAULT_SECONDS` for
/// `None`.
fn or_default(value: Option<std::time::Duration>) -> f64 {
    value.map_or(GS_DEFAULT_SECONDS, config_to_secs)
}

/// `GS_DEFAULT_SECONDS` exactly is "not set"; every other value follows the
/// one seconds rule (any other negative value is still refused).
fn optional(
    variable: &'static str,
    seconds: f64,
) -> Result<Option<std::time::Duration>, config::ConfigError> {
    if seconds == GS_DEFAULT_SECONDS {
        return Ok(None);
    }
    duration_from_secs(variable, seconds).map(Some)
}

impl TryFrom<&gs_config> for Config {
    type Error = Error;

    fn try_from(c: &gs_config) -> Result<Config, Error> {
        let watchdog = duration_from_secs(config::env::EXIT_WATCHDOG, c.exit_watchdog_seconds)?;
        let config = Config {
            drain_delay: optional(config::env::DRAIN_DELAY, c.drain_delay_seconds)?,
            shutdown_timeout: duration_from_secs(
                config::env::SHUTDOWN_TIMEOUT,
                c.shutdown_timeout_seconds,
            )?,
            close_notice: optional(config::env::CLOSE_NOTICE, c.close_notice_seconds)?,
            hook_budget: optional(config::env::HOOK_BUDGET, c.hook_budget_seconds)?,
            exit_watchdog: (!watchdog.is_zero()).then_some(watchdog),
            exit_watchdog_status: exit_status(
                config::env::EXIT_WATCHDOG_STATUS,
                i64::from(c.exit_watchdog_status),
            )?,
            second_signal: match c.second_signal {
                0 => SecondSignal::SigintExits,
                1 => SecondSignal::Ignore,
                2 => SecondSignal::Exit,
                other => {
                    return Err(Error::Config(config::ConfigError {
                        variable: config::env::SECOND_SIGNAL,
                        value: other.to_string(),
                        reason: "not a gs_second_signal value".into(),
                    }))
                }
            },
            handle_sigint: c.handle_sigint,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Fills `*config` with the defaults, overridden by every `GS_*`
/// environment variable that is set. `GS_ERR_INVALID_CONFIG` when one is
/// malformed; `gs_last_error_message` names it.
///
/// # Safety
/// `config` must be NULL (an error) or valid for one write.
#[no_mangle]
pub unsafe extern "C" fn gs_config_from_env(config: *mut gs_config) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        if config.is_null() {
            return status::invalid_argument("config is NULL");
        }
        match Config::from_env() {
            Ok(from_env) => {
                // SAFETY: non-NULL, and the caller guarantees it is writable.
                unsafe { config.write(gs_config::from(&from_env)) };
                gs_status::GS_OK
            }
            Err(error) => status::report(&error.into()),
        }
    })
}

/// Replaces each `GS_DEFAULT_SECONDS` in `*config` with the duration it
/// stands for (scaled to the config's timeout), for a host that wants to
/// show or compare the timings. `GS_ERR_INVALID_CONFIG` (and `*config`
/// unchanged) when the config is invalid; `GS_ERR_INVALID_ARGUMENT` for
/// NULL.
///
/// # Safety
/// `config` must be NULL (an error) or point to a valid, writable
/// `gs_config`.
#[no_mangle]
pub unsafe extern "C" fn gs_config_resolve(config: *mut gs_config) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        if config.is_null() {
            return status::invalid_argument("config is NULL");
        }
        // SAFETY: non-NULL, and the caller guarantees it is valid.
        let given = unsafe { &mut *config };
        match Config::try_from(&*given) {
            Ok(parsed) => {
                let timings = parsed.timings();
                given.drain_delay_seconds = config_to_secs(timings.drain_delay);
                given.close_notice_seconds = config_to_secs(timings.close_notice);
                given.hook_budget_seconds = config_to_secs(timings.hook_budget);
                gs_status::GS_OK
            }
            Err(error) => status::report(&error),
        }
    })
}

fn config_from_c(config: *const gs_config) -> Result<Config, Error> {
    if config.is_null() {
        Ok(Config::from_env()?)
    } else {
        // SAFETY: non-NULL, and the caller guarantees it is valid.
        Config::try_from(unsafe { &*config })
    }
}

/// Validates `*config` (NULL: the `GS_*` environment, as
/// `gs_config_from_env`) and makes it the configuration of the shutdown
/// sequence, without installing signal handlers: for hosts that start the
/// sequence themselves (`gs_begin_shutdown` from their own signal
/// handling). `GS_ERR_INVALID_CONFIG` names the bad value.
///
/// # Safety
/// `config` must be NULL or point to a valid `gs_config`.
#[no_mangle]
pub unsafe extern "C" fn gs_configure(config: *const gs_config) -> gs_status {
    status_boundary(|| runtime().configure(config_from_c(config)?))
}

/// Arms the exit watchdog with the configuration in force (as
/// `gs_install_signal_handlers` does): once the sequence has started, the
/// process is ended with `exit_watchdog_status`, after one line on stderr
/// saying what was still running, if it is still running
/// `exit_watchdog_seconds` after Stopped, or after the deadline if Stopped
/// never came. The watchdog runs on a thread of its own that no callback or
/// hook can delay. A configuration with the watchdog at 0 disarms it.
#[no_mangle]
pub extern "C" fn gs_arm_exit_watchdog() -> gs_status {
    status_boundary(|| runtime().arm_exit_watchdog())
}

/// **For tests only.** Returns the process-wide runtime to a fresh state:
/// Serving, no active streams, no sequence running, every phase callback
/// and shutdown hook removed, reports and configuration cleared, the
/// watchdog disarmed. `GS_ERR_ALREADY_INSTALLED` (and nothing changes)
/// while signal handlers are installed in this process: it can never undo
/// a real shutdown. `GS_ERR_REENTRANT` from a callback or hook.
#[no_mangle]
pub extern "C" fn gs_testing_reset() -> gs_status {
    status_boundary(|| runtime().reset_for_testing())
}

/// Installs SIGTERM (and SIGINT, per `handle_sigint`) handling that starts
/// the shutdown sequence, configured by `*config` (NULL: defaults from the
/// environment, as `gs_config_from_env`). Starts the runtime's threads and
/// arms the exit watchdog.
///
/// The handler does only async-signal-safe work (atomics, clock_gettime, a
/// futex wake); handlers installed before it are chained and still run.
/// Succeeds once per process: again in the same process gives
/// `GS_ERR_ALREADY_INSTALLED` and changes nothing. A `fork()`ed child
/// starts with no handling of its own and may install it.
///
/// # Safety
/// `config` must be NULL or point to a valid `gs_config`.
#[no_mangle]
pub unsafe extern "C" fn gs_install_signal_handlers(config: *const gs_config) -> gs_status {
    status_boundary(|| crate::install_signal_handlers(config_from_c(config)?))
}

/// Starts the shutdown sequence as SIGTERM would (Draining at once, the
/// rest on the runtime's thread). Calling it again never runs a second
/// sequence (`GS_OK`, a no-op). It is not a signal: the first signal
/// received afterwards is a first signal (a no-op for the sequence), and
/// only the second one received is subject to the second-signal policy.
/// Uses the configured configuration, else the environment's.
#[no_mangle]
pub extern "C" fn gs_begin_shutdown() -> gs_status {
    status_boundary(|| runtime().begin_shutdown().map(|_| ()))
}

/// Called at each phase change with the phase left, the phase entered, and
/// the `user_data` given at registration. Runs on the runtime's delivery
/// thread, one call at a time, in the order of the changes, with no lock
/// held; never in a signal handler. The shutdown sequence and the exit
/// watchdog do not wait for it: a callback that blocks delays only the
/// callbacks after it. Inside it, `gs_wait_for_streams` and
/// `gs_wait_for_phase` return `GS_ERR_REENTRANT` at once.
pub type gs_phase_callback =
    Option<unsafe extern "C" fn(from: gs_phase, to: gs_phase, user_data: *mut c_void)>;

/// Called once in Stopping, on a thread of its own, with the seconds it is
/// given (its group's share of the time left) and the registration's
/// `user_data`; returns whether it finished its work. Hooks run in
/// registration order, a group at a time (see
/// `gs_register_shutdown_hook_ex`); one still running at the end of its
/// share is left running, reported as overrunning, and the next group
/// starts with its own share. Inside it, `gs_wait_for_streams` and
/// `gs_wait_for_phase` return `GS_ERR_REENTRANT` at once.
pub type gs_shutdown_hook =
    Option<unsafe extern "C" fn(remaining_seconds: f64, user_data: *mut c_void) -> bool>;

/// Registers `callback` for every phase change from now on, and writes its
/// id to `*id` (if not NULL) for `gs_remove_phase_callback`.
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

pub(super) fn not_found(id: u64) -> gs_status {
    status::set_last_error(format!("no registration has id {id}"));
    gs_status::GS_ERR_NOT_FOUND
}

/// `flags` for `gs_register_shutdown_hook_ex`: run at the same time as the
/// hook registered just before it (in its group, with the group's share).
pub const GS_HOOK_WITH_PREVIOUS: u32 = 1;

/// Registers a shutdown hook named `name` (copied; used in logs and
/// reports), to run in Stopping after the hooks registered before it, and
/// writes its id to `*id` (if not NULL). `GS_ERR_INVALID_ARGUMENT` if `name`
/// or `hook` is NULL or `name` is not UTF-8. The same as
/// `gs_register_shutdown_hook_ex` with `flags` 0.
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
            unsafe { hook(config_to_secs(left), user_data.0) }
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
