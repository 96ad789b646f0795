//! The hub on a shared store (`GS_STREAM_STORE=redis://...`): channels that
//! every pod and worker of a deployment publishes to and subscribes from.
//!
//! * **Publishing** never waits on the network: an event is put on a
//!   bounded queue (a full one is refused, [`Error::HubBusy`]); the writer,
//!   on the hub's accepting thread, appends what is queued in one round trip.
//! * **Delivery** comes from the store, for local publishes too: the log
//!   readers follow every bucket and feed the channels this pod holds, so
//!   that every pod sees one order.
//! * **When the store is away** (the writer or a reader fails), the hub is
//!   degraded: events published here reach this pod's subscribers directly
//!   (with ids of this pod's own epoch, which no other pod knows: a resume
//!   elsewhere gets `gap`), one line says so, the metrics say since when,
//!   and a recovery loop tries the store again with backoff. When it
//!   answers, every channel published to meanwhile gets a gap marker in the
//!   store, so that its subscribers on other pods learn that events are
//!   missing, and one line says the store is back. Readiness is not
//!   touched: every pod failing readiness at once would be an outage.
//!
//! [`Error::HubBusy`]: crate::error::Error

use super::channel::Flag;
use super::channels::Channels;
use crate::log::warn;
use crate::runtime::lock;
use last_call_store::ids::EventId;
use last_call_store::{Append, Appended, LogItem, LogReader, RedisStore};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, Notify};

/// Events appended in one round trip, at most.
const BATCH: usize = 512;
/// How long a log read waits for news before it asks again.
const READ_BLOCK: Duration = Duration::from_secs(5);
/// The recovery loop's backoff, first and longest.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Default)]
struct HealthState {
    /// Since when the store is unreachable (`None`: healthy).
    degraded_since: Option<Instant>,
    /// Channels published to while degraded: each gets a gap marker in the
    /// store when it is back.
    lost: HashSet<String>,
}

/// The store's health, shared by the writer, the readers and the metrics.
#[derive(Default)]
pub(crate) struct Health {
    state: Mutex<HealthState>,
    recovering: Notify,
    /// Times the store went away.
    pub(crate) outages: AtomicU64,
}

impl Health {
    /// How long the store has been away (`None`: it is healthy).
    pub(crate) fn degraded_for(&self) -> Option<Duration> {
        lock(&self.state)
            .degraded_since
            .map(|since| since.elapsed())
    }

    fn degrade(&self, why: &str) {
        let mut state = lock(&self.state);
        if state.degraded_since.is_none() {
            state.degraded_since = Some(Instant::now());
            self.outages.fetch_add(1, Ordering::Relaxed);
            warn!("the shared stream store is unreachable ({why}); streams are degraded to this pod until it is back");
            self.recovering.notify_one();
        }
    }
}

/// The shared store as the hub uses it.
pub(crate) struct Shared {
    pub(crate) store: Arc<RedisStore>,
    /// How many log readers have their place in the logs: a subscriber's
    /// history is asked of the store only once all have, so that every
    /// event after it reaches the ring through a reader.
    readers_placed: tokio::sync::watch::Sender<usize>,
    readers: usize,
    queue: mpsc::Sender<Append>,
    pub(crate) health: Arc<Health>,
    /// This pod's own epoch, for events delivered while degraded.
    local_epoch: String,
    local_seq: AtomicU64,
}

impl Shared {
    /// Starts the writer, the readers and the recovery loop on the hub's
    /// thread (`handle`); `capacity` events may wait to be written.
    pub(crate) fn start(
        store: RedisStore,
        capacity: usize,
        channels: Arc<Channels>,
        handle: &tokio::runtime::Handle,
    ) -> Arc<Shared> {
        let store = Arc::new(store);
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let readers = store.log_readers(READ_BLOCK, BATCH);
        let shared = Arc::new(Shared {
            store: Arc::clone(&store),
            readers_placed: tokio::sync::watch::Sender::new(0),
            readers: readers.len(),
            queue,
            health: Arc::new(Health::default()),
            local_epoch: format!("{:016x}", fastrand::u64(..)),
            local_seq: AtomicU64::new(0),
        });
        handle.spawn(write(Arc::clone(&shared), receiver, Arc::clone(&channels)));
        handle.spawn(recover(Arc::clone(&shared)));
        for reader in readers {
            handle.spawn(read(Arc::clone(&shared), reader, Arc::clone(&channels)));
        }
        shared
    }

    /// Waits until every log reader has its place (`false` if `timeout`
    /// passes first: the store is away, and a subscriber gets what this pod
    /// holds).
    pub(crate) async fn readers_ready(&self, timeout: Duration) -> bool {
        let mut placed = self.readers_placed.subscribe();
        let readers = self.readers;
        tokio::time::timeout(timeout, placed.wait_for(|n| *n >= readers))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }

    /// Queues an entry for the store. `false` when the queue is full.
    pub(crate) fn publish(&self, append: Append) -> bool {
        self.queue.try_send(append).is_ok()
    }

    /// Delivers `items` to this pod's subscribers directly (the store is
    /// away), with ids of this pod's epoch.
    fn deliver_locally(&self, items: &[Append], channels: &Channels) {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        for item in items {
            let Some(channel) = channels.get(&item.channel) else {
                continue;
            };
            let id = EventId {
                epoch: self.local_epoch.clone(),
                ms,
                seq: self.local_seq.fetch_add(1, Ordering::Relaxed),
            };
            if channel.feed(&channels.limits, id, &item.event, &item.data, item.flag) {
                channels.wake(&channel);
            }
        }
    }
}

/// The writer: appends what is queued, a batch per round trip; while the
/// store is away, delivers locally and remembers the channels.
async fn write(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Append>, channels: Arc<Channels>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if receiver.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        let degraded = {
            let mut state = lock(&shared.health.state);
            if state.degraded_since.is_some() {
                state
                    .lost
                    .extend(batch.iter().map(|item| item.channel.clone()));
                true
            } else {
                false
            }
        };
        if !degraded {
            match shared.store.append(&batch).await {
                Ok(results) => {
                    for (item, result) in batch.iter().zip(results) {
                        if let Appended::Closed(_) = result {
                            if item.flag != Flag::Final {
                                warn!("an event for closed channel {:?} was dropped", item.channel);
                            }
                        }
                    }
                    batch.clear();
                    continue;
                }
                Err(error) => {
                    // Some of the batch may be in the store, some not: the
                    // subscribers here get it directly, and the store a gap
                    // marker once it is back.
                    let mut state = lock(&shared.health.state);
                    state
                        .lost
                        .extend(batch.iter().map(|item| item.channel.clone()));
                    drop(state);
                    shared.health.degrade(&error.to_string());
                }
            }
        }
        shared.deliver_locally(&batch, &channels);
        batch.clear();
    }
}

/// Waits for an outage, then tries the store with backoff until it
/// answers and the gap markers are written.
async fn recover(shared: Arc<Shared>) {
    loop {
        shared.health.recovering.notified().await;
        let mut backoff = BACKOFF_FIRST;
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            if shared.store.ping().await.is_err() {
                continue;
            }
            let lost: Vec<String> = lock(&shared.health.state).lost.drain().collect();
            let markers: Vec<Append> = lost
                .iter()
                .map(|channel| Append {
                    channel: channel.clone(),
                    kind: last_call_store::Kind::Resumable,
                    event: "gap".into(),
                    data: "{\"reason\":\"events_lost\"}".into(),
                    flag: Flag::Gap,
                })
                .collect();
            if !markers.is_empty() && shared.store.append(&markers).await.is_err() {
                lock(&shared.health.state).lost.extend(lost);
                continue;
            }
            let mut state = lock(&shared.health.state);
            if state.lost.is_empty() {
                let away = state.degraded_since.take().map(|since| since.elapsed());
                drop(state);
                warn!(
                    "the shared stream store is back after {:.1} s; {} channel(s) marked with a gap",
                    away.unwrap_or_default().as_secs_f64(),
                    lost.len()
                );
                break;
            }
        }
    }
}

/// A log reader: feeds every entry for a channel this pod holds, and a gap
/// to the channels of a bucket whose continuity is lost.
async fn read(shared: Arc<Shared>, mut reader: LogReader, channels: Arc<Channels>) {
    let mut backoff = BACKOFF_FIRST;
    // Its place in the logs first (see `Shared::readers_ready`).
    loop {
        match reader.start().await {
            Ok(()) => break,
            Err(error) => {
                shared.health.degrade(&error.to_string());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    shared.readers_placed.send_modify(|placed| *placed += 1);
    loop {
        match reader.next().await {
            Ok(items) => {
                backoff = BACKOFF_FIRST;
                for item in items {
                    match item {
                        LogItem::Entry(entry) => {
                            let Some(channel) = channels.get(&entry.channel) else {
                                continue;
                            };
                            let e = entry.entry;
                            if channel.feed(&channels.limits, e.id, &e.event, &e.data, e.flag) {
                                channels.wake(&channel);
                            }
                        }
                        LogItem::Lost(bucket) => {
                            for channel in channels.in_bucket(bucket) {
                                channel.gap(&channels.limits);
                                channels.wake(&channel);
                            }
                        }
                    }
                }
            }
            Err(error) => {
                shared.health.degrade(&error.to_string());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}
