//! What a forked child inherits, and what it does not.
//!
//! `fork()` copies memory but only the calling thread. A child of a process
//! that uses this crate therefore has the parent's counters and phase in
//! memory but none of its threads, and the parent's signal handler code in
//! place. The rules (the gunicorn pattern: load in the master, serve in
//! workers):
//!
//! * The child starts afresh: Serving, no active streams, totals at zero, no
//!   sequence, no listener call in flight, no hook running, no signal
//!   counted, the exit watchdog disarmed. The parent's streams belong to the
//!   parent's threads, which do not exist in the child.
//! * Phase listeners and shutdown hooks registered before the fork are kept:
//!   they are the application's, and the child runs the same application.
//!   The child's threads start on its first use that needs them.
//! * The child has no signal handling of its own until it installs it
//!   (`install_signal_handlers` succeeds once in each process). Until then a
//!   SIGTERM/SIGINT to the child behaves as it would have without this
//!   crate (the disposition found at install: usually, termination).
//! * Nothing crosses between the processes afterwards: the wait words are
//!   process-private futexes and there is no shared pipe, so a signal to one
//!   never drives the other's sequence.
//! * A fork at any moment, from any thread, leaves the child a usable
//!   runtime: the runtime's one lock is never held while user code runs,
//!   and `pthread_atfork` handlers take it just before the fork and release
//!   it on both sides after, so the child never inherits it held, nor the
//!   registries half-updated.
//! * A child forked from inside a phase listener or a shutdown hook (on the
//!   runtime's delivery or hook thread) is not inside a callback: its
//!   blocking waits work (they wait for the child's own threads, never for
//!   the one that forked), and the calls it was inside are not counted in
//!   its host-call gate. When the listener or hook returns in the child,
//!   the thread that forked ends instead of going back to the parent's
//!   work (delivering, reporting): as the child's last thread, that ends
//!   the child, status 0. A child with more to do does it before it
//!   returns (or `exec`s, or `_exit`s with a status of its own).
//! * Layers above the runtime (the listeners) keep state of their own and
//!   [`join`] these handlers: theirs run after the runtime's lock is taken,
//!   and in the child after the runtime's own reset.
//!
//! The order in which `before_fork` takes the locks (never the other way
//! round anywhere else, so a fork cannot deadlock the parent): the
//! runtime's one lock (`Shared`), then each joined layer's in the order
//! they joined (the listeners': their `State`, which holds the stream hub
//! and the probe listener). Every other lock of the layers (the hub's
//! channel map, each channel's state, the shared store's health) belongs
//! to a hub that names its process image: a forked child never reaches the
//! parent's hub through `State` (it answers "hub not started" until the
//! child starts its own, with fresh locks), so those are fork-safe by
//! construction and not taken here (`tests/hostile_host.rs` forks 600
//! children while a thread publishes). The exception is the portable wait
//! (no futex), whose words carry a mutex: see `wait_word/portable.rs`.

use crate::log::warn;
use crate::runtime::{lock, Runtime, Shared};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{MutexGuard, Once, OnceLock};

thread_local! {
    /// The global runtime's lock, held across `fork()` by the forking
    /// thread (the prepare handler and the parent/child handlers run on it).
    static HELD: RefCell<Option<MutexGuard<'static, Shared>>> = const { RefCell::new(None) };
    /// Its wait words' locks (the portable wait's), held likewise.
    static WORDS_HELD: RefCell<Vec<MutexGuard<'static, ()>>> = const { RefCell::new(Vec::new()) };
}

/// Forks this process image has gone through as a child: a value read in
/// the parent differs in the child, without a `getpid` system call (which
/// costs more than a hub publish on a virtual machine).
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// What a layer above the runtime does around `fork()`: `before` on the
/// forking thread just before it (take its lock), `parent` and `child`
/// after it on each side (release it; in the child, forget what belongs to
/// the parent's threads). Plain functions: what may run in a child right
/// after `fork()`.
#[derive(Debug, Clone, Copy)]
pub struct ForkHandlers {
    pub before: fn(),
    pub parent: fn(),
    pub child: fn(),
}

/// The layers' handlers (two listeners' crate needs one).
static JOINED: [OnceLock<ForkHandlers>; 4] = [const { OnceLock::new() }; 4];

/// Adds `handlers` to the fork handlers, for the life of the process.
/// Call it once per layer.
pub fn join(handlers: ForkHandlers) {
    register_fork_handlers();
    if !JOINED.iter().any(|slot| slot.set(handlers).is_ok()) {
        warn!("too many fork handlers; a forked child inherits a layer's state");
    }
}

fn joined() -> impl Iterator<Item = &'static ForkHandlers> {
    JOINED.iter().filter_map(OnceLock::get)
}

/// This process's fork generation. Meaningful once
/// [`register_fork_handlers`] has run.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Registers the fork handlers once per process image.
pub fn register_fork_handlers() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: the three handlers are `extern "C" fn()` that live for the
        // whole program. `before_fork` only takes a lock that is never held
        // across user code or a blocking call; the others release it and
        // (in the child) make plain stores, which is what a handler running
        // in the child right after fork may do.
        let status = unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(after_fork_in_child),
            )
        };
        if status != 0 {
            warn!(
                "pthread_atfork failed ({status}); forked children will inherit the parent's state"
            );
        }
    });
}

extern "C" fn before_fork() {
    if let Some(runtime) = Runtime::global_if_created() {
        let guard = lock(&runtime.inner.shared);
        HELD.with(|held| *held.borrow_mut() = Some(guard));
        let words = runtime.inner.hold_wait_words_across_fork();
        WORDS_HELD.with(|held| *held.borrow_mut() = words);
    }
    for handlers in joined() {
        (handlers.before)();
    }
}

extern "C" fn after_fork_in_parent() {
    for handlers in joined() {
        (handlers.parent)();
    }
    WORDS_HELD.with(|held| held.borrow_mut().clear());
    HELD.with(|held| drop(held.borrow_mut().take()));
}

extern "C" fn after_fork_in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    // The words' locks first: the reset below wakes on the phase word.
    WORDS_HELD.with(|held| held.borrow_mut().clear());
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if let (Some(runtime), Some(shared)) = (Runtime::global_if_created(), held.as_mut()) {
            runtime.reset_after_fork(shared);
        }
        for handlers in joined() {
            (handlers.child)();
        }
        drop(held.take());
    });
    crate::signals::reset_signal_count();
    // This thread may be a listener's or a hook's, forking from inside it.
    crate::callback_scope::forget_after_fork();
    crate::host_calls::HostCalls::forget_own_calls_after_fork();
}
