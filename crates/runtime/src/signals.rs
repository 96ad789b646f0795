//! SIGTERM/SIGINT handling for the process-wide runtime.
//!
//! # What runs in the signal handler
//!
//! Only async-signal-safe work:
//!
//! 1. `getpid()` and atomic loads, to tell whether this process installed
//!    the handling (a forked child that has not is left to the disposition
//!    found at install);
//! 2. the compare-and-swap that moves the phase word to Draining with the
//!    "sequence started" bit, `clock_gettime` to stamp the start, and one
//!    `FUTEX_WAKE` system call that wakes every thread asleep on the phase
//!    word (the sequence, delivery and watchdog threads, the host's
//!    waits); with the portable wait (no futex: macOS, the BSDs, the
//!    `portable-wait` feature), whose wake takes a mutex, one non-blocking
//!    `write` of a byte to a pipe instead, whose reader thread (a runtime
//!    thread) wakes them (`signal_relay.rs`);
//! 3. counting the signal in an atomic: the *first signal received* starts
//!    the sequence (a no-op if `begin_shutdown()` or a manual drain came
//!    first: those are not signals), and only the *second signal received*
//!    is subject to the second-signal policy, which may `_exit(128 + signal)`.
//!
//! No allocation, no lock, no formatting, no `std::io`. `errno` is saved and
//! restored. Everything else (the drain delay, the waits, the hooks) happens
//! on the core thread. With the futex the wake-up is on process-private
//! memory, so the handler needs no file descriptor; with the portable wait
//! each process that installs the handling makes its own pipe, so a forked
//! child cannot wake its parent through one either.
//!
//! # Chaining
//!
//! Handlers are registered through `signal-hook-registry`, which keeps the
//! handler that was installed before ours and calls it first (for Python,
//! its own SIGINT handler that raises `KeyboardInterrupt`). `SIG_DFL` and
//! `SIG_IGN` are not "called": a default SIGTERM does not kill the process
//! once we handle it, which is the point.

use crate::config::{Config, SecondSignal};
use crate::error::Error;
use crate::runtime::{lock, Runtime};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU8, Ordering};
use std::sync::Mutex;

/// The process that installed the handling (0: none). A forked child sees
/// its parent's pid here until it installs its own.
static INSTALLED_PID: AtomicI32 = AtomicI32::new(0);
static SECOND_SIGNAL: AtomicU8 = AtomicU8::new(SecondSignal::SigintExits as u8);
static SIGINT_STARTS_SEQUENCE: AtomicBool = AtomicBool::new(true);
/// Whether SIGTERM / SIGINT had their default disposition before we
/// registered: what "behave as without us" means for them.
static TERM_WAS_DEFAULT: AtomicBool = AtomicBool::new(true);
static INT_WAS_DEFAULT: AtomicBool = AtomicBool::new(true);
/// Signals received by this process since it installed the handling.
static SIGNALS_RECEIVED: AtomicU32 = AtomicU32::new(0);
/// The signal that started the sequence (0: none did), for the shutdown
/// log's first line.
static BEGUN_BY: AtomicI32 = AtomicI32::new(0);
/// The signal-hook registrations survive fork (they are process memory), so
/// they are made once per program image.
static REGISTERED: Mutex<bool> = Mutex::new(false);

/// Spawns one of the runtime's own threads (its core threads, hook
/// threads, the listeners' threads, and so the threads those start, which
/// inherit the mask) with SIGTERM and SIGINT blocked from its birth: they
/// are blocked in the calling thread around the spawn (a new thread
/// inherits its creator's mask), and the caller's mask is put back after.
///
/// A process-directed signal goes to any thread that does not block it. A
/// host that holds SIGTERM during its start (blocked in its main thread,
/// pending until the runtime's handling is installed) had it delivered to
/// the hub's thread instead, started a moment before, where the default
/// disposition killed the process. Blocking it as the new thread's first
/// instruction was not enough: the kernel hands the signal to the new
/// thread as soon as the main thread blocks it, and a thread not yet
/// scheduled (a loaded machine) takes it on its way to user space, before
/// any instruction of its own (`bindings/python/tests/test_hub.py` forces
/// that order). The runtime's threads never take the signals: the host's
/// threads do, where the host expects them.
pub fn spawn_without_signals<F, T>(
    builder: std::thread::Builder,
    body: F,
) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: both sets are initialized before use (sigemptyset, and the
    // old mask written by the first pthread_sigmask); pthread_sigmask only
    // changes the calling thread's mask, and the second call restores it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous);
        let spawned = builder.spawn(body);
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        spawned
    }
}

fn was_default(signal: libc::c_int) -> bool {
    // SAFETY: a zeroed sigaction is a valid out-parameter; passing NULL as
    // the new action only queries the current one.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_DFL
    }
}

/// Installs SIGTERM (and, per `config.handle_sigint`, SIGINT) handling that
/// starts the shutdown sequence of [`Runtime::global`], and configures the
/// sequence with `config`.
///
/// Succeeds once per process: a second call in the same process returns
/// [`Error::AlreadyInstalled`] and changes nothing. A forked child may (and
/// must, to get handling) install its own.
pub fn install_signal_handlers(config: Config) -> Result<(), Error> {
    let runtime = Runtime::global();
    let mut registered = lock(&REGISTERED);
    let pid = std::process::id() as i32;
    if INSTALLED_PID.load(Ordering::Acquire) == pid {
        return Err(Error::AlreadyInstalled);
    }
    runtime.configure(config.clone())?;
    SECOND_SIGNAL.store(config.second_signal as u8, Ordering::Relaxed);
    SIGINT_STARTS_SEQUENCE.store(config.handle_sigint, Ordering::Relaxed);
    runtime.ensure_threads()?;
    crate::signal_relay::start_if_needed(runtime)?;
    runtime.arm_exit_watchdog()?;
    if !*registered {
        TERM_WAS_DEFAULT.store(was_default(libc::SIGTERM), Ordering::Relaxed);
        INT_WAS_DEFAULT.store(was_default(libc::SIGINT), Ordering::Relaxed);
        for signal in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: `on_signal` is async-signal-safe (see the module docs):
            // it uses getpid, atomics, clock_gettime, the futex system call
            // (or a write to the relay's pipe) and _exit, and never
            // allocates or locks.
            unsafe { signal_hook_registry::register(signal, move || on_signal(signal)) }
                .map_err(Error::Os)?;
        }
        *registered = true;
    }
    SIGNALS_RECEIVED.store(0, Ordering::Relaxed);
    INSTALLED_PID.store(pid, Ordering::Release);
    Ok(())
}

/// Forgets the signals received: for a forked child (whose handling is not
/// installed yet) and for the testing reset.
pub(crate) fn reset_signal_count() {
    SIGNALS_RECEIVED.store(0, Ordering::Relaxed);
    BEGUN_BY.store(0, Ordering::Relaxed);
}

/// The signal that started the running sequence, if one did (rather than
/// `begin_shutdown`).
pub(crate) fn signal_that_began() -> Option<libc::c_int> {
    Some(BEGUN_BY.load(Ordering::Acquire)).filter(|signal| *signal != 0)
}

/// Whether this process has installed signal handling.
pub fn signal_handlers_installed() -> bool {
    INSTALLED_PID.load(Ordering::Acquire) == std::process::id() as i32
}

/// This thread's errno slot (its name differs between libcs).
fn errno_slot() -> *mut libc::c_int {
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    // SAFETY: returns this thread's errno slot, valid for the thread's life.
    let slot = unsafe { libc::__error() };
    #[cfg(not(any(target_os = "macos", target_os = "ios", target_os = "freebsd")))]
    // SAFETY: as above.
    let slot = unsafe { libc::__errno_location() };
    slot
}

fn on_signal(signal: libc::c_int) {
    // SAFETY: the slot is valid for the thread's lifetime; we put back what
    // we found.
    let errno = unsafe { *errno_slot() };
    handle(signal);
    // SAFETY: as above.
    unsafe { *errno_slot() = errno };
}

fn handle(signal: libc::c_int) {
    // SAFETY: getpid is async-signal-safe and cannot fail.
    let pid = unsafe { libc::getpid() };
    let ours = INSTALLED_PID.load(Ordering::Acquire) == pid
        && (signal != libc::SIGINT || SIGINT_STARTS_SEQUENCE.load(Ordering::Relaxed));
    if !ours {
        let was_default = if signal == libc::SIGINT {
            &INT_WAS_DEFAULT
        } else {
            &TERM_WAS_DEFAULT
        };
        if was_default.load(Ordering::Relaxed) {
            // As if we were not here. Terminates the process for SIGTERM and
            // SIGINT; documented by signal-hook as async-signal-safe.
            let _ = terminate_as_by_default(signal);
        }
        return;
    }
    let Some(runtime) = Runtime::global_if_created() else {
        return;
    };
    let received = SIGNALS_RECEIVED
        .fetch_add(1, Ordering::AcqRel)
        .saturating_add(1);
    if received == 1 {
        // The first signal: start the sequence, or nothing if a call
        // already did. Where the wake takes a lock (the portable wait),
        // the relay thread wakes the sleepers instead of this handler.
        // Noted first, for the shutdown log (a begin_shutdown racing this
        // handler within the same instant may be named as the signal).
        if !runtime.inner.phase.load().sequence_started() {
            BEGUN_BY.store(signal, Ordering::Release);
        }
        if runtime.inner.phase.begin_sequence_from_signal() {
            crate::signal_relay::poke();
        }
        return;
    }
    let exits = match SECOND_SIGNAL.load(Ordering::Relaxed) {
        x if x == SecondSignal::Exit as u8 => true,
        x if x == SecondSignal::Ignore as u8 => false,
        _ => signal == libc::SIGINT,
    };
    if exits {
        // SAFETY: _exit is async-signal-safe; ending at once is the
        // configured meaning of a second signal.
        unsafe { libc::_exit(128 + signal) };
    }
}

/// Runs the default action of a terminating signal from inside a handler:
/// restore SIG_DFL and re-raise. The signal is blocked while its handler
/// runs, so the re-raised one is delivered (and ends the process) as soon as
/// the handler returns.
fn terminate_as_by_default(signal: libc::c_int) -> libc::c_int {
    // SAFETY: signal() and raise() are async-signal-safe. Replacing the
    // disposition is final for this process, which is about to terminate.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the calling thread blocks `signal`.
    fn blocks(signal: libc::c_int) -> bool {
        // SAFETY: a query (NULL new set) into a zeroed set, which
        // pthread_sigmask fills.
        unsafe {
            let mut current: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current);
            libc::sigismember(&current, signal) == 1
        }
    }

    #[test]
    fn a_runtime_thread_blocks_the_signals_from_its_first_instruction_and_its_creator_keeps_its_mask(
    ) {
        assert!(!blocks(libc::SIGTERM) && !blocks(libc::SIGINT));
        let seen = spawn_without_signals(std::thread::Builder::new(), || {
            (blocks(libc::SIGTERM), blocks(libc::SIGINT))
        })
        .unwrap()
        .join()
        .unwrap();
        assert_eq!(seen, (true, true));
        assert!(!blocks(libc::SIGTERM) && !blocks(libc::SIGINT));
    }
}
