//! The one skeleton of the runtime's HTTP listeners (the probe listener and
//! the stream hub): what they do alike, written once.
//!
//! * **bind** on the caller's thread, so that a bad address or a port in
//!   use is an error the caller sees at once, naming the variable it came
//!   from;
//! * **one thread** of its own, named, running a single-threaded tokio
//!   runtime for the life of the process, inside a panic boundary;
//! * **accept** with a short back-off when accepting fails (out of file
//!   descriptors, or the like) instead of spinning;
//! * **fork**: the process-wide runtime's listening sockets are closed in a
//!   forked child, which does not have the parent's threads to serve them;
//! * **once per process**: a listener started in this process image is
//!   [`Started`] there; a forked child's copy of the record is not, and the
//!   child may start its own (one rule for both listeners: the fork
//!   generation, no `getpid`);
//! * the **announcement** on stdout (`probes on http://ADDR`) the hosts and
//!   tests look for, once the listener is ready.

use crate::config::ConfigError;
use crate::error::Error;
use crate::log::warn;
use crate::runtime::Runtime;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// What tells one listener from the other.
pub(crate) struct Spec {
    /// The thread's name.
    pub(crate) thread: &'static str,
    /// What a failure is logged as: `the probe listener`.
    pub(crate) what: &'static str,
    /// The variable the address comes from, named by a bind error.
    pub(crate) variable: &'static str,
    /// Threads for blocking calls (readiness checks) and their name; `None`
    /// leaves tokio's default (the hub runs no blocking call).
    pub(crate) blocking: Option<(usize, &'static str)>,
}

/// A listener started in some process image: in this one only if its fork
/// generation is this process's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started {
    pub(crate) addr: SocketAddr,
    generation: u64,
}

impl Started {
    pub(crate) fn in_this_process(&self) -> bool {
        self.generation == crate::fork::generation()
    }
}

/// [`Error::AlreadyStarted`] if `started` runs in this process.
pub(crate) fn refuse_if_started(started: Option<&Started>) -> Result<(), Error> {
    match started.filter(|started| started.in_this_process()) {
        Some(running) => Err(Error::AlreadyStarted(running.addr)),
        None => Ok(()),
    }
}

/// A bound socket and the runtime that will serve it, on the caller's
/// thread: tasks may be spawned on it (its [`Bound::handle`]) before it
/// runs.
pub(crate) struct Bound {
    spec: Spec,
    listener: Option<tokio::net::TcpListener>,
    tokio: tokio::runtime::Runtime,
    fd: i32,
    started: Started,
}

/// Connections the kernel queues for each listener's accept loop (the
/// probe port's and the hub's).
pub const LISTEN_BACKLOG: &str = "GS_LISTEN_BACKLOG";

/// The default [`LISTEN_BACKLOG`]. std's `TcpListener::bind` asks for 128:
/// a wave of reconnections (thousands of clients handed off by a draining
/// pod at once) overflowed it, and each overflowed client waited for a SYN
/// retransmission (1 s, then 3 s). The kernel caps what is asked at
/// `net.core.somaxconn` (4096 by default).
const DEFAULT_BACKLOG: i32 = 1024;
/// The largest [`LISTEN_BACKLOG`] (the kernel's own ceiling for
/// `somaxconn`).
const MAX_BACKLOG: i32 = 65_535;

/// The backlog to listen with: [`LISTEN_BACKLOG`], else the default; a
/// value that is not a whole number from 1 to 65,535 is refused naming it.
fn backlog() -> Result<i32, ConfigError> {
    let Some(raw) = crate::env_text::text(LISTEN_BACKLOG)? else {
        return Ok(DEFAULT_BACKLOG);
    };
    match raw.trim().parse::<i32>() {
        Ok(value) if (1..=MAX_BACKLOG).contains(&value) => Ok(value),
        _ => Err(ConfigError {
            variable: LISTEN_BACKLOG,
            value: raw,
            reason:
                "expected a whole number from 1 to 65535 (the kernel caps it at net.core.somaxconn)"
                    .into(),
        }),
    }
}

/// A listening socket on `addr` with `backlog` (and `SO_REUSEADDR`,
/// as std sets it, so that a restarted process can listen at once; and
/// `SO_REUSEPORT` when sibling worker processes share the port, see
/// `workers.rs`).
fn listen(
    addr: SocketAddr,
    share_port: bool,
    backlog: i32,
) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if share_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Binds `addr` (`value` is what the operator wrote, for the error) and
/// builds the listener's runtime. With `workers` > 1 worker processes the
/// port is shared with the siblings (`SO_REUSEPORT`), and port 0 is refused:
/// each would pick a port of its own.
pub(crate) fn bind(
    spec: Spec,
    value: &str,
    addr: SocketAddr,
    workers: u32,
) -> Result<Bound, Error> {
    // A fork from now on changes the generation in the child.
    crate::fork::register_fork_handlers();
    let cannot_listen = |reason: String| {
        Error::Config(ConfigError {
            variable: spec.variable,
            value: value.to_owned(),
            reason,
        })
    };
    if workers > 1 && addr.port() == 0 {
        return Err(cannot_listen(format!(
            "port 0 with {workers} worker processes: each would listen on a port of its own; give the port"
        )));
    }
    let backlog = backlog().map_err(Error::Config)?;
    let listener = listen(addr, workers > 1, backlog)
        .map_err(|e| cannot_listen(format!("cannot listen: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| cannot_listen(format!("cannot listen: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| cannot_listen(e.to_string()))?;
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    if let Some((threads, name)) = spec.blocking {
        builder.max_blocking_threads(threads).thread_name(name);
    }
    let tokio = builder.build().map_err(Error::Os)?;
    let fd = listener.as_raw_fd();
    let listener = {
        let _entered = tokio.enter();
        tokio::net::TcpListener::from_std(listener).map_err(Error::Os)?
    };
    Ok(Bound {
        spec,
        listener: Some(listener),
        tokio,
        fd,
        started: Started {
            addr: bound,
            generation: crate::fork::generation(),
        },
    })
}

impl Bound {
    /// The listener as started in this process, once it runs: its
    /// address (port 0 picked a free one) and its process image.
    pub(crate) fn started(&self) -> Started {
        self.started
    }

    /// The listener's event loop, for tasks started from other threads.
    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        self.tokio.handle()
    }

    /// Accepts connections (with `TCP_NODELAY`) and gives each to
    /// `connection`, on the listener's runtime once it runs. Returns what
    /// stops accepting.
    pub(crate) fn accept(
        &mut self,
        mut connection: impl FnMut(tokio::net::TcpStream) + Send + 'static,
    ) -> tokio::task::AbortHandle {
        let listener = self.listener.take().expect("accept is called once");
        let accepting = self.tokio.spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of file descriptors, or the like: back off
                        // briefly instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                connection(stream);
            }
        });
        accepting.abort_handle()
    }

    /// The listening socket itself (non-blocking), no longer in this
    /// runtime's event loop: for a listener that accepts on threads of its
    /// own (the hub's writers).
    pub(crate) fn take_listener(&mut self) -> std::io::Result<std::net::TcpListener> {
        self.listener
            .take()
            .expect("the listener is taken once")
            .into_std()
    }

    /// Starts the listener's thread, which runs its runtime for the life of
    /// the process, and (for the process-wide runtime) has its socket
    /// closed in a forked child. Announce it with [`announce`] once the
    /// caller has recorded it.
    pub(crate) fn run(self, runtime: &Runtime) -> Result<Started, Error> {
        let Bound {
            spec,
            tokio,
            fd,
            started,
            ..
        } = self;
        let what = spec.what;
        // Signals are the host's threads' to take: this thread is born
        // with them blocked (and the blocking threads it starts inherit it).
        last_call_runtime::spawn_without_signals(
            std::thread::Builder::new().name(spec.thread.into()),
            move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    tokio.block_on(std::future::pending::<()>());
                }));
                if result.is_err() {
                    warn!("{what} failed; please report this");
                }
            },
        )
        .map_err(Error::Os)?;
        if runtime.is_global() {
            close_in_a_forked_child(fd);
        }
        Ok(started)
    }
}

/// One connection from `listener`, non-blocking and close-on-exec from the
/// start (`accept4`; std's `accept` would give a blocking socket, and one
/// more system call to change it).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) fn accept_nonblocking(
    listener: &std::net::TcpListener,
) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::FromRawFd;
    // SAFETY: accept4 on the listener's open descriptor, with no address
    // wanted (both pointers null).
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a connected socket that accept4 just opened, owned by
    // nothing else: the stream takes it over.
    Ok(unsafe { std::net::TcpStream::from_raw_fd(fd) })
}

/// One connection from `listener`, non-blocking (macOS has no `accept4`:
/// std's `accept` sets close-on-exec, and one more call the rest).
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) fn accept_nonblocking(
    listener: &std::net::TcpListener,
) -> std::io::Result<std::net::TcpStream> {
    let (stream, _) = listener.accept()?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// Prints `<word> on http://ADDR` on stdout: the line the hosts and tests
/// wait for. A closed stdout is not an error worth failing a listener for.
pub(crate) fn announce(word: &str, addr: SocketAddr) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{word} on http://{addr}");
    let _ = stdout.flush();
}

/// The process-wide runtime's listening sockets (-1: a free slot); two
/// listeners use two.
static LISTENING: [AtomicI32; 4] = [const { AtomicI32::new(-1) }; 4];

fn close_in_a_forked_child(fd: i32) {
    for slot in &LISTENING {
        if slot
            .compare_exchange(-1, fd, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
    warn!("more listeners than expected: a forked child keeps one of them open");
}

/// In a forked child: the parent's listeners are not the child's to serve.
/// Only `close`, which is async-signal-safe.
pub(crate) fn close_after_fork() {
    for slot in &LISTENING {
        let fd = slot.swap(-1, Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: the fd was a listener's in the parent and is
            // inherited by the child, where nothing else uses it (no thread
            // serves it).
            unsafe { libc::close(fd) };
        }
    }
}
