//! Phase listeners: their registry, and the delivery thread that calls
//! them.
//!
//! The delivery thread is not the thread that runs the shutdown sequence:
//! a listener that blocks delays only the listeners after it, never the
//! sequence, the hooks or the exit watchdog. It calls each listener with no
//! lock held (a `fork()` at any moment leaves the child a usable runtime),
//! inside a panic boundary, and marked for the re-entrancy check. Removal
//! follows the handshake described in `delivery.rs`.

use crate::callback_scope::{self, Kind};
use crate::delivery::RemovedFlag;
use crate::log::warn;
use crate::phase::{PhaseChange, PhaseWord};
use crate::runtime::{lock, Inner, RegistrationId};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

pub(crate) type ListenerFn = Box<dyn Fn(PhaseChange) + Send + Sync>;

pub(crate) struct Listener {
    pub(crate) id: RegistrationId,
    pub(crate) removed: RemovedFlag,
    pub(crate) call: ListenerFn,
    /// The phase word when it was registered: it is told only of the
    /// changes made after, even by a delivery thread still catching up
    /// with earlier ones.
    pub(crate) since: PhaseWord,
}

/// Removes listener `id`; `false` if there was none. Outside a listener of
/// this runtime, returns only once the listener is not running.
pub(crate) fn remove(inner: &Inner, id: RegistrationId) -> bool {
    let removed = {
        let mut shared = lock(&inner.shared);
        let position = shared.listeners.iter().position(|l| l.id == id);
        position.map(|at| shared.listeners.remove(at))
    };
    let Some(listener) = removed else {
        return false;
    };
    listener.removed.set();
    if !callback_scope::inside_listener_of(inner.address()) {
        inner.delivery.wait_until_idle(id.0);
    }
    true
}

/// The delivery thread's body: `seen` was read before the thread started,
/// so no change made after its start is missed.
///
/// A listener that forks returns twice: in the parent, and in the child on
/// the child's only thread, this one. The child's runtime was reset at the
/// fork (no delivery thread; its own starts on its first use), so there
/// this thread's work is over: it ends as soon as the listener returns,
/// without touching the child's delivery slot (which a delivery thread of
/// the child may be using by then). As the child's last thread, its end
/// ends the child with status 0, as a process's last thread does.
pub(crate) fn delivery_thread(inner: Arc<Inner>, mut seen: PhaseWord) {
    let process = crate::fork::generation();
    let mut generation = inner.generation();
    loop {
        // The generation before the word: a new generation means the word
        // read after it is the reset's or later.
        let current = inner.generation();
        let now = inner.phase.load();
        if current != generation {
            // The testing reset removed every listener; what happened
            // before it is not delivered, what happened since is.
            generation = current;
            seen = inner.reset_word();
        }
        for (index, change) in seen.changes_until(now).into_iter().enumerate() {
            if !deliver(&inner, change, seen, index, process) {
                return; // in a child forked by a listener
            }
        }
        seen = now;
        inner.phase.wait_for_change(now, None);
    }
}

/// Delivers change number `index` after `seen` to the listeners
/// registered before it was made. `false` when a listener forked and this
/// is the child (fork generation no longer `process`): stop delivering.
fn deliver(
    inner: &Inner,
    change: PhaseChange,
    seen: PhaseWord,
    index: usize,
    process: u64,
) -> bool {
    let listeners: Vec<Arc<Listener>> = lock(&inner.shared).listeners.clone();
    for listener in listeners {
        if !listener.since.change_is_after(seen, index) {
            continue;
        }
        if !inner.delivery.begin(listener.id.0, &listener.removed) {
            continue;
        }
        let Some(_call) = inner.host_calls.enter() else {
            // The host is exiting: nothing more is delivered.
            inner.delivery.finish();
            return true;
        };
        let panicked = {
            let _scope = callback_scope::enter(inner.address(), Kind::Listener);
            catch_unwind(AssertUnwindSafe(|| (listener.call)(change))).is_err()
        };
        if crate::fork::generation() != process {
            return false;
        }
        inner.delivery.finish();
        if panicked {
            warn!("phase listener #{} panicked on {change:?}", listener.id.0);
        }
    }
    true
}
