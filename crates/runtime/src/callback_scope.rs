//! Which runtime's callback, if any, the current thread is running.
//!
//! Phase listeners run on a runtime's delivery thread and shutdown hooks on
//! threads of their own. From there a blocking wait could wait for itself:
//! `wait_for_phase(Stopped)` in a listener blocks the very thread that
//! would deliver Stopped's callbacks, and in a hook the phase that comes
//! only once the hooks have run. So those waits check this thread-local
//! mark and return [`crate::Error::Reentrant`] at once, and removing a
//! listener from inside a listener does not wait for the delivery in
//! flight (which is its own caller).

use std::cell::Cell;

/// What kind of user code the thread is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Listener,
    Hook,
}

thread_local! {
    static CURRENT: Cell<Option<(usize, Kind)>> = const { Cell::new(None) };
}

/// Marks the thread as running a `kind` callback of the runtime at
/// `runtime` (its address) until the guard drops.
pub(crate) fn enter(runtime: usize, kind: Kind) -> Guard {
    let previous = CURRENT.with(|current| current.replace(Some((runtime, kind))));
    Guard { previous }
}

/// In a forked child, on the thread that forked (the only one): whatever
/// callback it was running belongs to the parent's runtime threads, which
/// the child does not have. The child's waits wait for the child's own
/// threads (started afresh on first use), never for this one, so they are
/// not re-entrant here. A plain thread-local store, for the atfork child
/// handler.
pub(crate) fn forget_after_fork() {
    CURRENT.with(|current| current.set(None));
}

/// Whether the thread is inside any runtime's listener or hook.
pub(crate) fn inside_any() -> bool {
    CURRENT.with(Cell::get).is_some()
}

/// Whether the thread is the delivery thread of `runtime`, inside a listener.
pub(crate) fn inside_listener_of(runtime: usize) -> bool {
    CURRENT.with(Cell::get) == Some((runtime, Kind::Listener))
}

pub(crate) struct Guard {
    previous: Option<(usize, Kind)>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.previous));
    }
}
