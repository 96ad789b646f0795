//! Signal handling and the start of the shutdown sequence through the C
//! ABI.

use super::config::{config_from_c, gs_config};
use super::{gs_status, runtime, status_boundary};

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
///
/// Not async-signal-safe: it may lock, allocate and start the runtime's
/// threads. A host with its own signal handling calls it from a thread
/// (its signal-handling thread, or after its handler woke one), never from
/// inside a signal handler; `gs_install_signal_handlers` is the handler
/// that is safe there.
#[no_mangle]
pub extern "C" fn gs_begin_shutdown() -> gs_status {
    status_boundary(|| runtime().begin_shutdown().map(|_| ()))
}
