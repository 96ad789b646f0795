//! The hub's listener on the listeners' one skeleton (`listener.rs`: bound
//! on the caller's thread, a thread of its own), with hyper's HTTP/1 server.
//! Each connection is served by one of the writer threads (`writers.rs`):
//! the one that accepted it, or the one it was handed to (`accept.rs`),
//! which answers its request and writes its stream. No host code ever runs
//! there.
//!
//! `GET /streams/<channel>?token=...` (or `Authorization: Bearer ...`)
//! answers `text/event-stream`: `retry:`, the history after the client's
//! `Last-Event-ID` (header, or `?last_event_id=`), an `event: gap` first if
//! the history no longer reaches back, then live events and heartbeat
//! comments. A refused token is a 401/403 JSON error and no stream.
//!
//! hyper reads every request and writes every response head. A stream's
//! head says HTTP/1.0, whose body runs until the connection closes, so
//! that hyper has nothing more to write: the socket is taken back from it
//! (`without_shutdown`, `into_parts`) and the stream is written on it by a
//! task of its own. What a stream holds is then its socket, its queue and
//! its state, about 2 KB, instead of hyper's connection with its two
//! 8 KiB buffers (`examples/hub_memory` measures it).
//!
//! Each connection is one stream in the runtime's counter from the moment
//! it subscribes until the connection is finished: its last bytes written,
//! or the client gone, seen at once as the end of the socket's input (which
//! is watched all along; a client that sends anything more is closed).

use super::accept::{self, Listening};
use super::channel::{self, Channel, Read};
use super::channels::{self, Channels};
use super::frame::{self, Frame as SseFrame};
use super::options::{HubOptions, STREAM_ADDR, STREAM_STORE};
use super::request::{self, Ask, Subscription};
use super::shared::Shared;
use super::token::{self, TokenError};
use super::writers::{Handed, Placed, Writers};
use super::Hub;
use crate::connections::{Connections, Slot};
use crate::error::Error;
use crate::listener::{self, Spec};
use crate::phase::Phase;
use crate::reconnect_spread::StreamKind;
use crate::runtime::{lock, Runtime};
use bytes::{Buf, Bytes};
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Notify;
use tokio::time::Sleep;

const MAX_BUFFER: usize = 16 * 1024;
/// How long a subscriber waits for the shared store's readers to be placed
/// (at start-up) before it is served from what this pod holds.
const READERS_READY: Duration = Duration::from_secs(2);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that is not (yet) a stream lives at most this long: its
/// request read and answered, or closed.
const ANSWER_LIFETIME: Duration = Duration::from_secs(30);
/// Connections answered 503 at once, at most; each within
/// [`REFUSAL_LIFETIME`].
const MAX_REFUSING: usize = 64;
const REFUSAL_LIFETIME: Duration = Duration::from_secs(1);
const IDLE_EVICTION_EVERY: Duration = Duration::from_secs(10);

pub(super) fn start(runtime: &Runtime, options: HubOptions) -> Result<SocketAddr, Error> {
    let mut state = lock(&runtime.http.state);
    listener::refuse_if_started(state.hub.as_ref().map(|hub| &hub.started))?;
    let addr = options.validate()?;
    let workers = runtime.worker_processes();
    if workers > 1 && options.store == last_call_store::StoreUrl::Memory {
        return Err(Error::Config(crate::config::ConfigError {
            variable: STREAM_STORE,
            value: options.store.redacted(),
            reason: format!(
                "{workers} worker processes share this pod's hub port, and the in-process store would hold \
                 each worker's channels apart (a subscriber would miss the other workers' events): set a \
                 shared store (redis://...) or run one worker"
            ),
        }));
    }
    let spec = Spec {
        thread: "last-call-hub",
        what: "the stream hub",
        variable: STREAM_ADDR,
        blocking: None,
    };
    let store = last_call_store::RedisStore::with_tls(
        &options.store,
        &options.store_tls,
        last_call_store::Limits {
            history_len: options.history_len,
            history_age: options.history_age,
            history_bytes: options.max_channel_bytes,
            idle: options.channel_idle,
            ..last_call_store::Limits::default()
        },
    )
    .map_err(|error| {
        Error::Config(crate::config::ConfigError {
            variable: error.variable,
            value: error.value,
            reason: error.reason,
        })
    })?;
    let mut bound = listener::bind(spec, &options.addr, addr, runtime.worker_processes())?;
    let listening = Listening(Arc::new(bound.take_listener().map_err(Error::Os)?));
    // Each writer accepts, and serves what is handed to it, once the hub is
    // made (until then, what comes waits in the kernel's queue).
    let made: Arc<OnceLock<Arc<Hub>>> = Arc::default();
    let accepting: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
    let writers = Arc::new(
        Writers::start(options.threads, |index| {
            let (made, listening, accepting) =
                (Arc::clone(&made), listening.clone(), Arc::clone(&accepting));
            Box::new(move |handed| {
                tokio::spawn(serve_handed(handed, Arc::clone(&made)));
                let task = tokio::spawn(accept::on_writer(listening, made, index));
                lock(&accepting).push(task.abort_handle());
            })
        })
        .map_err(Error::Os)?,
    );
    // One copy of each recent event per channel: enough for a resume
    // (history) and for a live subscriber's lag (queue), whichever is more.
    let (channels, dispatch) = Channels::new(
        channel::Limits {
            len: options.history_len.max(options.queue_capacity),
            history: options.history_len,
            bytes: options.max_channel_bytes,
            age: options.history_age,
            idle: options.channel_idle,
        },
        options.max_channels,
        Arc::clone(&writers),
    );
    let channels = Arc::new(channels);
    bound
        .handle()
        .spawn(channels::dispatch_loop(dispatch, Arc::clone(&writers)));
    let shared = store.map(|store| {
        Shared::start(
            store,
            options.publish_queue,
            Arc::clone(&channels),
            bound.handle(),
        )
    });
    let max_connections = options.max_connections;
    let hub = Arc::new(Hub {
        runtime: runtime.clone(),
        options,
        channels,
        shared,
        writers,
        started: bound.started(),
        handle: bound.handle().clone(),
        connections: Connections::new(connection_cap(max_connections)),
        refusing: Arc::new(tokio::sync::Semaphore::new(MAX_REFUSING)),
        accepting: Arc::clone(&accepting),
    });
    let _ = made.set(Arc::clone(&hub));
    let sweeping = bound
        .handle()
        .spawn(accept::sweep(listening, Arc::clone(&hub)));
    lock(&accepting).push(sweeping.abort_handle());
    bound.handle().spawn(evict_idle_channels(Arc::clone(&hub)));
    let started = match bound.run(runtime) {
        Ok(started) => started,
        Err(error) => return Err(stop_accepting(&accepting, error)),
    };
    state.hub = Some(Arc::clone(&hub));
    drop(state);
    let listening_hub = Arc::clone(&hub);
    if let Err(error) = runtime.on_phase(move |change| listening_hub.on_phase(change)) {
        return Err(stop_accepting(&accepting, error));
    }
    listener::announce("streams", started.addr);
    Ok(started.addr)
}

/// A hub that failed to start after its writers began accepting: they stop
/// (their tasks hold the listening socket, which closes with the last, so
/// a retry can bind the port again).
fn stop_accepting(
    accepting: &std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
    error: Error,
) -> Error {
    for task in lock(accepting).drain(..) {
        task.abort();
    }
    error
}

/// File descriptors left to the rest of the process (the probe listener's
/// 256 connections, the host's own listener, files, the store).
const DESCRIPTORS_KEPT: u64 = 512;

/// `configured`, or less if the process's file-descriptor limit would run
/// out first: past it, accepting fails for every listener of the process,
/// the probe port's included, and the cap would never be reached.
fn connection_cap(configured: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, which lives here.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return configured;
    }
    let room = limit.rlim_cur.saturating_sub(DESCRIPTORS_KEPT).max(64);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    if room < configured {
        crate::log::warn!(
            "{}={configured} is more than the file-descriptor limit allows ({} open files): \
             the hub holds at most {room} connections; raise the limit (ulimit -n)",
            super::options::STREAM_MAX_CONNECTIONS,
            limit.rlim_cur
        );
        return room;
    }
    configured
}

/// On a writer thread: serves each connection handed to it.
async fn serve_handed(mut handed: UnboundedReceiver<Handed>, hub: Arc<OnceLock<Arc<Hub>>>) {
    let mut batch = Vec::with_capacity(64);
    while handed.recv_many(&mut batch, 64).await > 0 {
        let Some(hub) = hub.get() else {
            batch.clear();
            continue;
        };
        for Handed {
            stream,
            slot,
            placed,
            ..
        } in batch.drain(..)
        {
            serve_connection(hub, stream, slot, placed);
        }
    }
}

/// Serves `stream` on this (writer) thread, in a task of its own, which is
/// what closes it if it is shed.
pub(super) fn serve_connection(
    hub: &Arc<Hub>,
    stream: std::net::TcpStream,
    slot: Arc<Slot>,
    placed: Placed,
) {
    let task = tokio::spawn(connection(
        stream,
        Arc::clone(hub),
        Arc::clone(&slot),
        placed,
    ));
    slot.set_task(task.abort_handle());
}

async fn evict_idle_channels(hub: Arc<Hub>) {
    let every =
        (hub.options.channel_idle / 4).clamp(Duration::from_millis(100), IDLE_EVICTION_EVERY);
    loop {
        tokio::time::sleep(every).await;
        hub.channels.evict_idle();
    }
}

/// One connection, on the writer thread it was placed on: hyper reads its
/// request and writes every response head; a subscription's stream is then
/// written by [`Stream::serve`] on the socket taken back from hyper, in a
/// task of its own, so that hyper's per-connection buffers (8 KiB each way,
/// whatever `max_buf_size` says) are freed instead of being held for the
/// stream's whole life.
///
/// Bounded: one request per connection (no keep-alive: a client cannot
/// hold a connection open by asking again now and then), its headers within
/// [`HEADER_TIMEOUT`], its answer (the head of a stream, or an error)
/// within [`ANSWER_LIFETIME`]. At the cap, the oldest connection that is
/// not a stream nor being answered is closed to make room; with none, the
/// newcomer is answered 503 with `Retry-After`.
async fn connection(stream: std::net::TcpStream, hub: Arc<Hub>, slot: Arc<Slot>, placed: Placed) {
    let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
        return;
    };
    let writer = placed.index;
    let accepted: AcceptedSlot = Arc::default();
    let stream_slot = Arc::clone(&accepted);
    let service_slot = Arc::clone(&slot);
    let service = service_fn(move |request| {
        let hub = Arc::clone(&hub);
        let accepted = Arc::clone(&stream_slot);
        let slot = Arc::clone(&service_slot);
        async move {
            let busy = slot.busy();
            let response = answer(&hub, request, &accepted, writer).await;
            if lock(&accepted).is_some() {
                // A stream: never shed for a newcomer, from before its
                // head is written (it is counted already).
                busy.hold();
            }
            Ok::<_, Infallible>(response)
        }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false)
        .max_buf_size(MAX_BUFFER)
        .serve_connection(TokioIo::new(stream), service)
        .without_shutdown();
    let served = tokio::time::timeout(ANSWER_LIFETIME, served).await;
    // A stream's head is written and its (close-delimited) body is ours to
    // write. Anything else (an error answered, the client gone, the head
    // not written, too slow) drops the stream here: unsubscribed and
    // uncounted.
    let stream = lock(&accepted).take();
    if let (Ok(Ok(parts)), Some(stream)) = (served, stream) {
        // Held since its answer (see the service above).
        tokio::spawn(stream.serve(parts.io.into_inner(), slot, placed));
    }
}

/// The answer at the connection cap, every connection a stream or being
/// answered: 503, and `Retry-After`.
const AT_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 1\r\nconnection: close\r\n\
content-length: 72\r\n\r\n\
{\"error\":\"too_many_connections\",\"message\":\"this server is at capacity\"}\n";

/// Answers [`AT_CAPACITY`] on `stream`, within a second: written at once,
/// then the request read (and ignored) until the client closes, so that
/// closing does not reset the answer away before it is read.
pub(super) async fn refuse_at_capacity(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(REFUSAL_LIFETIME, async {
        stream.write_all(AT_CAPACITY).await?;
        stream.shutdown().await?;
        let mut ignored = [0u8; 1024];
        while stream.read(&mut ignored).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

type HubResponse = Response<Either<Full<Bytes>, FirstBytes>>;

fn json_error(status: u16, code: &str, message: &str) -> HubResponse {
    let body = format!(
        "{{\"error\":{},\"message\":{}}}\n",
        frame::json_string(code),
        frame::json_string(message)
    );
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The allowed origin the request came from, if any.
fn allowed_origin(hub: &Hub, request: &Request<Incoming>) -> Option<HeaderValue> {
    let origin = request.headers().get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    hub.options
        .cors_origins
        .iter()
        .any(|allowed| allowed == text)
        .then(|| origin.clone())
}

fn with_cors(mut response: HubResponse, origin: Option<HeaderValue>) -> HubResponse {
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

async fn answer(
    hub: &Arc<Hub>,
    request: Request<Incoming>,
    accepted: &AcceptedSlot,
    writer: usize,
) -> HubResponse {
    let origin = allowed_origin(hub, &request);
    let subscription = match request::read(request.method(), request.uri(), request.headers()) {
        Ask::NotFound => {
            return with_cors(
                json_error(404, "not_found", "GET /streams/<channel>"),
                origin,
            )
        }
        Ask::Preflight => return preflight(origin),
        Ask::WrongMethod => {
            return with_cors(json_error(405, "method_not_allowed", "use GET"), origin)
        }
        Ask::Subscribe(subscription) => subscription,
    };
    let Subscription {
        channel,
        token: token_text,
        last_event_id,
    } = subscription;
    if let Err(refused) = token::verify(&hub.options.secret, &token_text, &channel) {
        let (status, code) = refused.answer();
        let message = match refused {
            TokenError::Missing => {
                "a subscription token is required (?token= or Authorization: Bearer)"
            }
            TokenError::Malformed => "the subscription token is malformed",
            TokenError::Expired => "the subscription token has expired; get a fresh one",
            TokenError::Forged => "the subscription token is not valid",
            TokenError::OtherChannel => "the subscription token is for another channel",
        };
        return with_cors(json_error(status, code, message), origin);
    }
    if hub.runtime.phase() >= Phase::Stopping {
        return with_cors(
            json_error(503, "stopping", "this server is stopping; reconnect"),
            origin,
        );
    }
    match subscribe(hub, channel, last_event_id.as_deref(), writer).await {
        Ok(stream) => {
            *lock(accepted) = Some(stream);
            let mut response = Response::new(Either::Right(FirstBytes(Some(frame::retry()))));
            // An HTTP/1.0 answer has a close-delimited body: after the head,
            // the stream's bytes as they stand until the connection closes
            // (RFC 9112, 6.3), which is how hyper hands the socket back with
            // nothing of its own left to write. Every client speaks it; the
            // stream ends with the connection anyway.
            *response.version_mut() = hyper::Version::HTTP_10;
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
            // The connection ends with the stream: a client reconnects
            // afresh, and a slow one's socket is closed after its comment.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            with_cors(response, origin)
        }
        Err((status, code, message)) => with_cors(json_error(status, code, message), origin),
    }
}

fn preflight(origin: Option<HeaderValue>) -> HubResponse {
    let Some(origin) = origin else {
        return json_error(403, "origin_not_allowed", "this origin may not subscribe");
    };
    let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, last-event-id, cache-control"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// A status, an error code and a message.
type Refusal = (u16, &'static str, &'static str);

/// Counts one hub stream; uncounted when dropped.
struct Counted(Runtime);

impl Drop for Counted {
    fn drop(&mut self) {
        let _ = self.0.decrement_active_streams();
    }
}

/// Where the service leaves a subscription's stream for its connection to
/// serve once hyper has written the head.
type AcceptedSlot = Arc<std::sync::Mutex<Option<Stream>>>;

/// A subscription's response body as hyper sees it: the stream's first
/// bytes (`retry:`), written by hyper with the head, then its end (with an
/// HTTP/1.0 head, an end writes nothing). The rest of the stream follows on
/// the socket, written by [`Stream::serve`].
pub(crate) struct FirstBytes(Option<Bytes>);

impl Body for FirstBytes {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.take().map(|bytes| Ok(Frame::data(bytes))))
    }
}

async fn subscribe(
    hub: &Arc<Hub>,
    name: String,
    last_event_id: Option<&str>,
    writer: usize,
) -> Result<Stream, Refusal> {
    if hub.runtime.increment_active_streams().is_err() {
        return Err((503, "too_many_streams", "too many streams"));
    }
    let counted = Counted(hub.runtime.clone());
    // Counted before the shared store is asked (and its readers placed), so
    // that every event after what the store gives is fed to the ring;
    // uncounted when the subscriber is dropped, here or with its stream.
    let Ok(subscriber) = hub.channels.subscribe(&name, StreamKind::Resumable, writer) else {
        return Err((503, "too_many_channels", "too many channels"));
    };
    let channel = &subscriber.channel;
    // `retry:` goes with the head (see `FirstBytes`).
    let mut pending = VecDeque::new();
    let mut last = last_event_id.map(|id| Bytes::copy_from_slice(id.as_bytes()));
    let mut skip_through = None;
    let from_ring = |pending: &mut VecDeque<Bytes>| {
        let start = channel.start_local(&hub.channels.limits, last_event_id);
        if let (true, Some(id)) = (start.gap, last_event_id) {
            pending.push_back(frame::gap(id));
        }
        start.cursor
    };
    let cursor = match &hub.shared {
        Some(shared) => {
            let answer = if shared.readers_ready(READERS_READY).await {
                // Asked on the accepting thread: the store's connection is
                // made (and remade after an error) by whichever runtime
                // asks first, and its I/O then runs there; on a writer
                // thread, every publish and log read would wait on that
                // thread's fan-out.
                let store = Arc::clone(&shared.store);
                let (channel_name, after) = (name.clone(), last_event_id.map(str::to_owned));
                hub.handle
                    .spawn(async move { store.resume(&channel_name, after.as_deref()).await })
                    .await
                    .ok()
                    .and_then(Result::ok)
            } else {
                None
            };
            match answer {
                Some(resume) => {
                    let (cursor, after) = from_shared(
                        &hub.channels,
                        channel,
                        resume,
                        last_event_id,
                        &mut pending,
                        &mut last,
                    );
                    skip_through = after;
                    cursor
                }
                // The store is away: what this pod holds.
                None => from_ring(&mut pending),
            }
        }
        None => from_ring(&mut pending),
    };
    let heartbeat = hub.options.heartbeat;
    Ok(Stream {
        hub: Arc::clone(hub),
        subscriber,
        cursor,
        pending,
        last,
        last_event_at: tokio::time::Instant::now(),
        next_heartbeat: Box::pin(tokio::time::sleep(heartbeat)),
        channel_wait: None,
        phase_wait: None,
        end_at: None,
        skip_through,
        done: false,
        _counted: counted,
    })
}

/// A subscriber's start from the shared store's answer: the gap if events
/// were missed, the replay, the final event if the channel is closed, and
/// the cursor in this pod's ring just after the last event replayed.
fn from_shared(
    channels: &Channels,
    channel: &Arc<Channel>,
    resume: last_call_store::Resume,
    last_event_id: Option<&str>,
    pending: &mut VecDeque<Bytes>,
    last: &mut Option<Bytes>,
) -> (u64, Option<last_call_store::ids::EventId>) {
    if resume.status == last_call_store::ResumeStatus::Gap && last_event_id.is_some() {
        pending.push_back(frame::gap(last_event_id.unwrap_or("")));
    }
    if let Some(kind) = resume.kind {
        channel.set_kind(match kind {
            last_call_store::Kind::Resumable => StreamKind::Resumable,
            last_call_store::Kind::PodBound => StreamKind::PodBound,
        });
    }
    let mut after = match resume.status {
        last_call_store::ResumeStatus::After => {
            last_event_id.and_then(last_call_store::ids::EventId::parse)
        }
        _ => None,
    };
    for entry in &resume.entries {
        let id = entry.id.to_string();
        match entry.flag {
            last_call_store::Flag::Gap => pending.push_back(frame::gap_marker()),
            _ => {
                let event = SseFrame::event(&id, &entry.event, &entry.data);
                pending.push_back(event.bytes().clone());
                *last = Some(Bytes::from(id));
            }
        }
        after = Some(entry.id.clone());
    }
    if let Some(closed) = &resume.closed {
        // Closed: the final event (unless the replay ended with it), then
        // the end, which the ring gives as it is fed the same final event.
        if resume.entries.last().map(|e| &e.id) != Some(&closed.id) {
            let event = SseFrame::event(&closed.id.to_string(), &closed.event, &closed.data);
            // Closed here first: its subscribers waiting at the ring's end
            // are told now (the log's final event, fed later, finds it
            // closed and wakes no one; they heard at their next heartbeat).
            if channel.feed_closed(event) {
                channels.wake(channel);
            }
        }
    }
    let (cursor, epoch_changed) = channel.place_after_shared(after.as_ref());
    if epoch_changed {
        pending.push_back(frame::gap_marker());
    }
    (cursor, after)
}

/// One subscription's stream: the replay, then the channel read through
/// its cursor, heartbeats while idle, and its ending: the channel's final
/// event, or (a resumable stream in ClosingStreams, at its own moment, or
/// any stream at Stopping) the reconnect hint. Counted in the runtime's
/// streams until dropped.
pub(crate) struct Stream {
    hub: Arc<Hub>,
    /// Its channel, and the writer thread serving it.
    subscriber: channel::Subscriber,
    /// The absolute position in the channel's ring of the next event.
    cursor: u64,
    pending: VecDeque<Bytes>,
    /// The last event id it carried (the client's, before any).
    last: Option<Bytes>,
    /// When it last read events: a heartbeat is due a heartbeat's time
    /// after it. The timer is not moved at every event (a timer reset per
    /// event and subscriber cost more than the clock); when it fires early,
    /// it is set again for the time due.
    last_event_at: tokio::time::Instant,
    next_heartbeat: Pin<Box<Sleep>>,
    /// Armed while it waits at the ring's end.
    channel_wait: Option<Pin<Box<OwnedNotified>>>,
    /// Armed while it waits for the phase to change.
    phase_wait: Option<Pin<Box<OwnedNotified>>>,
    /// Its moment to end (a resumable stream, once ClosingStreams began).
    end_at: Option<Pin<Box<Sleep>>>,
    /// The last event the shared store replayed to it: the ring may still
    /// be fed events up to it (this pod's reader behind the store's
    /// answer), which it has had; dropped as they come, until one is past.
    skip_through: Option<last_call_store::ids::EventId>,
    done: bool,
    _counted: Counted,
}

/// A `Notified` of `notify`, enabled: a wake from now on is not lost even
/// before it is first polled.
fn armed(notify: &Arc<Notify>) -> Pin<Box<OwnedNotified>> {
    let mut wait = Box::pin(Arc::clone(notify).notified_owned());
    wait.as_mut().enable();
    wait
}

impl Stream {
    /// Its channel's wake, on its thread.
    fn channel_notify(&self) -> &Arc<Notify> {
        &self.subscriber.channel.side(self.subscriber.writer).notify
    }

    /// Its thread's word of a phase change.
    fn phase_notify(&self) -> &Arc<Notify> {
        &self.hub.writers.get(self.subscriber.writer).phase_changed
    }

    /// Its heartbeat's timer has fired: `true` if the stream has been
    /// idle for the heartbeat time (a comment is due now); otherwise the
    /// timer is set for when it will have been. Either way the timer is
    /// armed again, with `cx`'s waker.
    fn heartbeat_due(&mut self, cx: &mut Context<'_>) -> bool {
        let heartbeat = self.hub.options.heartbeat;
        let now = tokio::time::Instant::now();
        let due = self.last_event_at + heartbeat;
        let idle = due <= now;
        if idle {
            self.last_event_at = now;
        }
        self.next_heartbeat
            .as_mut()
            .reset(if idle { now + heartbeat } else { due });
        let _ = self.next_heartbeat.as_mut().poll(cx);
        idle
    }

    fn last_id(&self) -> Option<&str> {
        self.last
            .as_deref()
            .and_then(|id| std::str::from_utf8(id).ok())
    }

    /// Drops, from the events read into `pending` past `from`, those the
    /// shared store had already replayed (see `skip_through`).
    fn drop_replayed(&mut self, from: usize) {
        let Some(through) = &self.skip_through else {
            return;
        };
        let mut kept = VecDeque::with_capacity(self.pending.len());
        let mut passed = false;
        for (at, bytes) in self.pending.drain(..).enumerate() {
            if at >= from && !passed {
                let id = frame::id_of(&bytes).and_then(last_call_store::ids::EventId::parse);
                match id {
                    Some(id)
                        if id.epoch == through.epoch
                            && (id.ms, id.seq) <= (through.ms, through.seq) =>
                    {
                        continue
                    }
                    Some(_) => passed = true,
                    None => {}
                }
            }
            kept.push_back(bytes);
        }
        self.pending = kept;
        if passed {
            self.skip_through = None;
        }
    }

    /// Ends with the reconnect hint, after what is pending (counted for the
    /// shutdown log).
    fn end_with_reconnect(&mut self) {
        self.hub.runtime.stream_ending_sent(StreamKind::Resumable);
        let hint = frame::reconnect(self.last_id());
        self.pending.push_back(hint);
        self.done = true;
    }

    /// Whether the stream's end has come while its socket takes nothing:
    /// its end queued, its channel closed, or the server stopping. Its
    /// wakes (the channel's, the phase's) are registered with `cx`.
    fn ending(&mut self, cx: &mut Context<'_>) -> bool {
        for _ in 0..2 {
            if self.done
                || self.subscriber.channel.is_closed()
                || self.hub.runtime.phase() >= Phase::Stopping
            {
                return true;
            }
            if self.channel_wait.is_none() {
                self.channel_wait = Some(armed(self.channel_notify()));
            }
            let channel_woke = self
                .channel_wait
                .as_mut()
                .is_some_and(|wait| wait.as_mut().poll(cx).is_ready());
            if self.phase_wait.is_none() {
                self.phase_wait = Some(armed(self.phase_notify()));
            }
            let phase_woke = self
                .phase_wait
                .as_mut()
                .is_some_and(|wait| wait.as_mut().poll(cx).is_ready());
            if !channel_woke && !phase_woke {
                return false;
            }
            // Woken: re-armed, and asked once more.
            if channel_woke {
                self.channel_wait = None;
            }
            if phase_woke {
                self.phase_wait = None;
            }
        }
        false
    }

    /// The next bytes to write; `None` once the stream has ended.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                if let Some(id) = frame::id_of(&bytes) {
                    self.last = Some(Bytes::copy_from_slice(id.as_bytes()));
                }
                return Poll::Ready(Some(bytes));
            }
            if self.done {
                return Poll::Ready(None);
            }
            // The phase: armed before it is read, so no change is missed.
            if self.phase_wait.is_none() {
                self.phase_wait = Some(armed(self.phase_notify()));
            }
            let phase = self.hub.runtime.phase();
            // Serving (the hot path: every batch of events): nothing ends,
            // and neither the channel's kind nor the store's health (two
            // locks) is asked.
            let ends_as = if phase >= Phase::Draining {
                self.hub.ends_as(self.subscriber.channel.kind())
            } else {
                StreamKind::PodBound
            };
            if phase >= Phase::Stopping && ends_as == StreamKind::Resumable {
                self.end_with_reconnect();
                continue;
            }
            if ends_as == StreamKind::Resumable && self.end_at.is_none() {
                let runtime = &self.hub.runtime;
                // With a healthy shared store, another pod takes the stream
                // over at once: handed off from the end of the drain delay.
                // Otherwise a resumable stream is nudged in the close notice.
                let delay = if self.hub.shared.is_some() && phase >= Phase::Draining {
                    runtime.handoff_delay()
                } else if phase >= Phase::ClosingStreams {
                    runtime.reconnect_delay(StreamKind::Resumable)
                } else {
                    None
                };
                if let Some(delay) = delay {
                    self.end_at = Some(Box::pin(tokio::time::sleep(delay)));
                }
            }
            if let Some(end) = self.end_at.as_mut() {
                if end.as_mut().poll(cx).is_ready() {
                    self.end_with_reconnect();
                    continue;
                }
            }
            // The channel: armed before it is read, so no publish is missed.
            if self.channel_wait.is_none() {
                self.channel_wait = Some(armed(self.channel_notify()));
            }
            let before = self.pending.len();
            match self
                .subscriber
                .channel
                .read(&mut self.cursor, &mut self.pending, BATCH)
            {
                Read::Events => {
                    self.drop_replayed(before);
                    self.channel_wait = None;
                    self.last_event_at = tokio::time::Instant::now();
                    continue;
                }
                Read::Gap { skipped } => {
                    self.hub
                        .runtime
                        .http
                        .skipped_events
                        .fetch_add(skipped, std::sync::atomic::Ordering::Relaxed);
                    let gap = frame::gap(self.last_id().unwrap_or(""));
                    self.pending.push_back(gap);
                    continue;
                }
                Read::Closed(last) => {
                    self.pending.push_back(last);
                    self.done = true;
                    continue;
                }
                Read::Nothing => {}
            }
            if let Some(wait) = self.channel_wait.as_mut() {
                if wait.as_mut().poll(cx).is_ready() {
                    self.channel_wait = None;
                    continue;
                }
            }
            if let Some(wait) = self.phase_wait.as_mut() {
                if wait.as_mut().poll(cx).is_ready() {
                    self.phase_wait = None;
                    continue;
                }
            }
            if self.next_heartbeat.as_mut().poll(cx).is_ready() && self.heartbeat_due(cx) {
                return Poll::Ready(Some(Bytes::from_static(frame::HEARTBEAT)));
            }
            return Poll::Pending;
        }
    }

    /// Writes the stream on `socket` until it ends (then the connection is
    /// closed once its bytes are written) or the client goes away, which is
    /// seen at once: the socket is watched for reading all along, and the
    /// end of its input is the client gone. A client that has not caught up
    /// within the stall time from the first write its socket refused has
    /// fallen behind: it is dropped (reset, uncounted) without a last word
    /// it could not take anyway, and resumes, when it comes back, with
    /// `event: gap`. A stream whose end has come while its socket is full
    /// is held while the client takes bytes, and dropped so after
    /// `ENDING_PATIENCE` (or the stall time, if shorter) without any, or at
    /// once at Stopping.
    fn serve(self, socket: tokio::net::TcpStream, slot: Arc<Slot>, placed: Placed) -> Serving {
        Serving {
            stream: self,
            socket,
            batch: Batch::default(),
            stalled: None,
            ending_idle: None,
            ending_queued: u32::MAX,
            closing: false,
            _slot: slot,
            _placed: placed,
        }
    }
}

/// A stream being written on its socket ([`Stream::serve`]): a future
/// written out by hand, holding each of its parts once (an `async fn` held
/// its arguments twice, 264 bytes more in what every idle subscriber
/// keeps). Dropped, it unsubscribes and uncounts the stream, closes the
/// socket, and frees its place under the connection cap, in that order.
struct Serving {
    stream: Stream,
    socket: tokio::net::TcpStream,
    batch: Batch,
    /// Runs from the first write the socket refused until the stream has
    /// caught up.
    stalled: Option<Pin<Box<Sleep>>>,
    /// Once the stream is ending: runs from a write the socket refused
    /// until it takes bytes again ([`ENDING_PATIENCE`]).
    ending_idle: Option<Pin<Box<Sleep>>>,
    /// The bytes its socket had still to deliver when `ending_idle` was
    /// set or last ran out.
    ending_queued: u32,
    /// Its last bytes are written: the connection is being shut.
    closing: bool,
    _slot: Arc<Slot>,
    _placed: Placed,
}

impl Future for Serving {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if !this.closing {
            let ended = match this.poll_writing(cx) {
                Poll::Ready(ended) => ended,
                Poll::Pending => return Poll::Pending,
            };
            match ended {
                // The end of the body: the connection's end, after its
                // bytes.
                Ended::Finished => this.closing = true,
                Ended::Stalled => {
                    this.stream
                        .hub
                        .runtime
                        .http
                        .slow_clients
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // Closed at once, with what is unsent discarded: a
                    // reset, so that the kernel frees the socket's buffers
                    // now, not after trying to deliver them to a client
                    // that does not read.
                    let _ = socket2::SockRef::from(&this.socket).set_linger(Some(Duration::ZERO));
                    return Poll::Ready(());
                }
                Ended::Gone => return Poll::Ready(()),
            }
        }
        Pin::new(&mut this.socket).poll_shutdown(cx).map(|_| ())
    }
}

impl Serving {
    /// Writes the stream until it ends, the client goes away, or it is
    /// dropped as too slow (see [`Stream::serve`]).
    fn poll_writing(&mut self, cx: &mut Context<'_>) -> Poll<Ended> {
        loop {
            if client_gone(&self.socket, cx) {
                return Poll::Ready(Ended::Gone);
            }
            let mut finished = false;
            while !self.batch.is_full() {
                match self.stream.poll_next(cx) {
                    Poll::Ready(Some(bytes)) => self.batch.push(bytes),
                    Poll::Ready(None) => {
                        finished = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            if self.batch.is_empty() {
                if finished {
                    return Poll::Ready(Ended::Finished);
                }
                // Caught up: nothing waits for the client.
                self.stalled = None;
                return Poll::Pending;
            }
            let slices = self.batch.slices();
            let written = match Pin::new(&mut self.socket)
                .poll_write_vectored(cx, self.batch.ready(&slices))
            {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Ended::Gone),
                Poll::Ready(Ok(written)) => written,
                Poll::Pending => {
                    let stall_after = self.stream.hub.options.stall;
                    if self.stream.ending(cx) {
                        // The server stopping: what is left ends now (the
                        // process is about to exit).
                        if self.stream.hub.runtime.phase() >= Phase::Stopping {
                            return Poll::Ready(Ended::Stalled);
                        }
                        // Its last words, and a socket that takes nothing
                        // now: held while the client takes bytes (one that
                        // reads, whose socket was full when its channel
                        // closed, gets its end), and closed once it has
                        // taken none for a moment, not held until the stall
                        // time for a final comment it cannot take (a
                        // SIGTERM waited for those). Taking bytes is the
                        // socket's send queue shrinking: a write is refused
                        // until half of a send buffer of megabytes has gone,
                        // which a slow reader takes seconds to read.
                        let patience = stall_after.min(ENDING_PATIENCE);
                        if self.ending_idle.is_none() {
                            self.ending_queued = unsent_bytes(&self.socket);
                        }
                        let idle = self
                            .ending_idle
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep(patience)));
                        while idle.as_mut().poll(cx).is_ready() {
                            let queued = unsent_bytes(&self.socket);
                            if queued >= self.ending_queued {
                                return Poll::Ready(Ended::Stalled);
                            }
                            self.ending_queued = queued;
                            let next = tokio::time::Instant::now() + patience;
                            idle.as_mut().reset(next);
                        }
                    }
                    let stall = self
                        .stalled
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall_after)));
                    if stall.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ended::Stalled);
                    }
                    return Poll::Pending;
                }
            };
            // Bytes taken: the client's moment without taking any starts
            // again at the next refusal.
            self.ending_idle = None;
            // Not reset by a write: a client that takes a trickle of bytes
            // (a few now and then, as its window opens) while the stream
            // runs ahead of it has fallen behind all the same, and was held
            // for ever. The stall runs from the first write the socket
            // refused until the stream has caught up.
            self.batch.advance(written);
        }
    }
}

/// How a stream's connection ended.
enum Ended {
    /// Its last bytes are written.
    Finished,
    /// The client went away.
    Gone,
    /// The client stopped reading.
    Stalled,
}

/// Frames to write at most at once.
const BATCH: usize = 8;

/// How long a stream whose channel closed may take no bytes before it is
/// closed without its last words (at most the stall time): a reader drains
/// a full socket in milliseconds, and a SIGTERM should not wait the stall
/// time for one that does not read. At Stopping there is no patience.
const ENDING_PATIENCE: Duration = Duration::from_secs(1);

/// The frames a stream has ready, written together (one `writev`): a
/// stream that has fallen behind catches up in fewer, larger writes, as
/// hyper's write buffer did. Held in the stream's task, not on the heap.
#[derive(Default)]
struct Batch {
    frames: [Bytes; BATCH],
    start: usize,
    end: usize,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn is_full(&self) -> bool {
        self.end == BATCH
    }

    fn push(&mut self, bytes: Bytes) {
        // An empty frame would make a write of 0 bytes look like a closed
        // connection; none is ever made, and none is kept.
        if !bytes.is_empty() {
            self.frames[self.end] = bytes;
            self.end += 1;
        }
    }

    /// Every slot as a slice (the empty ones empty); see [`Batch::ready`].
    fn slices(&self) -> [std::io::IoSlice<'_>; BATCH] {
        std::array::from_fn(|at| std::io::IoSlice::new(&self.frames[at]))
    }

    /// The slices of the frames still to write.
    fn ready<'a>(&self, slices: &'a [std::io::IoSlice<'a>; BATCH]) -> &'a [std::io::IoSlice<'a>] {
        &slices[self.start..self.end]
    }

    /// Drops what the socket took: `written` bytes from the front.
    fn advance(&mut self, mut written: usize) {
        while written > 0 && !self.is_empty() {
            let first = &mut self.frames[self.start];
            if written >= first.len() {
                written -= first.len();
                *first = Bytes::new();
                self.start += 1;
            } else {
                first.advance(written);
                written = 0;
            }
        }
        if self.is_empty() {
            (self.start, self.end) = (0, 0);
        }
    }
}

/// `true` once the client has closed its side (or the connection failed),
/// or sent anything after its request: a subscriber has nothing more to
/// say, and one that keeps sending would have the hub read and discard its
/// bytes for ever (an upload flood pinned the hub's thread). Leaves the
/// socket's read readiness registered with `cx` otherwise.
/// The bytes `socket` has still to deliver (sent and not acknowledged, or
/// not sent yet): `u32::MAX` if the kernel does not say.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn unsent_bytes(socket: &tokio::net::TcpStream) -> u32 {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ on a TCP socket) writes one c_int, to
    // `queued`, which lives here; the descriptor is the open socket's.
    let asked = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if asked == 0 {
        u32::try_from(queued).unwrap_or(u32::MAX)
    } else {
        u32::MAX
    }
}

/// The bytes `socket` has still to deliver (macOS: `SO_NWRITE`, its send
/// buffer's bytes): `u32::MAX` if the kernel does not say.
#[cfg(any(target_os = "macos", target_os = "ios"))]
fn unsent_bytes(socket: &tokio::net::TcpStream) -> u32 {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `length` bytes (one c_int) to
    // `queued`, and the length to `length`, both of which live here; the
    // descriptor is the open socket's.
    let asked = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NWRITE,
            std::ptr::addr_of_mut!(queued).cast(),
            &mut length,
        )
    };
    if asked == 0 {
        u32::try_from(queued).unwrap_or(u32::MAX)
    } else {
        u32::MAX
    }
}

/// Elsewhere the kernel is not asked: an ending stream whose socket takes
/// nothing for a moment is closed, however its client reads.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios"
)))]
fn unsent_bytes(_socket: &tokio::net::TcpStream) -> u32 {
    u32::MAX
}

fn client_gone(socket: &tokio::net::TcpStream, cx: &mut Context<'_>) -> bool {
    let mut ignored = [0u8; 64];
    match socket.poll_read_ready(cx) {
        Poll::Pending => false,
        Poll::Ready(Err(_)) => true,
        Poll::Ready(Ok(())) => match socket.try_read(&mut ignored) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Readiness was stale; registered again for the next.
                matches!(socket.poll_read_ready(cx), Poll::Ready(Err(_)))
            }
            // The end of its input, bytes, or an error: gone, or closed.
            _ => true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remaining(batch: &Batch) -> Vec<u8> {
        let slices = batch.slices();
        batch
            .ready(&slices)
            .iter()
            .flat_map(|s| s.to_vec())
            .collect()
    }

    #[test]
    fn a_batch_drops_what_the_socket_took_across_frames() {
        let mut batch = Batch::default();
        for frame in ["abc", "", "de", "fghi"] {
            batch.push(Bytes::from(frame));
        }
        assert_eq!(remaining(&batch), b"abcdefghi");
        batch.advance(4);
        assert_eq!(remaining(&batch), b"efghi");
        batch.advance(1);
        assert_eq!(remaining(&batch), b"fghi");
        batch.advance(4);
        assert!(batch.is_empty());
        for n in 0..BATCH {
            assert!(!batch.is_full());
            batch.push(Bytes::from(n.to_string()));
        }
        assert!(batch.is_full());
        batch.advance(BATCH);
        assert!(batch.is_empty() && !batch.is_full());
    }
}
