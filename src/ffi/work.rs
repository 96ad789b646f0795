//! Work the shutdown waits for beside the streams (a task that publishes
//! to a hub channel), counted apart from them: `gs_active_streams` stays
//! the number of open streams.

use super::{boundary, gs_status, runtime, status_boundary};

/// Counts one more piece of work: the shutdown sequence waits for it as
/// for a stream, until the hooks' budget begins. Lock-free; safe from any
/// thread. `GS_ERR_TOO_MANY_STREAMS` if 2^24 - 1 are already counted.
#[no_mangle]
pub extern "C" fn gs_work_begin() -> gs_status {
    status_boundary(|| runtime().increment_active_work())
}

/// Counts one piece of work as done. Without a matching begin:
/// `GS_ERR_NO_ACTIVE_STREAM`, and the count stays at 0.
#[no_mangle]
pub extern "C" fn gs_work_end() -> gs_status {
    status_boundary(|| runtime().end_work())
}

/// Work counted now.
#[no_mangle]
pub extern "C" fn gs_active_work() -> u64 {
    boundary(0, || u64::from(runtime().active_work()))
}
