//! The exit watchdog through the C ABI.

use super::{gs_status, runtime, status_boundary};

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
