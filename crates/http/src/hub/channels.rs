//! This pod's channels by name, bounded in number, and how their waiting
//! subscribers are woken. A publish from the host's thread hands the
//! channel over once (one cross-thread wake per burst, not one per
//! subscriber, nor one per writer thread): to the writer thread that holds
//! its subscribers when one does, else to the hub's dispatcher, which hands
//! it to each writer thread holding some. Each writer thread then wakes its
//! own subscribers of it, where a wake costs no system call.

use super::channel::{Channel, Limits};
use super::writers::Writers;
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
    writers: Arc<Writers>,
    /// To the hub's dispatcher: channels whose subscribers are on several
    /// writer threads.
    dispatch: mpsc::UnboundedSender<Arc<Channel>>,
}

impl Channels {
    /// The channels served by `writers`, and the receiving end of the
    /// dispatcher's queue, for [`dispatch_loop`] on the hub's accepting thread.
    pub(crate) fn new(
        limits: Limits,
        max: usize,
        writers: Arc<Writers>,
    ) -> (Channels, mpsc::UnboundedReceiver<Arc<Channel>>) {
        let (dispatch, receiver) = mpsc::unbounded_channel();
        (
            Channels {
                map: Mutex::new(HashMap::new()),
                limits,
                max,
                writers,
                dispatch,
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
        let channel = Arc::new(Channel::new(name, kind, self.writers.len()));
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

    /// Wakes the subscribers waiting on `channel`, from any thread, after
    /// an event was appended to it (or it was closed): one hand-over, to
    /// the one writer thread holding its subscribers, or to the dispatcher
    /// when several do, unless one is on its way already.
    pub(crate) fn wake(&self, channel: &Arc<Channel>) {
        let holders = channel.holders();
        match holders.count_ones() {
            0 => {}
            1 => self
                .writers
                .wake(holders.trailing_zeros() as usize, channel),
            _ => {
                // AcqRel, paired with the dispatcher's swap (as in
                // `Writers::wake`).
                if !channel.wake_pending.swap(true, Ordering::AcqRel) {
                    let _ = self.dispatch.send(Arc::clone(channel));
                }
            }
        }
    }
}

/// On the hub's accepting thread: hands each channel to every writer thread holding
/// its subscribers.
pub(crate) async fn dispatch_loop(
    mut channels: mpsc::UnboundedReceiver<Arc<Channel>>,
    writers: Arc<Writers>,
) {
    while let Some(channel) = channels.recv().await {
        // Cleared before the holders are read: a publish after this point
        // hands the channel over again.
        channel.wake_pending.swap(false, Ordering::AcqRel);
        let mut holders = channel.holders();
        while holders != 0 {
            writers.wake(holders.trailing_zeros() as usize, &channel);
            holders &= holders - 1;
        }
    }
}
