//! The signal handler's wake-up where waking is not async-signal-safe.
//!
//! With the futex, the handler wakes the threads that sleep on the phase
//! word itself (one `FUTEX_WAKE`). The portable wait (std's `Mutex` and
//! `Condvar`: macOS, the BSDs, the `portable-wait` feature) wakes under a
//! mutex, and a handler that takes it on a thread already inside a wait or
//! a wake on the same word waits for itself for ever (3 processes of 600
//! hung in Serving before this). There, the handler only moves the phase
//! word (atomics) and writes one byte to a pipe (`write` is
//! async-signal-safe; the pipe's write end is non-blocking, and a full pipe
//! already holds a wake-up); this module's thread reads it and wakes the
//! sleepers.
//!
//! The pipe and the thread belong to the process that made them: a forked
//! child that installs its signal handling makes its own (the parent's
//! thread does not exist in it, and its byte would wake the parent). The
//! parent's descriptors stay open in the child, unused: closing them later
//! could close a descriptor the host has reused by then. Both ends are
//! close-on-exec.

use crate::error::Error;
use crate::runtime::Runtime;
use std::sync::atomic::{AtomicI32, Ordering};

/// The pipe's write end, for [`poke`].
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
/// The process whose relay thread reads the pipe (0: none).
static RELAY_PID: AtomicI32 = AtomicI32::new(0);

/// Starts the relay in this process if it needs one and has none: the
/// handler's wake is not async-signal-safe (the portable wait).
pub(crate) fn start_if_needed(runtime: &'static Runtime) -> Result<(), Error> {
    if crate::wait_word::WaitWord::WAKE_IS_ASYNC_SIGNAL_SAFE {
        return Ok(());
    }
    let pid = std::process::id() as i32;
    if RELAY_PID.load(Ordering::Acquire) == pid {
        return Ok(());
    }
    let (read_fd, write_fd) = pipe()?;
    let spawned = crate::signals::spawn_without_signals(
        std::thread::Builder::new().name("last-call-signal".into()),
        move || relay(runtime, read_fd),
    );
    if let Err(error) = spawned {
        // SAFETY: our two descriptors, closed once; nothing else has them.
        unsafe {
            libc::close(read_fd);
            libc::close(write_fd);
        }
        return Err(Error::Os(error));
    }
    WRITE_FD.store(write_fd, Ordering::Release);
    RELAY_PID.store(pid, Ordering::Release);
    Ok(())
}

/// From the signal handler: asks the relay thread to wake the sleepers.
/// Async-signal-safe: `getpid`, atomic loads and one non-blocking `write`.
pub(crate) fn poke() {
    // SAFETY: getpid is async-signal-safe and cannot fail.
    let pid = unsafe { libc::getpid() };
    if RELAY_PID.load(Ordering::Acquire) != pid {
        return;
    }
    let byte = 1u8;
    // SAFETY: one byte from the stack to our pipe; the write end is
    // non-blocking, and its read end is open for the life of the process
    // (no SIGPIPE). A full pipe (EAGAIN) already holds a wake-up.
    unsafe {
        libc::write(
            WRITE_FD.load(Ordering::Acquire),
            (&raw const byte).cast(),
            1,
        )
    };
}

fn relay(runtime: &'static Runtime, read_fd: libc::c_int) {
    let mut buffer = [0u8; 64];
    loop {
        // SAFETY: a valid buffer of its length; our descriptor.
        let read = unsafe { libc::read(read_fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        if read > 0 {
            runtime.inner.phase.wake_sleepers();
        } else if read == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return; // cannot happen: the write end is never closed
        }
    }
}

/// A pipe whose ends are close-on-exec and whose write end is non-blocking.
fn pipe() -> Result<(libc::c_int, libc::c_int), Error> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(Error::Os(std::io::Error::last_os_error()));
    }
    // pipe2 is not on macOS: the flags are set after, before any thread of
    // ours can exec (a host thread could, for a moment, inherit them).
    // SAFETY: fcntl on our own descriptors.
    unsafe {
        for fd in fds {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        let flags = libc::fcntl(fds[1], libc::F_GETFL);
        libc::fcntl(fds[1], libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    Ok((fds[0], fds[1]))
}
