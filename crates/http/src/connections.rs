//! A listener's open connections, bounded, shedding idle ones first.
//!
//! A connection is *idle* while it waits for a request (its headers not yet
//! all read, or between keep-alive requests) and *busy* while a request is
//! answered or a stream is served on it. At the cap, a new connection makes
//! room by closing the oldest idle one: whoever holds connections open
//! without sending a request (a flood of idle or slow clients, from any pod
//! in the cluster) loses them to the next client that does send one, such
//! as the kubelet's probe, which opens a connection and sends its whole
//! request at once. Only when every connection is busy is the new one
//! refused.
//!
//! Oldest first: the idle connection that has had the most time to send its
//! request, and the one least likely to be a probe about to do so.

use crate::runtime::lock;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::task::AbortHandle;

/// The open connections of one listener, at most `cap`.
pub(crate) struct Connections {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    /// By age (the id grows): what stops each one's task, once spawned.
    idle: BTreeMap<u64, Option<AbortHandle>>,
    busy: BTreeMap<u64, Option<AbortHandle>>,
}

impl Connections {
    pub(crate) fn new(cap: usize) -> Arc<Connections> {
        Arc::new(Connections {
            cap: cap.max(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Room for a new connection, idle until it is [`Slot::busy`]: the
    /// oldest idle connection is closed if the cap is reached; `None` if
    /// every one is busy.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut inner = lock(&self.inner);
        if inner.idle.len() + inner.busy.len() >= self.cap {
            let (_, oldest) = inner.idle.pop_first()?;
            if let Some(task) = oldest {
                // Its task ends at its next poll, dropping (closing) its
                // socket; its slot is already free.
                task.abort();
            }
        }
        let id = inner.next;
        inner.next += 1;
        inner.idle.insert(id, None);
        Some(Slot {
            id,
            connections: Arc::clone(self),
        })
    }

    /// Connections open now (for tests and metrics).
    #[allow(dead_code)]
    pub(crate) fn open(&self) -> usize {
        let inner = lock(&self.inner);
        inner.idle.len() + inner.busy.len()
    }
}

/// One admitted connection; its place is freed when it is dropped.
pub(crate) struct Slot {
    id: u64,
    connections: Arc<Connections>,
}

impl Slot {
    /// What closes the connection if it is shed: its task.
    pub(crate) fn set_task(&self, task: AbortHandle) {
        let mut inner = lock(&self.connections.inner);
        if let Some(entry) = inner.idle.get_mut(&self.id) {
            *entry = Some(task);
        } else if let Some(entry) = inner.busy.get_mut(&self.id) {
            *entry = Some(task);
        } else {
            // Shed before its task was known: stop it now.
            task.abort();
        }
    }

    /// Busy (never shed) until the guard is dropped.
    pub(crate) fn busy(&self) -> Busy<'_> {
        self.mark(true);
        Busy(self)
    }

    /// Busy for the rest of its life (a stream): never shed, so what would
    /// have stopped its task is let go (it kept that task's memory, about a
    /// KiB, allocated for the stream's life).
    pub(crate) fn hold(&self) {
        self.mark(true);
        if let Some(entry) = lock(&self.connections.inner).busy.get_mut(&self.id) {
            *entry = None;
        }
    }

    fn mark(&self, busy: bool) {
        let mut guard = lock(&self.connections.inner);
        let inner = &mut *guard;
        let (from, to) = if busy {
            (&mut inner.idle, &mut inner.busy)
        } else {
            (&mut inner.busy, &mut inner.idle)
        };
        if let Some(task) = from.remove(&self.id) {
            to.insert(self.id, task);
        }
        // Not in `from`: already where it belongs, or shed.
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = lock(&self.connections.inner);
        if inner.idle.remove(&self.id).is_none() {
            inner.busy.remove(&self.id);
        }
    }
}

/// A slot busy while it lives.
pub(crate) struct Busy<'a>(&'a Slot);

impl Busy<'_> {
    /// Busy for the rest of the slot's life, from now, with no moment idle
    /// in between (see [`Slot::hold`]): a subscription's connection, whose
    /// answer is a stream. Idle between its answer and its hold, it could
    /// be shed for a newcomer at the cap, the stream counted and then cut.
    pub(crate) fn hold(self) {
        self.0.hold();
        std::mem::forget(self);
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.mark(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_slot_held_is_never_idle_again() {
        // A subscription's connection: busy while answered, then held for
        // its stream with no moment idle between (it was shed there once,
        // its stream counted and then cut, under a flood at the cap).
        let connections = Connections::new(1);
        let a = connections.admit().unwrap();
        a.busy().hold();
        assert!(connections.admit().is_none());
        // A busy guard let go makes it idle again, and so sheddable.
        let connections = Connections::new(1);
        let b = connections.admit().unwrap();
        drop(b.busy());
        assert!(connections.admit().is_some());
    }

    #[test]
    fn the_oldest_idle_connection_makes_room_and_busy_ones_are_kept() {
        let connections = Connections::new(3);
        let a = connections.admit().unwrap();
        let b = connections.admit().unwrap();
        let c = connections.admit().unwrap();
        a.hold();
        let busy = b.busy();
        // `c` is the only idle one: shed for `d`.
        let d = connections.admit().unwrap();
        assert_eq!(connections.open(), 3);
        drop(c); // already shed: nothing more is freed
        assert_eq!(connections.open(), 3);
        drop(busy); // `b` idle again, and older than `d`
        let e = connections.admit().unwrap();
        assert_eq!(connections.open(), 3);
        let _f = connections.admit().unwrap(); // sheds `d`
        assert_eq!(connections.open(), 3);
        drop((a, b, d, e));
    }

    #[test]
    fn every_connection_busy_refuses_a_new_one() {
        let connections = Connections::new(2);
        let a = connections.admit().unwrap();
        let b = connections.admit().unwrap();
        a.hold();
        b.hold();
        assert!(connections.admit().is_none());
        drop(a);
        assert!(connections.admit().is_some());
    }
}
