//! One stream counted by a body that owns its runtime handle: the
//! runtime's `StreamGuard` borrows the runtime, and a response body must
//! be `'static`. The body draws its moment to end itself (`sse.rs`).

use last_call_runtime::{Error, Runtime};

/// Counts one stream until dropped.
pub(crate) struct StreamCount {
    runtime: Runtime,
}

impl StreamCount {
    pub(crate) fn begin(runtime: &Runtime) -> Result<StreamCount, Error> {
        runtime.increment_active_streams()?;
        Ok(StreamCount {
            runtime: runtime.clone(),
        })
    }
}

impl Drop for StreamCount {
    fn drop(&mut self) {
        // Fails only after the testing reset zeroed the count: nothing to do.
        let _ = self.runtime.decrement_active_streams();
    }
}
