//! The hub's listener on the listeners' one skeleton (`listener.rs`: bound
//! on the caller's thread, served by a thread of its own), with hyper's
//! HTTP/1 server. No host code ever runs there.
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
//! is read, and ignored, all along).

use super::frame::{self, Frame as SseFrame};
use super::options::{HubOptions, STREAM_ADDR};
use super::store::{Ending, Limits, MemoryStore, Subscriber};
use super::token::{self, TokenError};
use super::Hub;
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
use hyper::{Method, Request, Response, StatusCode};
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
use tokio::sync::mpsc;
use tokio::time::Sleep;

const MAX_BUFFER: usize = 16 * 1024;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_EVICTION_EVERY: Duration = Duration::from_secs(10);

pub(super) fn start(runtime: &Runtime, options: HubOptions) -> Result<SocketAddr, Error> {
    let mut state = lock(&runtime.http.state);
    listener::refuse_if_started(state.hub.as_ref().map(|hub| &hub.started))?;
    let addr = options.validate()?;
    let spec = Spec {
        thread: "last-call-hub",
        what: "the stream hub",
        variable: STREAM_ADDR,
        blocking: None,
    };
    let mut bound = listener::bind(spec, &options.addr, addr)?;
    let store = MemoryStore::new(Limits {
        history_len: options.history_len,
        history_age: options.history_age,
        max_channels: options.max_channels,
        max_channel_bytes: options.max_channel_bytes,
        channel_idle: options.channel_idle,
    });
    let hub = Arc::new(Hub {
        runtime: runtime.clone(),
        options,
        store: Box::new(store),
        started: bound.started(),
        handle: bound.handle().clone(),
        accepting: std::sync::Mutex::new(None),
    });
    let accepted = Arc::clone(&hub);
    let accepting = bound.accept(move |stream| {
        tokio::spawn(connection(stream, Arc::clone(&accepted)));
    });
    *lock(&hub.accepting) = Some(accepting);
    bound.handle().spawn(evict_idle_channels(Arc::clone(&hub)));
    let started = bound.run(runtime)?;
    state.hub = Some(Arc::clone(&hub));
    drop(state);
    let listening_hub = Arc::clone(&hub);
    runtime.on_phase(move |change| listening_hub.on_phase(change))?;
    listener::announce("streams", started.addr);
    Ok(started.addr)
}

async fn evict_idle_channels(hub: Arc<Hub>) {
    let every =
        (hub.options.channel_idle / 4).clamp(Duration::from_millis(100), IDLE_EVICTION_EVERY);
    loop {
        tokio::time::sleep(every).await;
        hub.store.evict_idle();
    }
}

/// One connection: hyper reads its requests and writes every response
/// head; a subscription's stream is then written by [`Stream::serve`] on
/// the socket taken back from hyper, in a task of its own, so that hyper's
/// per-connection buffers (8 KiB each way, whatever `max_buf_size` says)
/// are freed instead of being held for the stream's whole life.
async fn connection(stream: tokio::net::TcpStream, hub: Arc<Hub>) {
    let accepted: AcceptedSlot = Arc::default();
    let slot = Arc::clone(&accepted);
    let service = service_fn(move |request| {
        let hub = Arc::clone(&hub);
        let slot = Arc::clone(&slot);
        async move { Ok::<_, Infallible>(answer(&hub, request, &slot)) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_BUFFER)
        .serve_connection(TokioIo::new(stream), service)
        .without_shutdown()
        .await;
    // A stream's head is written and its (close-delimited) body is ours to
    // write. Anything else (an error answered, the client gone, the head
    // not written) drops the stream here: unsubscribed and uncounted.
    let stream = lock(&accepted).take();
    if let (Ok(parts), Some(stream)) = (served, stream) {
        tokio::spawn(stream.serve(parts.io.into_inner()));
    }
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

fn answer(hub: &Arc<Hub>, request: Request<Incoming>, accepted: &AcceptedSlot) -> HubResponse {
    let origin = allowed_origin(hub, &request);
    let Some(channel) = request
        .uri()
        .path()
        .strip_prefix("/streams/")
        .filter(|c| super::check_channel(c).is_ok())
        .map(str::to_owned)
    else {
        return with_cors(
            json_error(404, "not_found", "GET /streams/<channel>"),
            origin,
        );
    };
    if request.method() == Method::OPTIONS {
        return preflight(origin);
    }
    if request.method() != Method::GET {
        return with_cors(json_error(405, "method_not_allowed", "use GET"), origin);
    }
    let mut token_text = None;
    let mut last_event_id = None;
    if let Some(query) = request.uri().query() {
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "token" => token_text = Some(value.into_owned()),
                "last_event_id" => last_event_id = Some(value.into_owned()),
                _ => {}
            }
        }
    }
    if let Some(bearer) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        token_text = Some(bearer.trim().to_owned());
    }
    // The header wins: it is what the browser sends on reconnection.
    if let Some(header_id) = request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
    {
        last_event_id = Some(header_id.to_owned());
    }
    let last_event_id = last_event_id.filter(|id| !id.is_empty() && frame::is_field_safe(id));
    if let Err(refused) = token::verify(
        &hub.options.secret,
        token_text.as_deref().unwrap_or(""),
        &channel,
    ) {
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
    match subscribe(hub, channel, last_event_id.as_deref()) {
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

fn subscribe(
    hub: &Arc<Hub>,
    channel: String,
    last_event_id: Option<&str>,
) -> Result<Stream, Refusal> {
    if hub.runtime.increment_active_streams().is_err() {
        return Err((503, "too_many_streams", "too many streams"));
    }
    let counted = Counted(hub.runtime.clone());
    let (queue, receiver) = mpsc::channel(hub.options.queue_capacity);
    let ending = Arc::new(OnceLock::new());
    let subscriber = Subscriber {
        queue,
        ending: Arc::clone(&ending),
    };
    let subscription = match hub.store.subscribe(&channel, last_event_id, subscriber) {
        Ok(subscription) => subscription,
        Err(_) => return Err((503, "too_many_channels", "too many channels")),
    };
    // `retry:` goes with the head (see `FirstBytes`).
    let mut pending = VecDeque::with_capacity(subscription.replay.len() + 2);
    if let (false, Some(id)) = (subscription.complete, last_event_id) {
        pending.push_back(frame::gap(id));
    }
    let mut last = last_event_id.map(|id| LastId::Client(id.into()));
    for replayed in subscription.replay {
        pending.push_back(replayed.bytes().clone());
        last = Some(LastId::Event(replayed));
    }
    let done = if let Some(closed) = subscription.closed {
        pending.push_back(closed.bytes().clone());
        true
    } else {
        false
    };
    if !done
        && subscription.kind == StreamKind::Resumable
        && hub.runtime.phase() >= Phase::ClosingStreams
    {
        hub.end_resumable_at_its_moment(channel.clone(), subscription.id);
    }
    let heartbeat = hub.options.heartbeat;
    Ok(Stream {
        hub: Arc::clone(hub),
        channel: channel.into(),
        subscriber: subscription.id,
        pending,
        queue: receiver,
        ending,
        last,
        heartbeat,
        next_heartbeat: Box::pin(tokio::time::sleep(heartbeat)),
        done,
        _counted: counted,
    })
}

/// The last event id a stream has seen: the client's `Last-Event-ID`, or
/// an event's (shared with the event, not copied).
enum LastId {
    Client(Box<str>),
    Event(SseFrame),
}

impl LastId {
    fn as_str(&self) -> &str {
        match self {
            LastId::Client(id) => id,
            LastId::Event(frame) => frame.id(),
        }
    }
}

/// One subscription's stream: the replay, then its queue, heartbeats while
/// idle, and its ending once the hub has ended it. Counted in the
/// runtime's streams until dropped.
pub(crate) struct Stream {
    hub: Arc<Hub>,
    channel: Box<str>,
    subscriber: u64,
    pending: VecDeque<Bytes>,
    queue: mpsc::Receiver<SseFrame>,
    ending: Arc<OnceLock<Ending>>,
    last: Option<LastId>,
    heartbeat: Duration,
    next_heartbeat: Pin<Box<Sleep>>,
    done: bool,
    _counted: Counted,
}

impl Stream {
    fn reset_heartbeat(&mut self) {
        let at = tokio::time::Instant::now() + self.heartbeat;
        self.next_heartbeat.as_mut().reset(at);
    }

    /// The next bytes to write; `None` once the stream has ended.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(bytes) = self.pending.pop_front() {
            return Poll::Ready(Some(bytes));
        }
        if self.done {
            return Poll::Ready(None);
        }
        // Too slow: what is still queued is dropped, not written.
        if matches!(self.ending.get(), Some(Ending::TooSlow)) {
            self.done = true;
            return Poll::Ready(Some(Bytes::from_static(frame::TOO_SLOW)));
        }
        match self.queue.poll_recv(cx) {
            Poll::Ready(Some(event)) => {
                let bytes = event.bytes().clone();
                self.last = Some(LastId::Event(event));
                self.reset_heartbeat();
                return Poll::Ready(Some(bytes));
            }
            Poll::Ready(None) => {
                // The hub ended this subscriber (its ending was set before
                // the queue closed).
                self.done = true;
                let bytes = match self.ending.get() {
                    Some(Ending::TooSlow) => Bytes::from_static(frame::TOO_SLOW),
                    Some(Ending::Final(last)) => last.bytes().clone(),
                    Some(Ending::Reconnect) => {
                        frame::reconnect(self.last.as_ref().map(LastId::as_str))
                    }
                    None => return Poll::Ready(None),
                };
                return Poll::Ready(Some(bytes));
            }
            Poll::Pending => {}
        }
        if self.next_heartbeat.as_mut().poll(cx).is_ready() {
            self.reset_heartbeat();
            // Register the new deadline's waker.
            let _ = self.next_heartbeat.as_mut().poll(cx);
            return Poll::Ready(Some(Bytes::from_static(frame::HEARTBEAT)));
        }
        Poll::Pending
    }

    /// Writes the stream on `socket` until it ends (then the connection is
    /// closed once its bytes are written) or the client goes away, which is
    /// seen at once: the socket is watched for reading all along, and the
    /// end of its input is the client gone.
    async fn serve(mut self, mut socket: tokio::net::TcpStream) {
        let mut batch = Batch::default();
        let ended = std::future::poll_fn(|cx| loop {
            if client_gone(&socket, cx) {
                return Poll::Ready(false);
            }
            let mut finished = false;
            while !batch.is_full() {
                match self.poll_next(cx) {
                    Poll::Ready(Some(bytes)) => batch.push(bytes),
                    Poll::Ready(None) => {
                        finished = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            if batch.is_empty() {
                return if finished {
                    Poll::Ready(true)
                } else {
                    Poll::Pending
                };
            }
            let slices = batch.slices();
            let written = match Pin::new(&mut socket).poll_write_vectored(cx, batch.ready(&slices))
            {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(false),
                Poll::Ready(Ok(written)) => written,
                Poll::Pending => return Poll::Pending,
            };
            batch.advance(written);
        })
        .await;
        if ended {
            // The end of the body: the connection's end, after its bytes.
            let _ = std::future::poll_fn(|cx| Pin::new(&mut socket).poll_shutdown(cx)).await;
        }
        // Dropping `self` unsubscribes (if still subscribed) and uncounts.
    }
}

/// Frames to write at most at once.
const BATCH: usize = 8;

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

/// `true` once the client has closed its side (or the connection failed).
/// Bytes a client sends after its request are read and ignored. Leaves the
/// socket's read readiness registered with `cx` otherwise.
fn client_gone(socket: &tokio::net::TcpStream, cx: &mut Context<'_>) -> bool {
    let mut ignored = [0u8; 256];
    // Bounded, so that a client that never stops sending cannot hold the
    // hub's thread: past it, the rest is read on the next poll.
    for _ in 0..16 {
        match socket.poll_read_ready(cx) {
            Poll::Pending => return false,
            Poll::Ready(Err(_)) => return true,
            Poll::Ready(Ok(())) => match socket.try_read(&mut ignored) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return true,
            },
        }
    }
    cx.waker().wake_by_ref();
    false
}

impl Drop for Stream {
    fn drop(&mut self) {
        if !self.done {
            self.hub.store.unsubscribe(&self.channel, self.subscriber);
        }
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
