//! This pod's channels by name, bounded in number, and how their waiting
//! subscribers are woken: a publish from the host's thread hands the
//! channel to the hub's thread once (one cross-thread wake per burst, not
//! one per subscriber), and the hub's thread wakes every subscriber waiting
//! on it, where a wake costs no system call.

use super::channel::{Channel, Limits};
use crate::reconnect_spread::StreamKind;
use crate::runtime::lock;
use last_call_store::keys::bucket;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

/// `max_channels` are held and none is idle.
#[derive(Debug)]
pub(crate) struct Full;

pub(crate) struct Channels {
    map: Mutex<HashMap<Box<str>, Arc<Channel>>>,
    pub(crate) limits: Limits,
    max: usize,
    wakes: mpsc::UnboundedSender<Arc<Channel>>,
}

impl Channels {
    /// The channels, and the receiving end of their wakes, for
    /// [`wake_loop`] on the hub's thread.
    pub(crate) fn new(
        limits: Limits,
        max: usize,
    ) -> (Channels, mpsc::UnboundedReceiver<Arc<Channel>>) {
        let (wakes, receiver) = mpsc::unbounded_channel();
        (
            Channels {
                map: Mutex::new(HashMap::new()),
                limits,
                max,
                wakes,
            },
            receiver,
        )
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Channel>> {
        lock(&self.map).get(name).cloned()
    }

    /// The channel named `name`, created if there is room (idle ones are
    /// forgotten first when full).
    pub(crate) fn get_or_create(&self, name: &str, kind: StreamKind) -> Result<Arc<Channel>, Full> {
        let mut map = lock(&self.map);
        if let Some(channel) = map.get(name) {
            return Ok(Arc::clone(channel));
        }
        if map.len() >= self.max {
            let now = Instant::now();
            map.retain(|_, channel| !channel.is_idle(&self.limits, now));
        }
        if map.len() >= self.max {
            return Err(Full);
        }
        let channel = Arc::new(Channel::new(name, kind));
        map.insert(name.into(), Arc::clone(&channel));
        Ok(channel)
    }

    /// Forgets the channels idle for the idle time; how many.
    pub(crate) fn evict_idle(&self) -> usize {
        let now = Instant::now();
        let mut map = lock(&self.map);
        let before = map.len();
        map.retain(|_, channel| !channel.is_idle(&self.limits, now));
        before - map.len()
    }

    pub(crate) fn count(&self) -> usize {
        lock(&self.map).len()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Channel>> {
        lock(&self.map).values().cloned().collect()
    }

    /// The channels of a shared-store bucket.
    pub(crate) fn in_bucket(&self, wanted: u32) -> Vec<Arc<Channel>> {
        lock(&self.map)
            .values()
            .filter(|channel| bucket(&channel.name) == wanted)
            .cloned()
            .collect()
    }

    /// Wakes the subscribers waiting on `channel`, from any thread: the
    /// channel goes to the hub's thread unless it is on its way already.
    pub(crate) fn wake(&self, channel: &Arc<Channel>) {
        // AcqRel, paired with the wake loop's swap: when this swap finds
        // the flag set, the loop's clearing swap comes later in the flag's
        // order and synchronizes with this one, so the push made before it
        // (under the channel's lock) is seen by the subscribers it wakes.
        if !channel.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.wakes.send(Arc::clone(channel));
        }
    }
}

/// On the hub's thread: wakes the subscribers of each channel handed over.
pub(crate) async fn wake_loop(mut wakes: mpsc::UnboundedReceiver<Arc<Channel>>) {
    while let Some(channel) = wakes.recv().await {
        // Cleared before waking: a publish after this point hands the
        // channel over again. A swap (not a store), so that it acquires
        // what the publishes that found the flag set had pushed.
        channel.wake_pending.swap(false, Ordering::AcqRel);
        channel.notify.notify_waiters();
    }
}
