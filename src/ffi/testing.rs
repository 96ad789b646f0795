//! The testing reset through the C ABI (for tests only).

use super::{gs_status, runtime, status_boundary};

/// **For tests only.** Returns the process-wide runtime to a fresh state:
/// Serving, no active streams, no sequence running, every phase callback
/// and shutdown hook removed, reports and configuration cleared, the
/// watchdog disarmed. `GS_ERR_ALREADY_INSTALLED` (and nothing changes)
/// while signal handlers are installed in this process: it can never undo
/// a real shutdown. `GS_ERR_REENTRANT` from a callback or hook. The
/// settings set with `gs_set_setting` are forgotten too.
#[no_mangle]
pub extern "C" fn gs_testing_reset() -> gs_status {
    status_boundary(|| {
        runtime().reset_for_testing()?;
        last_call_runtime::settings::clear();
        Ok(())
    })
}
