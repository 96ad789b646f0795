//! The shutdown sequence applied to the hub's own connections, from a phase
//! listener:
//!
//! * Draining: nothing changes; new subscriptions are still accepted (a
//!   resumable one is nudged like the rest when the window comes);
//! * ClosingStreams: every resumable connection is ended at its own moment
//!   of the nudge window ([`Runtime::reconnect_delay`]) with `retry:`, its
//!   last `id:` and `event: reconnect` (a connection opened from now on is
//!   handled the same way as it subscribes); every pod-bound channel runs on
//!   until the streams' last moment, the end of that window, and is then
//!   closed with its final event (its publisher may still finish first);
//! * Stopping: the listener stops accepting and what is left ends now.

use super::store::Ending;
use super::Hub;
use crate::phase::{Phase, PhaseChange};
use crate::reconnect_spread::StreamKind;
use std::sync::Arc;
use std::time::Duration;

impl Hub {
    pub(super) fn on_phase(self: &Arc<Hub>, change: PhaseChange) {
        match change.to {
            Phase::ClosingStreams => {
                self.close_pod_bound_at_the_last_moment();
                for (channel, id) in self.store.subscribers_of(StreamKind::Resumable) {
                    self.end_resumable_at_its_moment(channel, id);
                }
            }
            Phase::Stopping | Phase::Stopped => {
                if let Some(accepting) = crate::runtime::lock(&self.accepting).take() {
                    accepting.abort();
                }
                self.store.close_all(StreamKind::PodBound);
                for (channel, id) in self.store.subscribers_of(StreamKind::Resumable) {
                    self.store.end_subscriber(&channel, id, Ending::Reconnect);
                }
            }
            Phase::Serving | Phase::Draining => {}
        }
    }

    /// Closes every pod-bound channel, with its final event, at the streams'
    /// last moment (at once if it has passed).
    fn close_pod_bound_at_the_last_moment(self: &Arc<Hub>) {
        let delay = self
            .runtime
            .reconnect_delay(StreamKind::PodBound)
            .unwrap_or(Duration::ZERO);
        if delay.is_zero() {
            self.store.close_all(StreamKind::PodBound);
            return;
        }
        let hub = Arc::clone(self);
        self.handle.spawn(async move {
            tokio::time::sleep(delay).await;
            hub.store.close_all(StreamKind::PodBound);
        });
    }

    /// Called for a connection that subscribes once ClosingStreams has
    /// begun (and by the phase listener for the ones open then).
    pub(super) fn end_resumable_at_its_moment(self: &Arc<Hub>, channel: String, id: u64) {
        let delay = self
            .runtime
            .reconnect_delay(StreamKind::Resumable)
            .unwrap_or(Duration::ZERO);
        if delay.is_zero() {
            self.store.end_subscriber(&channel, id, Ending::Reconnect);
            return;
        }
        let hub = Arc::clone(self);
        self.handle.spawn(async move {
            tokio::time::sleep(delay).await;
            hub.store.end_subscriber(&channel, id, Ending::Reconnect);
        });
    }
}
