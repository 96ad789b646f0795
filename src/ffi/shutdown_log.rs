//! The shutdown log through the C ABI: an opt-in for C hosts (the Python
//! package and the Rust example server turn it on themselves).

use super::{boundary, gs_status};

/// Turns the shutdown log on (`on` non-zero) or off (0, the default for a
/// C host): one line on stderr when the shutdown sequence begins (the
/// streams open, the drain delay, the deadline), one when ClosingStreams and
/// Stopping begin, and one just before Stopped with what became of the
/// streams (ended on their own, nudged to reconnect, given their final
/// event, left open when the deadline came) and of each hook. Written
/// without blocking (a line stderr cannot take at once is dropped and
/// counted in `gs_log_lines_dropped_total`). `GS_SHUTDOWN_LOG=1` or `0` in
/// the environment, read when the runtime is configured
/// (`gs_install_signal_handlers`, `gs_configure`), wins over this.
#[no_mangle]
pub extern "C" fn gs_set_shutdown_log(on: u8) -> gs_status {
    boundary(gs_status::GS_ERR_PANIC, || {
        super::runtime().set_shutdown_log(on != 0);
        gs_status::GS_OK
    })
}
