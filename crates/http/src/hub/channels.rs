//! This pod's channels by name, bounded in number, and how their waiting
//! subscribers are woken. A publish from the host's thread hands the
//! channel over once (one cross-thread wake per burst, not one per
//! subscriber, nor one per writer thread): to the writer thread that holds
//! its subscribers when one does, else to the hub's dispatcher, which hands
//! it to each writer thread holding some. Each writer thread then wakes its
//! own subscribers of it, where a wake costs no system call.

use super::channel::{Channel, Limits, Subscriber};
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
    /// forgotten first when full), for a publish. Held by the caller, it
    /// is not forgotten by a sweep before the publish lands in it (see
    /// [`forgettable`]).
    pub(crate) fn get_or_create(&self, name: &str, kind: StreamKind) -> Result<Arc<Channel>, Full> {
        let mut map = lock(&self.map);
        self.find_or_make(&mut map, name, kind)
    }

    /// A subscriber of the channel named `name` (created as for a publish)
    /// on writer thread `writer`, counted under the map's lock: a sweep
    /// that saw the channel idle cannot forget it between the finding and
    /// the counting (the subscriber would wait on a channel no publish
    /// reaches, told nothing).
    pub(crate) fn subscribe(
        &self,
        name: &str,
        kind: StreamKind,
        writer: usize,
    ) -> Result<Subscriber, Full> {
        let mut map = lock(&self.map);
        let channel = self.find_or_make(&mut map, name, kind)?;
        channel.add_subscriber(writer);
        Ok(Subscriber { channel, writer })
    }

    fn find_or_make(
        &self,
        map: &mut HashMap<Box<str>, Arc<Channel>>,
        name: &str,
        kind: StreamKind,
    ) -> Result<Arc<Channel>, Full> {
        if let Some(channel) = map.get(name) {
            return Ok(Arc::clone(channel));
        }
        if map.len() >= self.max {
            let now = Instant::now();
            map.retain(|_, channel| !forgettable(channel, &self.limits, now));
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
        map.retain(|_, channel| !forgettable(channel, &self.limits, now));
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

/// Whether the map may forget `channel`: idle for the idle time, and held
/// by no one but the map. Read under the map's lock, where no one can take
/// a new hold of it: a publish between finding a channel and appending to
/// it, or a subscriber between finding it and being counted, holds it, and
/// a sweep forgetting it then left the event, or the subscriber, in a
/// channel no one could find.
fn forgettable(channel: &Arc<Channel>, limits: &Limits, now: Instant) -> bool {
    Arc::strong_count(channel) == 1 && channel.is_idle(limits, now)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn channels(writers: Writers) -> Channels {
        let limits = Limits {
            len: 8,
            history: 8,
            bytes: 1 << 20,
            age: Duration::from_secs(60),
            // Every channel without a subscriber is idle at once.
            idle: Duration::ZERO,
        };
        Channels::new(limits, 16, Arc::new(writers)).0
    }

    fn idle_writers(count: usize) -> Writers {
        Writers::start(count, |_| {
            Box::new(|handed| {
                tokio::spawn(async move {
                    let _handed = handed;
                    std::future::pending::<()>().await
                });
            })
        })
        .unwrap()
    }

    #[test]
    fn a_subscriber_is_counted_on_the_channel_the_map_holds_while_idle_ones_are_swept() {
        // A sweep between the finding of an idle channel and the counting
        // of its subscriber forgot it: the subscriber waited on a channel
        // no publish reached (reviewed, issue 25).
        let channels = Arc::new(channels(idle_writers(1)));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swept = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let sweeper = {
            let (channels, done, swept) =
                (Arc::clone(&channels), Arc::clone(&done), Arc::clone(&swept));
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    swept.fetch_add(channels.evict_idle(), Ordering::Relaxed);
                }
            })
        };
        let mut orphaned = 0;
        // 20,000 subscriptions, and more until the sweeper has forgotten
        // the channel between two of them (a loaded machine may not run it
        // for a while): bounded by 30 s.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        for round in 0.. {
            if round >= 20_000 && swept.load(Ordering::Relaxed) > 0
                || std::time::Instant::now() > deadline
            {
                break;
            }
            let subscriber = channels.subscribe("c", StreamKind::Resumable, 0).unwrap();
            let held = channels.get("c");
            if !held.is_some_and(|held| Arc::ptr_eq(&held, &subscriber.channel)) {
                orphaned += 1;
            }
            drop(subscriber);
            // Its moment to be forgotten: held by the map alone.
            std::thread::yield_now();
        }
        done.store(true, Ordering::Relaxed);
        sweeper.join().unwrap();
        let swept = swept.load(Ordering::Relaxed);
        assert!(swept > 0, "the sweeper never forgot a channel");
        assert_eq!(orphaned, 0);
    }

    #[test]
    fn a_channel_held_for_a_publish_is_not_forgotten_until_let_go() {
        let channels = channels(idle_writers(1));
        let held = channels.get_or_create("c", StreamKind::Resumable).unwrap();
        // Idle by the clock, but a publish is on its way into it.
        assert_eq!(channels.evict_idle(), 0);
        assert!(Arc::ptr_eq(&held, &channels.get("c").unwrap()));
        drop(held);
        assert_eq!(channels.evict_idle(), 1);
    }
}
