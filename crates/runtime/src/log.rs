//! One line to stderr, never a panic: `eprintln!` panics when stderr is
//! closed, and the runtime's threads must survive a host that closed it.

use std::io::Write;

/// Writes `last-call: <message>` and a newline to stderr, ignoring errors.
pub fn write_line(message: std::fmt::Arguments<'_>) {
    let mut line = String::with_capacity(128);
    let _ = std::fmt::Write::write_fmt(&mut line, format_args!("last-call: {message}\n"));
    // One write call, so that lines from several threads do not interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `warn!("...", args)`: see [`write_line`]. Exported for the layers
/// above (`use last_call_runtime::log::warn`).
#[doc(hidden)]
#[macro_export]
macro_rules! __last_call_warn {
    ($($arg:tt)*) => { $crate::log::write_line(format_args!($($arg)*)) };
}
pub use __last_call_warn as warn;
