//! The host's exit, through the C ABI: closing the gate to its code.

use super::{gs_status, runtime, status_boundary};
use crate::error::timeout_from_secs;

/// Tells the runtime that the host is exiting: from now on it calls none
/// of the host's code (phase callbacks, shutdown hooks not started yet,
/// readiness checks, which then fail), for the rest of the process. Then
/// waits at most `timeout_seconds` (INFINITY: no limit) for the calls
/// already in flight to return (a call the calling thread is itself inside
/// is not waited for). `GS_OK` when none is left; `GS_TIMED_OUT` when one
/// still runs, such as a shutdown hook left running past its share;
/// `GS_ERR_INVALID_ARGUMENT` for a NaN or negative timeout.
///
/// For hosts whose code cannot be entered once they exit, such as an
/// interpreter that finalizes: call it before finalizing (the Python
/// package does, from `atexit`). On `GS_TIMED_OUT` a runtime thread is
/// still inside the host: end the process without finalizing (`_exit`),
/// since an interpreter may end that thread under the runtime's feet
/// (CPython before 3.14 calls `pthread_exit`, and the process aborts).
/// A forked child starts with the gate open.
#[no_mangle]
pub extern "C" fn gs_host_exiting(timeout_seconds: f64) -> gs_status {
    status_boundary(|| runtime().host_exiting(timeout_from_secs(timeout_seconds)?))
}
