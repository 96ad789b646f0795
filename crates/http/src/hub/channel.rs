//! A channel as this pod holds it: one copy of each recent event, in a ring
//! that every subscriber reads at its own pace through a cursor.
//!
//! An event exists once per pod, however many subscribe and whichever
//! store fed it (a publish in this process, or the shared store's log). A
//! subscriber is an absolute position in the ring; a publish wakes the
//! subscribers waiting at its end (one `Notify` per writer thread holding
//! some, see `writers.rs`), and each copies out what it has not written
//! yet. A subscriber that falls behind the ring's oldest
//! event is not disconnected: it is told `event: gap` and goes on from the
//! oldest event kept, so that a burst never costs a reader that keeps
//! reading its connection. (A subscriber that stops reading is dropped by
//! its stream when its socket stalls, see `server.rs`.)
//!
//! The ring is bounded by count (the larger of the history length and the
//! live lag bound), bytes and age; without a shared store it is also the
//! history a `Last-Event-ID` resumes from.

use super::frame::{self, Frame};
use crate::reconnect_spread::StreamKind;
use bytes::Bytes;
use last_call_store::ids::EventId;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A ring's bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Events kept (for subscribers that lag, and for resumes).
    pub(crate) len: usize,
    /// Of those, the newest this many are the history a `Last-Event-ID`
    /// resumes from (the rest serve only live subscribers that lag).
    pub(crate) history: usize,
    /// Bytes of events kept.
    pub(crate) bytes: usize,
    /// How long an event is kept.
    pub(crate) age: Duration,
    /// With no subscriber and no event for this long, a channel may be
    /// forgotten.
    pub(crate) idle: Duration,
}

struct Stored {
    frame: Frame,
    at: Instant,
    /// Its id in the shared store, when it came from there (to drop a
    /// duplicate and to place a resume).
    shared: Option<EventId>,
}

struct State {
    kind: StreamKind,
    ring: VecDeque<Stored>,
    /// The absolute position of `ring[0]`.
    base: u64,
    bytes: usize,
    /// The next number the hub gives an event published without an id.
    next_number: u64,
    subscribers: usize,
    /// Of those, on each writer thread.
    on_writer: Box<[u32]>,
    final_event: Option<(String, String)>,
    closed: Option<Frame>,
    last_active: Instant,
    /// The last shared-store id fed in.
    last_shared: Option<EventId>,
}

/// One channel of this pod.
pub(crate) struct Channel {
    pub(crate) name: Box<str>,
    /// Read by every subscriber's read (on every writer thread at once),
    /// written by a publish: a lock that readers share.
    state: RwLock<State>,
    /// One per writer thread.
    sides: Box<[Side]>,
    /// The writer threads that hold subscribers of it, one bit each:
    /// changed under the state's lock, read without it (see
    /// [`Channel::holders`]).
    holders: AtomicU64,
    /// A wake of the waiting subscribers is on its way to the hub's
    /// dispatcher (see `Channels::wake`): one per burst, not one per
    /// publish.
    pub(crate) wake_pending: AtomicBool,
}

/// A channel as one writer thread sees it.
pub(crate) struct Side {
    /// Its subscribers there waiting at the ring's end wait on it.
    pub(crate) notify: Arc<Notify>,
    /// A wake is on its way to that thread (see `Writers::wake`).
    pub(crate) pending: AtomicBool,
}

/// What a subscriber's read found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// Events were copied out.
    Events,
    /// The subscriber had fallen behind the ring: `skipped` events are gone;
    /// its cursor now points at the oldest kept.
    Gap { skipped: u64 },
    /// Nothing new and the channel is closed: its final event.
    Closed(Bytes),
    /// Nothing new.
    Nothing,
}

/// Where a new subscriber starts.
pub(crate) struct Start {
    /// The cursor: the absolute position of the first event it reads live.
    pub(crate) cursor: u64,
    /// Events may have been missed since the client's id.
    pub(crate) gap: bool,
}

impl Channel {
    /// A channel served by `writers` writer threads (1 to 64).
    pub(crate) fn new(name: &str, kind: StreamKind, writers: usize) -> Channel {
        Channel {
            name: name.into(),
            state: RwLock::new(State {
                kind,
                ring: VecDeque::new(),
                base: 0,
                bytes: 0,
                next_number: 1,
                subscribers: 0,
                on_writer: vec![0; writers].into(),
                final_event: None,
                closed: None,
                last_active: Instant::now(),
                last_shared: None,
            }),
            sides: (0..writers)
                .map(|_| Side {
                    notify: Arc::new(Notify::new()),
                    pending: AtomicBool::new(false),
                })
                .collect(),
            holders: AtomicU64::new(0),
            wake_pending: AtomicBool::new(false),
        }
    }

    /// The channel as writer thread `writer` sees it.
    pub(crate) fn side(&self, writer: usize) -> &Side {
        &self.sides[writer]
    }

    /// The writer threads holding subscribers now, one bit each. Read
    /// after an event is appended, it names every thread whose subscribers
    /// may not have read it: a subscriber counted after the append (under
    /// the same lock) reads the ring after that, and finds the event.
    pub(crate) fn holders(&self) -> u64 {
        self.holders.load(Ordering::Acquire)
    }

    pub(crate) fn kind(&self) -> StreamKind {
        read(&self.state).kind
    }

    pub(crate) fn set_kind(&self, kind: StreamKind) {
        write(&self.state).kind = kind;
    }

    pub(crate) fn is_closed(&self) -> bool {
        read(&self.state).closed.is_some()
    }

    /// Appends an event published in this process (no shared store):
    /// its id is `id`, or the channel's next number. `Err(())` if closed.
    pub(crate) fn publish(
        &self,
        limits: &Limits,
        kind: StreamKind,
        event: &str,
        data: &str,
        id: Option<&str>,
    ) -> Result<(Frame, Option<u64>), ()> {
        let mut state = write(&self.state);
        if state.closed.is_some() {
            return Err(());
        }
        state.kind = kind;
        let mut number = None;
        let assigned;
        let id = match id {
            Some(id) => {
                // The numbers the hub gives stay above a host's numeric
                // ids, so that mixing the two never repeats an id (and below
                // 2^63, which the C ABI returns them as).
                if let Ok(given) = id.parse::<u64>() {
                    if given < i64::MAX as u64 {
                        state.next_number = state.next_number.max(given + 1);
                    }
                }
                id
            }
            None => {
                let next = state.next_number;
                state.next_number = next.saturating_add(1);
                number = Some(next);
                assigned = next.to_string();
                &assigned
            }
        };
        let frame = Frame::event(id, event, data);
        push(&mut state, limits, frame.clone(), None);
        Ok((frame, number))
    }

    /// Feeds in an entry of the shared store. A duplicate (already fed) is
    /// dropped; an entry of another epoch than the last (the store
    /// restarted or failed over) is preceded by a gap. `true` if anything
    /// changed.
    pub(crate) fn feed(
        &self,
        limits: &Limits,
        id: EventId,
        event: &str,
        data: &str,
        flag: Flag,
    ) -> bool {
        let mut state = write(&self.state);
        if state.closed.is_some() {
            return false;
        }
        if let Some(last) = &state.last_shared {
            if last.epoch == id.epoch && (id.ms, id.seq) <= (last.ms, last.seq) {
                return false;
            }
            if last.epoch != id.epoch {
                push(
                    &mut state,
                    limits,
                    Frame::untracked(frame::gap_marker()),
                    None,
                );
            }
        }
        state.last_shared = Some(id.clone());
        let text = id.to_string();
        match flag {
            Flag::Event => push(
                &mut state,
                limits,
                Frame::event(&text, event, data),
                Some(id),
            ),
            Flag::Gap => push(
                &mut state,
                limits,
                Frame::untracked(frame::gap_marker()),
                Some(id),
            ),
            Flag::Final => {
                state.closed = Some(Frame::event(&text, event, data));
                state.last_active = Instant::now();
            }
        }
        true
    }

    /// Closes the channel with `last`, the final event the shared store
    /// gave a subscriber (its log feeds the same one; the first wins).
    pub(crate) fn feed_closed(&self, last: Frame) -> bool {
        let mut state = write(&self.state);
        if state.closed.is_some() {
            return false;
        }
        state.closed = Some(last);
        true
    }

    /// Tells every subscriber that events may have been lost here (the
    /// shared store's log could not vouch for its continuity).
    pub(crate) fn gap(&self, limits: &Limits) {
        let mut state = write(&self.state);
        if state.closed.is_none() {
            push(
                &mut state,
                limits,
                Frame::untracked(frame::gap_marker()),
                None,
            );
        }
    }

    /// Where a subscriber arriving with `last_event_id` starts, from this
    /// ring alone (no shared store, or the store unreachable). Counting it
    /// is [`Channel::add_subscriber`]'s.
    pub(crate) fn start_local(&self, limits: &Limits, last_event_id: Option<&str>) -> Start {
        let state = read(&self.state);
        let end = state.base + state.ring.len() as u64;
        // The history: the newest `limits.history` events of the ring.
        let first = state.ring.len().saturating_sub(limits.history);
        let history = state.base + first as u64;
        let (cursor, gap) = match last_event_id {
            None => (history, false),
            Some(after) => match state
                .ring
                .iter()
                .skip(first)
                .rposition(|s| s.frame.id() == after)
            {
                Some(at) => (history + at as u64 + 1, false),
                None if state.closed.as_ref().is_some_and(|f| f.id() == after) => (end, false),
                None => (history, true),
            },
        };
        Start { cursor, gap }
    }

    /// Where a subscriber starts after its history came from the shared
    /// store, the last replayed (or the client's own) id being `after`: at
    /// the first event of the ring that follows it. Registered as a
    /// subscriber before the store was asked, so the ring already holds
    /// every later event (or will).
    pub(crate) fn place_after_shared(&self, after: Option<&EventId>) -> (u64, bool) {
        let state = read(&self.state);
        let end = state.base + state.ring.len() as u64;
        let Some(after) = after else {
            return (end, false);
        };
        // The ring's entries from the store, oldest first: skip those at or
        // before `after`.
        let mut cursor = state.base;
        for stored in &state.ring {
            match &stored.shared {
                Some(id) if id.epoch == after.epoch && (id.ms, id.seq) <= (after.ms, after.seq) => {
                    cursor += 1;
                }
                Some(id) if id.epoch != after.epoch => return (cursor, true),
                _ => break,
            }
        }
        (cursor, false)
    }

    /// Counts a subscriber served by writer thread `writer`, before it
    /// reads the ring (or asks the shared store).
    pub(crate) fn add_subscriber(&self, writer: usize) {
        let mut state = write(&self.state);
        state.subscribers += 1;
        state.on_writer[writer] += 1;
        if state.on_writer[writer] == 1 {
            self.holders.fetch_or(1 << writer, Ordering::Release);
        }
        state.last_active = Instant::now();
    }

    /// The subscribers reading it here now.
    pub(crate) fn subscriber_count(&self) -> usize {
        read(&self.state).subscribers
    }

    pub(crate) fn remove_subscriber(&self, writer: usize) {
        let mut state = write(&self.state);
        state.subscribers = state.subscribers.saturating_sub(1);
        state.on_writer[writer] = state.on_writer[writer].saturating_sub(1);
        if state.on_writer[writer] == 0 {
            self.holders.fetch_and(!(1 << writer), Ordering::Release);
        }
        state.last_active = Instant::now();
    }

    /// Copies what `cursor` has not read yet (at most `room` events) into
    /// `out`, moving the cursor.
    pub(crate) fn read(&self, cursor: &mut u64, out: &mut VecDeque<Bytes>, room: usize) -> Read {
        let state = read(&self.state);
        if *cursor < state.base {
            let skipped = state.base - *cursor;
            *cursor = state.base;
            return Read::Gap { skipped };
        }
        let from = usize::try_from(*cursor - state.base).unwrap_or(usize::MAX);
        if from >= state.ring.len() {
            return match &state.closed {
                Some(last) => Read::Closed(last.bytes().clone()),
                None => Read::Nothing,
            };
        }
        let take = room.min(state.ring.len() - from);
        out.extend(
            state
                .ring
                .range(from..from + take)
                .map(|stored| stored.frame.bytes().clone()),
        );
        *cursor += take as u64;
        Read::Events
    }

    /// Closes the channel: `final_event`, else the one set in advance, else
    /// `event: close`. `false` if it was closed already.
    pub(crate) fn close(&self, final_event: Option<(&str, &str)>) -> bool {
        let mut state = write(&self.state);
        if state.closed.is_some() {
            return false;
        }
        let (event, data) = match final_event {
            Some((event, data)) => (event.to_owned(), data.to_owned()),
            None => state
                .final_event
                .clone()
                .unwrap_or_else(|| ("close".to_owned(), "{}".to_owned())),
        };
        let next = state.next_number;
        state.next_number = next.saturating_add(1);
        state.closed = Some(Frame::event(&next.to_string(), &event, &data));
        state.last_active = Instant::now();
        true
    }

    /// The final event set in advance, if any.
    pub(crate) fn final_event(&self) -> Option<(String, String)> {
        read(&self.state).final_event.clone()
    }

    pub(crate) fn set_final_event(&self, kind: StreamKind, event: &str, data: &str) {
        let mut state = write(&self.state);
        state.kind = kind;
        state.final_event = Some((event.to_owned(), data.to_owned()));
        state.last_active = Instant::now();
    }

    /// No subscriber, and nothing happened for the idle time.
    pub(crate) fn is_idle(&self, limits: &Limits, now: Instant) -> bool {
        let state = read(&self.state);
        state.subscribers == 0 && now.duration_since(state.last_active) >= limits.idle
    }
}

/// A subscriber counted on its channel, on writer thread `writer`
/// ([`Channels::subscribe`](super::channels::Channels::subscribe));
/// uncounted when dropped, wherever the subscription stops (its stream
/// ended, or its answer dropped half-way, while it waited for the shared
/// store).
pub(crate) struct Subscriber {
    pub(crate) channel: Arc<Channel>,
    pub(crate) writer: usize,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.channel.remove_subscriber(self.writer);
    }
}

/// The state to read; a panic elsewhere (none is expected) does not stop
/// the channel.
fn read(state: &RwLock<State>) -> RwLockReadGuard<'_, State> {
    state
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(state: &RwLock<State>) -> RwLockWriteGuard<'_, State> {
    state
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a shared-store entry is (see `last_call_store::Flag`).
pub(crate) use last_call_store::Flag;

/// Appends to the ring and trims it from the oldest: over the count, the
/// bytes or the age. A subscriber whose cursor is then behind `base` is
/// told `gap` at its next read.
fn push(state: &mut State, limits: &Limits, frame: Frame, shared: Option<EventId>) {
    let now = Instant::now();
    state.bytes += frame.bytes().len();
    state.ring.push_back(Stored {
        frame,
        at: now,
        shared,
    });
    while let Some(oldest) = state.ring.front() {
        let over = state.ring.len() > limits.len
            || state.bytes > limits.bytes
            || now.duration_since(oldest.at) > limits.age;
        if !over {
            break;
        }
        if let Some(gone) = state.ring.pop_front() {
            state.bytes -= gone.frame.bytes().len();
            state.base += 1;
        }
    }
    state.last_active = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Channel {
        fn subscribe_local_counted(&self, limits: &Limits, last_event_id: Option<&str>) -> Start {
            self.add_subscriber(0);
            self.start_local(limits, last_event_id)
        }
    }

    fn limits(len: usize) -> Limits {
        Limits {
            len,
            history: len,
            bytes: 1 << 20,
            age: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        }
    }

    fn text(out: &VecDeque<Bytes>) -> Vec<String> {
        out.iter()
            .map(|b| {
                String::from_utf8_lossy(b)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn each_subscriber_reads_at_its_own_pace_and_a_lagging_one_skips_with_a_gap() {
        let channel = Channel::new("c", StreamKind::Resumable, 1);
        let limits = limits(4);
        let mut fast = channel.subscribe_local_counted(&limits, None).cursor;
        let mut slow = fast;
        let mut out = VecDeque::new();
        for n in 0..3 {
            channel
                .publish(&limits, StreamKind::Resumable, "e", &n.to_string(), None)
                .unwrap();
        }
        assert_eq!(channel.read(&mut fast, &mut out, 8), Read::Events);
        assert_eq!(text(&out), ["id: 1", "id: 2", "id: 3"]);
        for n in 3..10 {
            channel
                .publish(&limits, StreamKind::Resumable, "e", &n.to_string(), None)
                .unwrap();
        }
        // The slow one missed 1..6 (the ring keeps the last four).
        out.clear();
        assert_eq!(
            channel.read(&mut slow, &mut out, 8),
            Read::Gap { skipped: 6 }
        );
        assert_eq!(channel.read(&mut slow, &mut out, 2), Read::Events);
        assert_eq!(text(&out), ["id: 7", "id: 8"]);
        out.clear();
        assert_eq!(
            channel.read(&mut fast, &mut out, 8),
            Read::Gap { skipped: 3 }
        );
        assert_eq!(channel.read(&mut fast, &mut out, 8), Read::Events);
        assert_eq!(text(&out), ["id: 7", "id: 8", "id: 9", "id: 10"]);
        assert_eq!(channel.read(&mut fast, &mut out, 8), Read::Nothing);
        assert!(channel.close(Some(("done", "{}"))));
        assert!(matches!(
            channel.read(&mut fast, &mut out, 8),
            Read::Closed(_)
        ));
        assert!(channel
            .publish(&limits, StreamKind::Resumable, "e", "x", None)
            .is_err());
    }

    #[test]
    fn the_holders_name_each_writer_thread_with_subscribers_until_its_last_leaves() {
        let channel = Channel::new("c", StreamKind::Resumable, 3);
        assert_eq!(channel.holders(), 0);
        channel.add_subscriber(2);
        channel.add_subscriber(2);
        assert_eq!(channel.holders(), 0b100);
        channel.add_subscriber(0);
        assert_eq!(channel.holders(), 0b101);
        channel.remove_subscriber(2);
        assert_eq!(channel.holders(), 0b101);
        channel.remove_subscriber(2);
        assert_eq!(channel.holders(), 0b001);
        channel.remove_subscriber(0);
        assert_eq!(channel.holders(), 0);
        assert_eq!(read(&channel.state).subscribers, 0);
    }

    #[test]
    fn a_resume_starts_after_the_clients_id_or_with_a_gap() {
        let channel = Channel::new("c", StreamKind::Resumable, 1);
        let limits = limits(3);
        for n in 0..5 {
            channel
                .publish(&limits, StreamKind::Resumable, "e", &n.to_string(), None)
                .unwrap();
        }
        let start = channel.subscribe_local_counted(&limits, Some("4"));
        assert!(!start.gap);
        let mut cursor = start.cursor;
        let mut out = VecDeque::new();
        channel.read(&mut cursor, &mut out, 8);
        assert_eq!(text(&out), ["id: 5"]);
        let start = channel.subscribe_local_counted(&limits, Some("1"));
        assert!(start.gap);
        assert_eq!(read(&channel.state).subscribers, 2);
    }

    #[test]
    fn shared_entries_are_fed_once_and_another_epoch_is_a_gap() {
        let channel = Channel::new("c", StreamKind::Resumable, 1);
        let limits = limits(10);
        let id = |epoch: &str, ms| EventId::parse(&format!("{epoch}-{ms}-0")).unwrap();
        assert!(channel.feed(&limits, id("aa", 1), "e", "1", Flag::Event));
        assert!(!channel.feed(&limits, id("aa", 1), "e", "1", Flag::Event));
        assert!(channel.feed(&limits, id("aa", 2), "e", "2", Flag::Event));
        assert_eq!(channel.place_after_shared(Some(&id("aa", 1))), (1, false));
        assert!(channel.feed(&limits, id("bb", 1), "e", "3", Flag::Event));
        let mut cursor = 0;
        let mut out = VecDeque::new();
        channel.read(&mut cursor, &mut out, 8);
        assert_eq!(
            text(&out),
            ["id: aa-1-0", "id: aa-2-0", "event: gap", "id: bb-1-0"]
        );
        assert!(channel.feed(&limits, id("bb", 2), "task_failed", "{}", Flag::Final));
        assert!(channel.is_closed());
    }
}
