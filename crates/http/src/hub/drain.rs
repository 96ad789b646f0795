//! The shutdown sequence applied to the hub's own connections, from a phase
//! listener. Each stream follows the phase itself (it waits on its writer
//! thread's `phase_changed` beside its channel), so that nothing here walks
//! the subscribers:
//!
//! * Draining: new subscriptions are still accepted. Without a healthy
//!   shared store nothing changes; with one, every stream is handed off:
//!   it ends as a resumable one (below) at its own moment of a window that
//!   opens when the drain delay is over (`Runtime::handoff_delay`), and
//!   another pod serves its channel from the store, while its publisher
//!   here goes on until its own end;
//! * ClosingStreams: each resumable stream draws its own moment of the
//!   nudge window ([`Runtime::reconnect_delay`]) and, when it comes, ends
//!   with `retry:`, its last `id:` and `event: reconnect` (a stream opened
//!   from now on does the same as it subscribes). Every pod-bound channel
//!   this pod publishes runs on until the streams' last moment, the end of
//!   that window, and is then closed with its final event (its publisher
//!   may still finish first);
//! * Stopping: the listener stops accepting and what is left ends now.
//!
//! [`Runtime::reconnect_delay`]: crate::Runtime

use super::Hub;
use crate::phase::{Phase, PhaseChange};
use crate::reconnect_spread::StreamKind;
use std::sync::Arc;
use std::time::Duration;

impl Hub {
    pub(super) fn on_phase(self: &Arc<Hub>, change: PhaseChange) {
        match change.to {
            Phase::ClosingStreams => self.close_pod_bound_at_the_last_moment(),
            Phase::Stopping | Phase::Stopped => {
                for accepting in crate::runtime::lock(&self.accepting).drain(..) {
                    accepting.abort();
                }
                self.close_all(StreamKind::PodBound);
            }
            Phase::Serving | Phase::Draining => {}
        }
        self.writers.phase_changed();
    }

    /// Closes every pod-bound channel, with its final event, at the streams'
    /// last moment (at once if it has passed).
    fn close_pod_bound_at_the_last_moment(self: &Arc<Hub>) {
        let delay = self
            .runtime
            .reconnect_delay(StreamKind::PodBound)
            .unwrap_or(Duration::ZERO);
        if delay.is_zero() {
            self.close_all(StreamKind::PodBound);
            return;
        }
        let hub = Arc::clone(self);
        self.handle.spawn(async move {
            tokio::time::sleep(delay).await;
            hub.close_all(StreamKind::PodBound);
        });
    }
}
