//! The listener: bound on the caller's thread (so that a bad address or a
//! port in use is an error the caller sees at once), then served by one
//! thread of its own running a single-threaded tokio runtime and hyper's
//! HTTP/1 server. No host code runs there except readiness checks, which
//! run on the runtime's blocking threads, bounded in time.
//!
//! Costs, bounded: one thread (plus up to [`MAX_BLOCKING`] for readiness
//! checks, started only when a check runs), at most [`MAX_CONNECTIONS`]
//! connections at once (more are closed at once), [`MAX_BUFFER`] bytes of
//! buffer each, headers within [`HEADER_TIMEOUT`], and a connection lives at
//! most [`CONNECTION_LIFETIME`]. The stream counter's hot path is not
//! touched.

use super::options::{ProbeOptions, PROBE_ADDR};
use super::routes::{self, Settings};
use crate::config::ConfigError;
use crate::error::Error;
use crate::log::warn;
use crate::runtime::{lock, Runtime};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MAX_CONNECTIONS: usize = 256;
const MAX_BLOCKING: usize = 8;
const MAX_BUFFER: usize = 16 * 1024;
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// A running probe listener, recorded in the runtime's shared state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProbeListener {
    pub(crate) addr: SocketAddr,
    pub(crate) pid: i32,
}

/// The process-wide runtime's listening socket, closed in a forked child.
static GLOBAL_LISTENER_FD: AtomicI32 = AtomicI32::new(-1);

/// In a forked child: the parent's listener is not the child's to serve.
/// `close` is async-signal-safe.
pub(crate) fn close_listener_after_fork() {
    let fd = GLOBAL_LISTENER_FD.swap(-1, Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: the fd was the listener's in the parent and is inherited
        // by the child, where nothing else uses it (no thread serves it).
        unsafe { libc::close(fd) };
    }
}

fn cannot_listen(options: &ProbeOptions, reason: String) -> Error {
    Error::Config(ConfigError {
        variable: PROBE_ADDR,
        value: options.addr.clone(),
        reason,
    })
}

/// Starts the probe listener of `runtime`, once per process; returns the
/// address it listens on and prints `probes on http://ADDR` on stdout.
pub(crate) fn start(runtime: &Runtime, options: ProbeOptions) -> Result<SocketAddr, Error> {
    let pid = std::process::id() as i32;
    let mut shared = lock(&runtime.inner.shared);
    if let Some(running) = shared.probe_listener.filter(|l| l.pid == pid) {
        return Err(Error::AlreadyStarted(running.addr));
    }
    let addr = options.socket_addr()?;
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| cannot_listen(&options, format!("cannot listen: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| cannot_listen(&options, format!("cannot listen: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| cannot_listen(&options, e.to_string()))?;
    let fd = listener.as_raw_fd();
    let settings = Arc::new(Settings {
        drain_token: options.drain_token,
        heartbeat_stale_after: options.heartbeat_stale_after,
    });
    let served = runtime.clone();
    std::thread::Builder::new()
        .name("last-call-probes".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let tokio = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .max_blocking_threads(MAX_BLOCKING)
                    .thread_name("last-call-probe-check")
                    .build();
                match tokio {
                    Ok(tokio) => tokio.block_on(serve(listener, served, settings)),
                    Err(error) => warn!("the probe listener could not start: {error}"),
                }
            }));
            if result.is_err() {
                warn!("the probe listener failed; please report this");
            }
        })
        .map_err(Error::Os)?;
    shared.probe_listener = Some(ProbeListener { addr: bound, pid });
    if runtime.is_global() {
        GLOBAL_LISTENER_FD.store(fd, Ordering::Relaxed);
    }
    drop(shared);
    // The announcement the hosts and tests look for; a closed stdout is not
    // an error worth failing the listener for.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "probes on http://{bound}");
    let _ = stdout.flush();
    Ok(bound)
}

async fn serve(listener: std::net::TcpListener, runtime: Runtime, settings: Arc<Settings>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            warn!("the probe listener could not start: {error}");
            return;
        }
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let runtime = Arc::new(runtime);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors, or the like: back off briefly
                // instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            continue; // over the bound: dropping the stream closes it
        };
        let _ = stream.set_nodelay(true);
        let runtime = Arc::clone(&runtime);
        let settings = Arc::clone(&settings);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let runtime = Arc::clone(&runtime);
                let settings = Arc::clone(&settings);
                async move { Ok::<_, Infallible>(routes::answer(&runtime, &settings, request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_BUFFER)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(permit);
        });
    }
}
