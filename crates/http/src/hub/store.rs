//! Channels: their histories, their subscribers, their endings. Behind the
//! small [`ChannelStore`] trait so that a store shared between pods (to
//! resume on another pod from the same history) can replace
//! [`MemoryStore`], the in-process one, without touching the listener.
//!
//! Publishing is synchronous and never blocks on a client: the store's lock
//! is held for bookkeeping only, and each subscriber's bounded queue is
//! offered the event with `try_send`. A full queue means the client is too
//! slow: it is dropped from the channel with [`Ending::TooSlow`], so memory
//! never grows with a client that does not read.

use super::frame::Frame;
use crate::reconnect_spread::StreamKind;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How a subscriber's stream ends, once its queue has been written out.
#[derive(Debug, Clone)]
pub(crate) enum Ending {
    /// It fell `queue_capacity` events behind: a final comment.
    TooSlow,
    /// Its channel was closed: the final event.
    Final(Frame),
    /// Its moment of the close notice came (resumable): `retry:`, its last
    /// id and `event: reconnect`.
    Reconnect,
}

/// A connection's side of a channel: its queue and where its ending is
/// written before the queue's sender is dropped.
pub(crate) struct Subscriber {
    pub(crate) queue: mpsc::Sender<Frame>,
    pub(crate) ending: Arc<OnceLock<Ending>>,
}

impl Subscriber {
    /// Ends this subscriber: the ending first, then the queue closes (by
    /// dropping `self`), so the connection sees both in that order.
    fn end(self, ending: Ending) {
        let _ = self.ending.set(ending);
    }
}

/// What a new subscriber starts with.
pub(crate) struct Subscription {
    /// The id to unsubscribe with.
    pub(crate) id: u64,
    /// The channel's kind as last published.
    pub(crate) kind: StreamKind,
    /// Events from the history to send first.
    pub(crate) replay: Vec<Frame>,
    /// `false` when the client's `Last-Event-ID` is no longer in the
    /// history: events were missed.
    pub(crate) complete: bool,
    /// The channel is already closed: after the replay, this final event,
    /// then the end.
    pub(crate) closed: Option<Frame>,
}

/// Why the store refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// `max_channels` channels are held and none is idle.
    TooManyChannels,
    /// The channel was closed; it takes no more events.
    Closed,
}

/// The store's bounds (from `HubOptions`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) history_len: usize,
    pub(crate) history_age: Duration,
    pub(crate) max_channels: usize,
    pub(crate) max_channel_bytes: usize,
    pub(crate) channel_idle: Duration,
}

/// The result of a publish.
#[derive(Debug)]
pub struct Published {
    pub(crate) frame: Frame,
    /// The number the hub gave it, when the host gave no id.
    pub number: Option<u64>,
    /// Subscribers disconnected by this publish for being too slow.
    pub(crate) too_slow: u64,
}

/// Where channels live. Every method is synchronous and short: it may be
/// called from any thread, including the hub's own event loop.
pub(crate) trait ChannelStore: Send + Sync {
    /// Appends an event to `channel` (created if new) and offers it to every
    /// subscriber; returns its id (`id`, or the next number of the channel).
    fn publish(
        &self,
        channel: &str,
        kind: StreamKind,
        event: &str,
        data: &str,
        id: Option<&str>,
    ) -> Result<Published, StoreError>;

    /// Adds a subscriber, with the history after `last_event_id` (all of it
    /// for `None`).
    fn subscribe(
        &self,
        channel: &str,
        last_event_id: Option<&str>,
        subscriber: Subscriber,
    ) -> Result<Subscription, StoreError>;

    /// Removes a subscriber (its connection went away).
    fn unsubscribe(&self, channel: &str, id: u64);

    /// Closes `channel`: every subscriber gets the final event (the one
    /// given, else the one set in advance, else `event: close`) and ends;
    /// later subscribers get the history and the final event. `false` if
    /// the channel was unknown (it is then created closed).
    fn close(&self, channel: &str, final_event: Option<(&str, &str)>) -> Result<bool, StoreError>;

    /// The final event `channel` is closed with at ClosingStreams (and by
    /// [`ChannelStore::close`] without one), and its kind.
    fn set_final_event(
        &self,
        channel: &str,
        kind: StreamKind,
        event: &str,
        data: &str,
    ) -> Result<(), StoreError>;

    /// Closes every open channel of `kind` with its final event.
    fn close_all(&self, kind: StreamKind) -> usize;

    /// `(channel, subscriber id)` of every subscriber of a channel of `kind`.
    fn subscribers_of(&self, kind: StreamKind) -> Vec<(String, u64)>;

    /// Ends one subscriber with `ending`; `false` if it is gone already.
    fn end_subscriber(&self, channel: &str, id: u64, ending: Ending) -> bool;

    /// Forgets channels idle for the idle time; returns how many.
    fn evict_idle(&self) -> usize;

    /// Channels held now.
    fn channel_count(&self) -> usize;
}

struct Stored {
    frame: Frame,
    at: Instant,
}

struct Channel {
    kind: StreamKind,
    history: VecDeque<Stored>,
    bytes: usize,
    next_id: u64,
    /// Some event was dropped from the history (by count, age or bytes).
    trimmed: bool,
    subscribers: Vec<(u64, Subscriber)>,
    final_event: Option<(String, String)>,
    closed: Option<Frame>,
    last_active: Instant,
}

impl Channel {
    fn new(kind: StreamKind) -> Channel {
        Channel {
            kind,
            history: VecDeque::new(),
            bytes: 0,
            next_id: 1,
            trimmed: false,
            subscribers: Vec::new(),
            final_event: None,
            closed: None,
            last_active: Instant::now(),
        }
    }

    fn next_number(&mut self) -> u64 {
        let number = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        number
    }

    fn next_id(&mut self) -> String {
        self.next_number().to_string()
    }

    fn trim(&mut self, limits: &Limits, now: Instant) {
        while let Some(oldest) = self.history.front() {
            let too_many = self.history.len() > limits.history_len;
            let too_big = self.bytes > limits.max_channel_bytes;
            let too_old = now.duration_since(oldest.at) > limits.history_age;
            if !(too_many || too_big || too_old) {
                break;
            }
            if let Some(gone) = self.history.pop_front() {
                self.bytes -= gone.frame.bytes().len();
                self.trimmed = true;
            }
        }
    }

    fn is_idle(&self, limits: &Limits, now: Instant) -> bool {
        self.subscribers.is_empty() && now.duration_since(self.last_active) >= limits.channel_idle
    }

    /// Ends every subscriber with the final event; the channel stays,
    /// closed, for late subscribers until it is idle.
    fn close_with(&mut self, final_event: Option<(&str, &str)>) {
        if self.closed.is_some() {
            return;
        }
        let (event, data) = match final_event {
            Some((event, data)) => (event.to_owned(), data.to_owned()),
            None => self
                .final_event
                .clone()
                .unwrap_or_else(|| ("close".to_owned(), "{}".to_owned())),
        };
        let id = self.next_id();
        let final_frame = Frame::event(&id, &event, &data);
        for (_, subscriber) in self.subscribers.drain(..) {
            subscriber.end(Ending::Final(final_frame.clone()));
        }
        self.closed = Some(final_frame);
        self.last_active = Instant::now();
    }
}

/// The in-process store: channels in a map behind one mutex, each with a
/// history ring bounded by count, age and bytes.
pub(crate) struct MemoryStore {
    limits: Limits,
    channels: Mutex<HashMap<String, Channel>>,
    next_subscriber: std::sync::atomic::AtomicU64,
}

impl MemoryStore {
    pub(crate) fn new(limits: Limits) -> MemoryStore {
        MemoryStore {
            limits,
            channels: Mutex::new(HashMap::new()),
            next_subscriber: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// The channel named `name`, created if there is room (forgetting idle
    /// ones first when full).
    fn channel<'a>(
        &self,
        channels: &'a mut HashMap<String, Channel>,
        name: &str,
        kind: StreamKind,
    ) -> Result<&'a mut Channel, StoreError> {
        if !channels.contains_key(name) {
            if channels.len() >= self.limits.max_channels {
                let now = Instant::now();
                channels.retain(|_, channel| !channel.is_idle(&self.limits, now));
            }
            if channels.len() >= self.limits.max_channels {
                return Err(StoreError::TooManyChannels);
            }
            channels.insert(name.to_owned(), Channel::new(kind));
        }
        Ok(channels.get_mut(name).expect("inserted above"))
    }
}

fn locked(
    mutex: &Mutex<HashMap<String, Channel>>,
) -> std::sync::MutexGuard<'_, HashMap<String, Channel>> {
    crate::runtime::lock(mutex)
}

impl ChannelStore for MemoryStore {
    fn publish(
        &self,
        name: &str,
        kind: StreamKind,
        event: &str,
        data: &str,
        id: Option<&str>,
    ) -> Result<Published, StoreError> {
        let mut channels = locked(&self.channels);
        let channel = self.channel(&mut channels, name, kind)?;
        if channel.closed.is_some() {
            return Err(StoreError::Closed);
        }
        channel.kind = kind;
        let assigned;
        let mut number = None;
        let id = match id {
            Some(id) => {
                // The numbers the hub assigns stay above a host's numeric
                // ids, so that mixing the two never repeats an id. They
                // stay below 2^63, which the C ABI returns them as.
                if let Ok(number) = id.parse::<u64>() {
                    if number < i64::MAX as u64 {
                        channel.next_id = channel.next_id.max(number + 1);
                    }
                }
                id
            }
            None => {
                let next = channel.next_number();
                number = Some(next);
                assigned = next.to_string();
                &assigned
            }
        };
        let now = Instant::now();
        let published = Frame::event(id, event, data);
        let mut too_slow = 0;
        // Offer it to each subscriber; one whose queue is full, or gone,
        // leaves the channel.
        let mut index = 0;
        while index < channel.subscribers.len() {
            match channel.subscribers[index]
                .1
                .queue
                .try_send(published.clone())
            {
                Ok(()) => index += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    too_slow += 1;
                    channel
                        .subscribers
                        .swap_remove(index)
                        .1
                        .end(Ending::TooSlow);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    channel.subscribers.swap_remove(index);
                }
            }
        }
        if self.limits.history_len > 0 {
            channel.bytes += published.bytes().len();
            channel.history.push_back(Stored {
                frame: published.clone(),
                at: now,
            });
        } else {
            channel.trimmed = true;
        }
        channel.trim(&self.limits, now);
        channel.last_active = now;
        Ok(Published {
            frame: published,
            number,
            too_slow,
        })
    }

    fn subscribe(
        &self,
        name: &str,
        last_event_id: Option<&str>,
        subscriber: Subscriber,
    ) -> Result<Subscription, StoreError> {
        let mut channels = locked(&self.channels);
        let channel = self.channel(&mut channels, name, StreamKind::Resumable)?;
        let now = Instant::now();
        channel.trim(&self.limits, now);
        channel.last_active = now;
        let (replay, complete): (Vec<Frame>, bool) = match last_event_id {
            None => (
                channel.history.iter().map(|s| s.frame.clone()).collect(),
                true,
            ),
            Some(after) => {
                match channel.history.iter().rposition(|s| s.frame.id() == after) {
                    Some(at) => (
                        channel
                            .history
                            .iter()
                            .skip(at + 1)
                            .map(|s| s.frame.clone())
                            .collect(),
                        true,
                    ),
                    // The final event's id: nothing was missed.
                    None if channel.closed.as_ref().is_some_and(|f| f.id() == after) => {
                        (Vec::new(), true)
                    }
                    None => (
                        channel.history.iter().map(|s| s.frame.clone()).collect(),
                        false,
                    ),
                }
            }
        };
        let id = self
            .next_subscriber
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let closed = channel.closed.clone();
        if closed.is_none() {
            channel.subscribers.push((id, subscriber));
        }
        Ok(Subscription {
            id,
            kind: channel.kind,
            replay,
            complete,
            closed,
        })
    }

    fn unsubscribe(&self, name: &str, id: u64) {
        let mut channels = locked(&self.channels);
        if let Some(channel) = channels.get_mut(name) {
            if let Some(at) = channel.subscribers.iter().position(|(s, _)| *s == id) {
                channel.subscribers.swap_remove(at);
                channel.last_active = Instant::now();
            }
        }
    }

    fn close(&self, name: &str, final_event: Option<(&str, &str)>) -> Result<bool, StoreError> {
        let mut channels = locked(&self.channels);
        let known = channels.contains_key(name);
        let kind = channels.get(name).map_or(StreamKind::PodBound, |c| c.kind);
        self.channel(&mut channels, name, kind)?
            .close_with(final_event);
        Ok(known)
    }

    fn set_final_event(
        &self,
        name: &str,
        kind: StreamKind,
        event: &str,
        data: &str,
    ) -> Result<(), StoreError> {
        let mut channels = locked(&self.channels);
        let channel = self.channel(&mut channels, name, kind)?;
        channel.kind = kind;
        channel.final_event = Some((event.to_owned(), data.to_owned()));
        channel.last_active = Instant::now();
        Ok(())
    }

    fn close_all(&self, kind: StreamKind) -> usize {
        let mut channels = locked(&self.channels);
        let mut closed = 0;
        for channel in channels.values_mut() {
            if channel.kind == kind && channel.closed.is_none() {
                channel.close_with(None);
                closed += 1;
            }
        }
        closed
    }

    fn subscribers_of(&self, kind: StreamKind) -> Vec<(String, u64)> {
        let channels = locked(&self.channels);
        channels
            .iter()
            .filter(|(_, channel)| channel.kind == kind)
            .flat_map(|(name, channel)| {
                channel
                    .subscribers
                    .iter()
                    .map(|(id, _)| (name.clone(), *id))
            })
            .collect()
    }

    fn end_subscriber(&self, name: &str, id: u64, ending: Ending) -> bool {
        let mut channels = locked(&self.channels);
        let Some(channel) = channels.get_mut(name) else {
            return false;
        };
        let Some(at) = channel.subscribers.iter().position(|(s, _)| *s == id) else {
            return false;
        };
        channel.subscribers.swap_remove(at).1.end(ending);
        true
    }

    fn evict_idle(&self) -> usize {
        let mut channels = locked(&self.channels);
        let before = channels.len();
        let now = Instant::now();
        channels.retain(|_, channel| !channel.is_idle(&self.limits, now));
        before - channels.len()
    }

    fn channel_count(&self) -> usize {
        locked(&self.channels).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            history_len: 3,
            history_age: Duration::from_secs(300),
            max_channels: 2,
            max_channel_bytes: 1 << 20,
            channel_idle: Duration::from_secs(300),
        }
    }

    fn subscriber(capacity: usize) -> (Subscriber, mpsc::Receiver<Frame>, Arc<OnceLock<Ending>>) {
        let (queue, receiver) = mpsc::channel(capacity);
        let ending = Arc::new(OnceLock::new());
        (
            Subscriber {
                queue,
                ending: Arc::clone(&ending),
            },
            receiver,
            ending,
        )
    }

    fn ids(frames: &[Frame]) -> Vec<&str> {
        frames.iter().map(Frame::id).collect()
    }

    #[test]
    fn ids_increase_and_the_history_is_bounded_by_count() {
        let store = MemoryStore::new(limits());
        for expected in 1..=5 {
            let published = store
                .publish("c", StreamKind::Resumable, "m", "x", None)
                .unwrap();
            assert_eq!(published.frame.id(), expected.to_string());
        }
        let (sub, _rx, _) = subscriber(4);
        let s = store.subscribe("c", Some("3"), sub).unwrap();
        assert_eq!(ids(&s.replay), ["4", "5"]);
        assert!(s.complete);
        // A host's numeric id moves the numbering past it.
        store
            .publish("c", StreamKind::Resumable, "m", "x", Some("41"))
            .unwrap();
        let next = store
            .publish("c", StreamKind::Resumable, "m", "x", None)
            .unwrap();
        assert_eq!(next.frame.id(), "42");
        assert_eq!(next.number, Some(42));
        // One too big to be a number of the hub's leaves the numbering as
        // it is.
        let huge = store
            .publish(
                "c",
                StreamKind::Resumable,
                "m",
                "x",
                Some("18446744073709551615"),
            )
            .unwrap();
        assert_eq!(
            (huge.frame.id(), huge.number),
            ("18446744073709551615", None)
        );
        let after = store
            .publish("c", StreamKind::Resumable, "m", "x", None)
            .unwrap();
        assert_eq!(after.number, Some(43));
        let (sub, _rx, _) = subscriber(4);
        let s = store.subscribe("c", Some("1"), sub).unwrap();
        assert!(!s.complete, "1 fell out of a history of 3");
        assert_eq!(ids(&s.replay), ["42", "18446744073709551615", "43"]);
    }

    #[test]
    fn a_full_queue_ends_the_subscriber_as_too_slow() {
        let store = MemoryStore::new(limits());
        let (sub, _rx, ending) = subscriber(2);
        store.subscribe("c", None, sub).unwrap();
        let mut slow = 0;
        for _ in 0..3 {
            slow += store
                .publish("c", StreamKind::Resumable, "m", "x", None)
                .unwrap()
                .too_slow;
        }
        assert_eq!(slow, 1);
        assert!(matches!(ending.get(), Some(Ending::TooSlow)));
        assert!(store.subscribers_of(StreamKind::Resumable).is_empty());
    }

    #[test]
    fn channels_are_bounded_and_idle_ones_forgotten() {
        let mut limits = limits();
        limits.channel_idle = Duration::ZERO;
        let store = MemoryStore::new(limits);
        let (sub, _rx, _) = subscriber(2);
        store.subscribe("held", None, sub).unwrap();
        store
            .publish("a", StreamKind::Resumable, "m", "x", None)
            .unwrap();
        // "a" is idle (no subscriber, idle time 0): forgotten to make room.
        store
            .publish("b", StreamKind::Resumable, "m", "x", None)
            .unwrap();
        assert_eq!(store.channel_count(), 2);
        let strict = MemoryStore::new(super::tests::limits());
        strict
            .publish("a", StreamKind::Resumable, "m", "x", None)
            .unwrap();
        strict
            .publish("b", StreamKind::Resumable, "m", "x", None)
            .unwrap();
        assert_eq!(
            strict
                .publish("c", StreamKind::Resumable, "m", "x", None)
                .unwrap_err(),
            StoreError::TooManyChannels
        );
    }

    #[test]
    fn closing_sends_the_final_event_set_in_advance() {
        let store = MemoryStore::new(limits());
        store
            .set_final_event(
                "t",
                StreamKind::PodBound,
                "task_failed",
                "{\"reason\":\"shutdown\"}",
            )
            .unwrap();
        let (sub, _rx, ending) = subscriber(2);
        store.subscribe("t", None, sub).unwrap();
        assert_eq!(store.close_all(StreamKind::PodBound), 1);
        let Some(Ending::Final(frame)) = ending.get() else {
            panic!("no final event");
        };
        assert!(std::str::from_utf8(frame.bytes())
            .unwrap()
            .contains("event: task_failed"));
        assert_eq!(
            store
                .publish("t", StreamKind::PodBound, "m", "x", None)
                .unwrap_err(),
            StoreError::Closed
        );
        let (sub, _rx, _) = subscriber(2);
        assert!(store.subscribe("t", None, sub).unwrap().closed.is_some());
    }
}
