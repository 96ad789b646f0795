//! The runtime's one writer of diagnostics: a line to stderr that never
//! panics, never blocks for long and never raises SIGPIPE.
//!
//! Every `warn!` line, and the exit watchdog's last line, goes through
//! [`write_line`]. The host owns stderr, and it may be anything: a pipe
//! that nobody reads (a full pipe blocks a plain `write` for ever, and the
//! watchdog's `_exit` came after one), a pipe whose reader has gone (a
//! plain `write` raises SIGPIPE, which kills a C host that left it at its
//! default), a socket, a terminal, a file, or closed. So:
//!
//! * the write is non-blocking without touching the host's descriptor: a
//!   socket is written with `send(MSG_DONTWAIT | MSG_NOSIGNAL)`; a pipe, a
//!   FIFO or a terminal through a descriptor of our own opened on
//!   `/proc/self/fd/2` with `O_NONBLOCK` (a new open file description:
//!   `O_NONBLOCK` on fd 2 itself, or on a `dup` of it, would change the
//!   host's own writes); a regular file is written directly (it does not
//!   block on a reader). Where none of that is possible (no `/proc`, not
//!   Linux), the line is written only when `poll` says the descriptor
//!   takes it now;
//! * SIGPIPE is blocked on the writing thread for the one write, and a
//!   SIGPIPE that the write raised (and only that one) is taken back
//!   before the mask is restored: the host's disposition is never changed;
//! * a line that is not written within a bounded retry (100 ms; none for
//!   the watchdog, whose `_exit` comes next) is dropped and counted
//!   ([`lines_dropped`], the metric `gs_log_lines_dropped_total`).
//!
//! One `write` per line of at most `PIPE_BUF` bytes, so that lines from
//! several threads do not interleave. No lock: a child forked while
//! another thread writes can write at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a line may wait for room in stderr before it is dropped.
const PATIENCE: Duration = Duration::from_millis(100);

/// Lines not written (in full) since the process started.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Lines the runtime could not write to stderr (blocked, closed, no
/// reader) since the process started.
pub fn lines_dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Writes `last-call: <message>` and a newline to stderr, waiting at most
/// 100 ms for room; drops (and counts) the line otherwise.
pub fn write_line(message: std::fmt::Arguments<'_>) {
    write_with_patience(message, PATIENCE);
}

/// As [`write_line`] but a single attempt: for the exit watchdog, whose
/// `_exit` must never wait behind stderr.
pub(crate) fn write_line_now(message: std::fmt::Arguments<'_>) {
    write_with_patience(message, Duration::ZERO);
}

fn write_with_patience(message: std::fmt::Arguments<'_>, patience: Duration) {
    let mut line = String::with_capacity(128);
    let _ = std::fmt::Write::write_fmt(&mut line, format_args!("last-call: {message}\n"));
    if !sink::write(line.as_bytes(), Instant::now() + patience) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// `warn!("...", args)`: see [`write_line`]. Exported for the layers
/// above (`use last_call_runtime::log::warn`).
#[doc(hidden)]
#[macro_export]
macro_rules! __last_call_warn {
    ($($arg:tt)*) => { $crate::log::write_line(format_args!($($arg)*)) };
}
pub use __last_call_warn as warn;

mod sink {
    //! The system calls behind [`super::write_line`].

    use std::io;
    use std::time::Instant;

    const STDERR: libc::c_int = libc::STDERR_FILENO;

    /// Writes all of `bytes` to stderr by `deadline`; false if it could
    /// not (then part of it may have been written).
    pub(super) fn write(bytes: &[u8], deadline: Instant) -> bool {
        // SAFETY: an all-zero `stat` is a valid value for fstat to fill.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `stat` is a valid, writable struct stat.
        if unsafe { libc::fstat(STDERR, &mut stat) } != 0 {
            return false; // stderr closed
        }
        let _sigpipe = SigpipeBlocked::new();
        match stat.st_mode & libc::S_IFMT {
            libc::S_IFREG => write_all(STDERR, bytes, deadline, Way::Write),
            #[cfg(target_os = "linux")]
            libc::S_IFSOCK => write_all(STDERR, bytes, deadline, Way::Send),
            _ => match OwnDescriptor::open() {
                Ok(own) => write_all(own.0, bytes, deadline, Way::Write),
                // A FIFO with no reader: nobody will read the line.
                Err(error) if error.raw_os_error() == Some(libc::ENXIO) => false,
                // No /proc (or not Linux): write only what fd 2 takes now.
                Err(_) => write_all(STDERR, bytes, deadline, Way::WhenReady),
            },
        }
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Way {
        /// `write` on a descriptor that does not block (ours, or a file).
        Write,
        /// `send` with MSG_DONTWAIT | MSG_NOSIGNAL (a socket).
        #[cfg(target_os = "linux")]
        Send,
        /// `write` on the host's descriptor, only after `poll` says it is
        /// writable.
        WhenReady,
    }

    fn write_all(fd: libc::c_int, mut bytes: &[u8], deadline: Instant, way: Way) -> bool {
        // Bounded: each turn writes something or waits in poll until the
        // deadline, and a turn after the deadline returns.
        loop {
            if bytes.is_empty() {
                return true;
            }
            if way == Way::WhenReady && !writable(fd, deadline) {
                return false;
            }
            let written = match way {
                // SAFETY: `bytes` is a valid buffer of its length.
                #[cfg(target_os = "linux")]
                Way::Send => unsafe {
                    libc::send(
                        fd,
                        bytes.as_ptr().cast(),
                        bytes.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                },
                // SAFETY: `bytes` is a valid buffer of its length.
                _ => unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) },
            };
            if written > 0 {
                bytes = &bytes[written as usize..];
                continue;
            }
            if written == 0 {
                return false; // takes nothing: do not spin
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) if way != Way::WhenReady => {
                    if !writable(fd, deadline) {
                        return false;
                    }
                }
                _ => return false, // EPIPE included: nobody reads
            }
        }
    }

    /// Waits (at most until `deadline`) for `fd` to take bytes.
    fn writable(fd: libc::c_int, deadline: Instant) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut entry = libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            let millis = left.as_millis().min(i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd.
            match unsafe { libc::poll(&mut entry, 1, millis) } {
                1 => return entry.revents & libc::POLLOUT != 0,
                0 => return false,
                _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
                    && !left.is_zero() => {}
                _ => return false,
            }
        }
    }

    /// A descriptor of our own on whatever fd 2 is, non-blocking, closed
    /// on drop.
    struct OwnDescriptor(libc::c_int);

    impl OwnDescriptor {
        #[cfg(target_os = "linux")]
        fn open() -> io::Result<OwnDescriptor> {
            // /proc/self/fd/2 opens the pipe or terminal anew (unlike
            // /dev/fd on other systems, which duplicates the descriptor).
            // O_NOCTTY: a terminal must not become our controlling one.
            // SAFETY: a NUL-terminated path.
            let fd = unsafe {
                libc::open(
                    c"/proc/self/fd/2".as_ptr(),
                    libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(OwnDescriptor(fd))
        }

        #[cfg(not(target_os = "linux"))]
        fn open() -> io::Result<OwnDescriptor> {
            Err(io::Error::from_raw_os_error(libc::ENOSYS))
        }
    }

    impl Drop for OwnDescriptor {
        fn drop(&mut self) {
            // SAFETY: our own descriptor, closed once.
            unsafe { libc::close(self.0) };
        }
    }

    /// SIGPIPE blocked on this thread while it lives; a SIGPIPE that came
    /// while it lived (and was not pending before) is taken back, so that
    /// it is never delivered to the host.
    struct SigpipeBlocked {
        old: libc::sigset_t,
        pending_before: bool,
    }

    fn sigpipe_set() -> libc::sigset_t {
        // SAFETY: sigemptyset initialises the set it is given.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            set
        }
    }

    fn sigpipe_pending() -> bool {
        // SAFETY: sigpending fills the set it is given.
        unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending) == 0 && libc::sigismember(&pending, libc::SIGPIPE) == 1
        }
    }

    impl SigpipeBlocked {
        fn new() -> SigpipeBlocked {
            let set = sigpipe_set();
            // SAFETY: a zeroed sigset_t is a valid place for the old mask.
            let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
            // SAFETY: valid sets; changes only this thread's mask.
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
            SigpipeBlocked {
                old,
                pending_before: sigpipe_pending(),
            }
        }
    }

    impl Drop for SigpipeBlocked {
        fn drop(&mut self) {
            if !self.pending_before && sigpipe_pending() {
                let set = sigpipe_set();
                // SAFETY: SIGPIPE is pending and blocked: sigwait returns
                // at once with it.
                unsafe {
                    let mut signal: libc::c_int = 0;
                    libc::sigwait(&set, &mut signal);
                }
            }
            // SAFETY: restores the mask saved in `new`.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_to_the_test_stderr_is_written_and_not_counted() {
        let before = lines_dropped();
        write_line(format_args!("log test line"));
        assert_eq!(lines_dropped(), before);
    }
}
