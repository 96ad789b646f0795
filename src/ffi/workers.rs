//! Worker processes that share one pod's ports (gunicorn `-w N`, uvicorn
//! `--workers N`, a pre-fork C host).

use super::{gs_status, runtime, status_boundary};

/// Says that this process is one of `workers` worker processes serving one
/// pod: call it in each worker before its listeners start (1, the default:
/// a process of its own). With more than one, the probe listener and the
/// hub bind their port with `SO_REUSEPORT` (the kernel spreads connections
/// over the workers), port 0 is refused, and the hub refuses the
/// in-process store (each worker would hold its own channels): every
/// worker's hub follows every channel through the shared store, so a
/// subscriber on one worker gets the events another publishes.
/// `GS_ERR_INVALID_ARGUMENT` for 0.
#[no_mangle]
pub extern "C" fn gs_set_worker_processes(workers: u32) -> gs_status {
    status_boundary(|| runtime().set_worker_processes(workers))
}
