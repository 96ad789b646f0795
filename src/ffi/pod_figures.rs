//! One pod's figures across the worker processes of a pre-fork host
//! (gunicorn `-w N`): shared by the master, joined by each worker, summed
//! by every `/metrics` of the pod.

use super::{gs_status, status_boundary};
use last_call_runtime::pod_figures;

/// In the process that forks the workers (gunicorn's master), before the
/// first fork: maps a region of `slots` slots (1 to 4096) shared with every
/// child forked from now on. From then on `/metrics` in this process and
/// in its children reports the pod: `gs_active_streams`,
/// `gs_active_work`, `gs_streams_started_total` and
/// `gs_streams_finished_total` are the sums over the workers' slots (this
/// process's own counts, such as a master's holds, are left out), and
/// `gs_pod_workers` says how many workers hold a slot. Each worker's own
/// shutdown sequence still waits for its own streams only.
/// `GS_ERR_ALREADY_INSTALLED` the second time; `GS_ERR_INVALID_ARGUMENT`
/// for 0 or more than 4096.
#[no_mangle]
pub extern "C" fn gs_pod_figures_share(slots: u32) -> gs_status {
    status_boundary(|| pod_figures::share(slots))
}

/// In a worker forked after `gs_pod_figures_share`, before it serves:
/// its streams and work are added to slot `slot` (which the master chose
/// for it, one live worker per slot). `GS_ERR_INVALID_ARGUMENT` with no
/// region shared, or for a slot beyond it.
#[no_mangle]
pub extern "C" fn gs_pod_figures_join(slot: u32) -> gs_status {
    status_boundary(|| pod_figures::join(slot))
}

/// In the process that shared the region, once the worker that held
/// `slot` has exited: the streams it still counted ended with it (they
/// move to the finished total, so totals never go down), and the slot is
/// free for another worker. `GS_ERR_INVALID_ARGUMENT` for a slot beyond
/// the region.
#[no_mangle]
pub extern "C" fn gs_pod_figures_release(slot: u32) -> gs_status {
    status_boundary(|| pod_figures::release(slot))
}
