//! One bridge per runtime from its phase listeners (called on the
//! runtime's delivery thread) into tokio: a `watch` of the phase, made on
//! first use and kept in the runtime ([`last_call_runtime::Runtime::extension`]).
//! Waiters read the phase from the runtime itself and use the watch only to
//! be woken, so a change delivered late or out of step never misleads them.

use last_call_core::Phase;
use last_call_runtime::log::warn;
use last_call_runtime::Runtime;
use std::sync::Arc;
use tokio::sync::watch;

pub(crate) struct PhaseBridge {
    /// Shared with the phase listener; dropped by both (the testing reset
    /// removes the listener and forgets the bridge), the receivers then see
    /// the channel closed and come back for the new one.
    pub(crate) sender: Arc<watch::Sender<Phase>>,
    /// `false` if the listener could not be registered (the runtime could
    /// not start its delivery thread): waiters then look at the phase on a
    /// timer.
    pub(crate) registered: bool,
}

/// The runtime's bridge, registered on first use.
pub(crate) fn bridge(runtime: &Runtime) -> Arc<PhaseBridge> {
    runtime.extension(|| {
        let sender = Arc::new(watch::Sender::new(runtime.phase()));
        let told = Arc::clone(&sender);
        let registered = runtime
            .on_phase(move |change| {
                told.send_replace(change.to);
            })
            .map_err(|error| warn!("the phase cannot be watched ({error}); futures poll it"))
            .is_ok();
        // A change between reading the phase above and the registration is
        // not delivered to this listener: the watch starts from the phase
        // now.
        sender.send_replace(runtime.phase());
        PhaseBridge { sender, registered }
    })
}
