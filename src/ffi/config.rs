//! The shutdown sequence's configuration through the C ABI: `gs_config`,
//! read from the environment, resolved, and set.

use super::{boundary, gs_status, runtime, status, status_boundary};
use crate::config::{self, duration_from_secs, exit_status, Config, SecondSignal};
use crate::seconds::config_to_secs;
use crate::Error;

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

/// The watchdog's default exit status: `EX_SOFTWARE` from sysexits.h
/// ("internal software error"), distinct from 0 and from 128 + a signal.
// The runtime crate's constant, spelled out here for cbindgen (which reads
// this crate's items only); `the_c_constants_are_the_runtimes`
// checks that they agree.
pub const GS_DEFAULT_EXIT_WATCHDOG_STATUS: u8 = 70;

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
///
/// The struct can grow: `size` comes first, and the caller sets it to
/// `sizeof(gs_config)` as compiled (`gs_config config = { .size = sizeof
/// config };`) before passing it to any function. Fields added in later
/// versions go after the ones here, and are read or written only when
/// `size` covers them; a `size` smaller than this version's first fields
/// is `GS_ERR_INVALID_ARGUMENT`. No field is a C `bool` (a byte other than
/// 0 or 1 would be undefined behaviour on the library's side): flags are
/// `uint8_t`, non-zero meaning true.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct gs_config {
    /// `sizeof(gs_config)` in the caller's build: set it before any call.
    pub size: usize,
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
    /// Whether SIGINT starts the sequence as SIGTERM does: non-zero (the
    /// default, 1) or 0.
    pub handle_sigint: u8,
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
            size: std::mem::size_of::<gs_config>(),
            drain_delay_seconds: or_default(config.drain_delay),
            shutdown_timeout_seconds: config_to_secs(config.shutdown_timeout),
            close_notice_seconds: or_default(config.close_notice),
            exit_watchdog_seconds: config.exit_watchdog.map_or(0.0, config_to_secs),
            second_signal: config.second_signal as u32,
            handle_sigint: u8::from(config.handle_sigint),
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
            handle_sigint: c.handle_sigint != 0,
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
        // SAFETY: non-NULL; its first field is the caller's to set.
        let size = unsafe { config.cast::<usize>().read() };
        if let Err(code) = check_size(size) {
            return code;
        }
        match Config::from_env() {
            Ok(from_env) => {
                // This version's fields only (the caller's struct is at
                // least as large, `check_size`), its `size` kept.
                let filled = gs_config {
                    size,
                    ..gs_config::from(&from_env)
                };
                // SAFETY: non-NULL, and the caller guarantees `size` bytes
                // are writable, which hold this version's struct.
                unsafe { config.write(filled) };
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
        // SAFETY: non-NULL; its first field is the caller's to set.
        if let Err(code) = check_size(unsafe { config.cast::<usize>().read() }) {
            return code;
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

/// The size every caller's `gs_config` has at least: this version's.
const SIZE_V1: usize = std::mem::size_of::<gs_config>();

/// `GS_ERR_INVALID_ARGUMENT` (saying why) for a `size` field too small to
/// hold this version's fields: unset, most likely.
fn check_size(size: usize) -> Result<(), gs_status> {
    if size < SIZE_V1 {
        return Err(status::invalid_argument(&format!(
            "gs_config.size is {size}: set it to sizeof(gs_config) ({SIZE_V1}) before the call"
        )));
    }
    Ok(())
}

pub(super) fn config_from_c(config: *const gs_config) -> Result<Config, Error> {
    if config.is_null() {
        Ok(Config::from_env()?)
    } else {
        // SAFETY: non-NULL; its first field is the caller's to set.
        let size = unsafe { config.cast::<usize>().read() };
        if check_size(size).is_err() {
            return Err(Error::InvalidArgument(
                "gs_config.size is too small: set it to sizeof(gs_config) before the call",
            ));
        }
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

#[cfg(test)]
#[test]
fn the_c_constants_are_the_runtimes() {
    assert_eq!(
        GS_DEFAULT_EXIT_WATCHDOG_STATUS,
        crate::DEFAULT_EXIT_WATCHDOG_STATUS
    );
}
