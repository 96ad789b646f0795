//! The probe listener on the listeners' one skeleton (`listener.rs`: bound
//! on the caller's thread, served by a thread of its own), with hyper's
//! HTTP/1 server. No host code runs there except readiness checks, which
//! run on the runtime's blocking threads, bounded in time.
//!
//! Costs, bounded: one thread (plus up to [`MAX_BLOCKING`] for readiness
//! checks, started only when a check runs), at most [`MAX_CONNECTIONS`]
//! connections at once, [`MAX_BUFFER`] bytes of buffer each, headers within
//! [`HEADER_TIMEOUT`], and a connection lives at most
//! [`CONNECTION_LIFETIME`]. The stream counter's hot path is not touched.
//!
//! The port must answer the kubelet under any flood (any pod in the cluster
//! can reach it): at the cap, a new connection closes the oldest one that
//! has not sent a request (`connections.rs`), so that idle or slow clients
//! cannot hold the port; the kubelet opens a connection and sends its
//! request at once, and is answered.

use super::options::{ProbeOptions, PROBE_ADDR};
use super::routes::{self, Settings};
use crate::connections::{Connections, Slot};
use crate::error::Error;
use crate::listener::{self, Spec};
use crate::runtime::{lock, Runtime};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const MAX_CONNECTIONS: usize = 256;
const MAX_BLOCKING: usize = 8;
const MAX_BUFFER: usize = 16 * 1024;
/// Four tiny routes, asked by clients that send their whole request at
/// once: whoever takes longer is not a probe.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Starts the probe listener of `runtime`, once per process; returns the
/// address it listens on and prints `probes on http://ADDR` on stdout.
pub(crate) fn start(runtime: &Runtime, options: ProbeOptions) -> Result<SocketAddr, Error> {
    let mut shared = lock(&runtime.http.state);
    listener::refuse_if_started(shared.probe_listener.as_ref())?;
    let addr = options.socket_addr()?;
    let spec = Spec {
        thread: "last-call-probes",
        what: "the probe listener",
        variable: PROBE_ADDR,
        blocking: Some((MAX_BLOCKING, "last-call-probe-check")),
    };
    let mut bound = listener::bind(spec, &options.addr, addr, runtime.worker_processes())?;
    let settings = Arc::new(Settings {
        drain_token: options.drain_token,
        heartbeat_stale_after: options.heartbeat_stale_after,
    });
    let runtime_served = Arc::new(runtime.clone());
    let connections = Connections::new(MAX_CONNECTIONS);
    bound.accept(move |stream| {
        let Some(slot) = connections.admit() else {
            return; // every connection busy: dropping the stream closes it
        };
        let slot = Arc::new(slot);
        let task = tokio::spawn(serve(
            stream,
            Arc::clone(&runtime_served),
            Arc::clone(&settings),
            Arc::clone(&slot),
        ));
        slot.set_task(task.abort_handle());
    });
    let started = bound.run(runtime)?;
    shared.probe_listener = Some(started);
    drop(shared);
    listener::announce("probes", started.addr);
    Ok(started.addr)
}

/// One connection, answered by hyper, within its bounds.
async fn serve(
    stream: tokio::net::TcpStream,
    runtime: Arc<Runtime>,
    settings: Arc<Settings>,
    slot: Arc<Slot>,
) {
    let service_slot = Arc::clone(&slot);
    let service = service_fn(move |request| {
        let runtime = Arc::clone(&runtime);
        let settings = Arc::clone(&settings);
        let slot = Arc::clone(&service_slot);
        async move {
            // Answering: not to be shed for a newcomer.
            let _busy = slot.busy();
            Ok::<_, Infallible>(routes::answer(&runtime, &settings, request).await)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_BUFFER)
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
    drop(slot);
}
