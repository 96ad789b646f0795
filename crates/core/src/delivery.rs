//! The handshake between the thread that calls phase listeners and a thread
//! that removes one, with no lock held across the call.
//!
//! The delivery thread publishes which listener it is about to call, *then*
//! checks that listener's "removed" flag; a remover sets the flag, *then*
//! checks what is being called. Each puts a sequentially consistent fence
//! between its store and its load of the other's variable (the Dekker
//! pattern), so at least one of them sees the other: either the delivery skips the
//! removed listener, or the remover sees the call in flight and sleeps until
//! it ends. Hence, for a removal made outside any listener:
//!
//! * a listener removed before its delivery starts is never called;
//! * when the removal returns, the listener is not running and is never
//!   called again.
//!
//! A removal made from inside a listener (of itself or of another) returns
//! at once: the call in flight is its own caller. The removed listener is
//! never called again after that call returns.
//!
//! The model in `tests/loom_delivery.rs` checks both properties.

use crate::wait_word::{Ordering, WaitWord};

use crate::sync::{fence, AtomicBool, AtomicU64};

/// One listener's "removed" flag.
#[derive(Debug)]
pub struct RemovedFlag(AtomicBool);

impl Default for RemovedFlag {
    fn default() -> Self {
        Self::new()
    }
}

impl RemovedFlag {
    /// Not removed.
    pub fn new() -> Self {
        Self(AtomicBool::new(false))
    }

    /// Marks the listener removed. Call [`DeliverySlot::wait_until_idle`]
    /// afterwards (outside a listener) to wait for a call in flight.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
        // Orders this store before the remover's load of the slot.
        fence(Ordering::SeqCst);
    }

    /// Whether the listener was removed.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Which listener (by id, never 0) the delivery thread is calling.
#[derive(Debug)]
pub struct DeliverySlot {
    in_flight: AtomicU64,
    /// Bumped after every call; removers sleep on it.
    done: WaitWord,
}

impl Default for DeliverySlot {
    fn default() -> Self {
        Self::new()
    }
}

impl DeliverySlot {
    /// Its word's lock, if it has one, for the fork handlers.
    #[cfg(not(loom))]
    pub fn hold_across_fork(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        self.done.hold_across_fork()
    }

    /// No call in flight.
    pub fn new() -> Self {
        Self {
            in_flight: AtomicU64::new(0),
            done: WaitWord::new(0),
        }
    }

    /// Claims the slot for listener `id` before calling it. Returns `false`
    /// (and releases the slot) if the listener has been removed: do not call.
    pub fn begin(&self, id: u64, removed: &RemovedFlag) -> bool {
        self.in_flight.store(id, Ordering::SeqCst);
        // Orders this store before the load of the flag (see the module docs).
        fence(Ordering::SeqCst);
        if removed.is_set() {
            self.finish();
            return false;
        }
        true
    }

    /// Releases the slot after a call and wakes removers.
    pub fn finish(&self) {
        self.in_flight.store(0, Ordering::SeqCst);
        self.done.atomic().fetch_add(1, Ordering::Release);
        self.done.wake_all();
    }

    /// The listener being called now (0: none).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// After [`RemovedFlag::set`]: sleeps until listener `id` is not being
    /// called. Never call it from the delivery thread itself.
    pub fn wait_until_idle(&self, id: u64) {
        loop {
            let seen = self.done.atomic().load(Ordering::Acquire);
            if self.in_flight.load(Ordering::SeqCst) != id {
                return;
            }
            self.done.wait(seen, None);
        }
    }

    /// No call in flight: for a forked child, whose delivery thread does not
    /// exist (a call the parent had in flight never ends there).
    pub fn reset_after_fork(&self) {
        self.in_flight.store(0, Ordering::Relaxed);
    }
}
