//! axum's [`Sse`] response, right by construction: counted as a stream for
//! exactly its life, and ended by its kind at shutdown.
//!
//! ```no_run
//! use axum::response::sse::{Event, Sse};
//! use axum::response::IntoResponse;
//! use futures_util::stream::{self, Stream};
//! use last_call::axum::SseExt;
//! use last_call::StreamKind;
//! use std::convert::Infallible;
//!
//! fn feed() -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
//!     stream::iter([Ok(Event::default().id("1").data("hello"))])
//! }
//!
//! async fn events() -> impl IntoResponse {
//!     Sse::new(feed()).tracked(StreamKind::Resumable)
//! }
//! ```
//!
//! What [`SseExt::tracked`] does, whatever the stream inside:
//!
//! * the stream counts from the first time its body is polled to its end,
//!   or its drop however it ends (an error, the client gone, a panic in
//!   it); a response never sent is never counted;
//! * it remembers the last `id:` it sent (read from the bytes axum writes);
//! * once ClosingStreams begins, a [resumable](StreamKind::Resumable)
//!   stream, at its own moment of the reconnect spread, sends `retry:`, its
//!   last `id:` and `event: reconnect`, and ends: the client resumes on
//!   another pod from there. A [pod-bound](StreamKind::PodBound) stream with
//!   a [final event](TrackedSse::final_event) sends it at the streams' last
//!   moment and ends; one without goes on until it ends by itself (its work
//!   cancelled by then, as [`last_call::WorkGuard::end_in`] says), and is
//!   ended at Stopping if it has not, so that the server can stop.
//!
//! [`last_call::WorkGuard::end_in`]: last_call_runtime::WorkGuard::end_in

use crate::count::StreamCount;
use crate::runtime_ext::Reached;
use crate::sse_bytes;
use axum::body::Body;
use axum::http::HeaderValue;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::FutureExt;
use http_body::Frame;
use last_call_core::Phase;
use last_call_http::Runtime;
use last_call_runtime::StreamKind;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// How long clients wait before they reconnect, told by the reconnect
/// hint's `retry:`.
const DEFAULT_RECONNECT_RETRY: Duration = Duration::from_millis(1000);

/// `.tracked(kind)` on axum's [`Sse`].
pub trait SseExt: Sized {
    /// This response, counted for its life and ended by `kind` at shutdown
    /// (see the [module](self)).
    ///
    /// ```no_run
    /// use axum::response::sse::{Event, KeepAlive, Sse};
    /// use axum::response::IntoResponse;
    /// use futures_util::stream;
    /// use last_call::axum::SseExt;
    /// use last_call::StreamKind;
    /// use std::convert::Infallible;
    ///
    /// async fn task_stream() -> impl IntoResponse {
    ///     let events = stream::pending::<Result<Event, Infallible>>();
    ///     Sse::new(events)
    ///         .keep_alive(KeepAlive::default())
    ///         .tracked(StreamKind::PodBound)
    ///         .final_event(Event::default().event("task_failed").data("shutdown"))
    /// }
    /// ```
    fn tracked(self, kind: StreamKind) -> TrackedSse<Self>;
}

impl<S> SseExt for Sse<S> {
    fn tracked(self, kind: StreamKind) -> TrackedSse<Self> {
        TrackedSse {
            sse: self,
            kind,
            runtime: None,
            final_event: None,
            retry: DEFAULT_RECONNECT_RETRY,
        }
    }
}

/// An [`Sse`] response counted for its life and ended by its kind at
/// shutdown: made by [`SseExt::tracked`].
#[must_use]
#[derive(Debug)]
pub struct TrackedSse<T> {
    sse: T,
    kind: StreamKind,
    runtime: Option<Runtime>,
    final_event: Option<Event>,
    retry: Duration,
}

impl<T> TrackedSse<T> {
    /// A pod-bound stream's last event, sent at the streams' last moment if
    /// the stream is still open then (a resumable stream ends with the
    /// reconnect hint instead, and ignores it).
    pub fn final_event(mut self, event: Event) -> Self {
        self.final_event = Some(event);
        self
    }

    /// The reconnect hint's `retry:` (1 s unless set).
    pub fn reconnect_retry(mut self, retry: Duration) -> Self {
        self.retry = retry;
        self
    }

    /// Counts on `runtime` (a private one) instead of the process-wide one.
    pub fn on(mut self, runtime: &Runtime) -> Self {
        self.runtime = Some(runtime.clone());
        self
    }
}

impl<T: IntoResponse> IntoResponse for TrackedSse<T> {
    fn into_response(self) -> Response {
        let runtime = match self.runtime {
            Some(runtime) => runtime.core().clone(),
            None => Runtime::global().core().clone(),
        };
        let ending = match (self.kind, self.final_event) {
            (StreamKind::Resumable, _) => Ending::Reconnect(self.retry),
            (StreamKind::PodBound, Some(event)) => Ending::Final(event),
            (StreamKind::PodBound, None) => Ending::AtStopping,
        };
        let mut response = self.sse.into_response();
        // nginx buffers a response unless told not to: no event would
        // reach the client before the buffer fills.
        response
            .headers_mut()
            .insert("x-accel-buffering", HeaderValue::from_static("no"));
        response.map(|body| {
            Body::new(TrackedBody {
                inner: body,
                runtime,
                ending: Some(ending),
                count: None,
                started: false,
                finished: false,
                last_id: None,
                watch: Watch::Before(None),
            })
        })
    }
}

/// How a stream ends at shutdown.
enum Ending {
    /// Resumable: the reconnect hint, with this `retry:`, at its moment.
    Reconnect(Duration),
    /// Pod-bound: this event, at the streams' last moment.
    Final(Event),
    /// Pod-bound without a final event: ended (with no event) at Stopping,
    /// if it has not ended by itself.
    AtStopping,
}

impl Ending {
    /// The phase from which the stream watches for its moment.
    fn phase(&self) -> Phase {
        match self {
            Ending::Reconnect(_) | Ending::Final(_) => Phase::ClosingStreams,
            Ending::AtStopping => Phase::Stopping,
        }
    }
}

/// Where the body is on its way to its ending.
enum Watch {
    /// Before the ending's phase: the wait for it (made at the first poll
    /// that finds the phase earlier).
    Before(Option<Box<PhaseWait>>),
    /// The phase has come: the moment to end.
    Due(Pin<Box<Sleep>>),
}

/// A wait for a phase that a body polls only when it could have changed:
/// re-polling a registered tokio waiter takes its lock, and a body is
/// polled for every event it sends.
struct PhaseWait {
    reached: Reached,
    /// A second receiver of the same watch: whether a change was sent since
    /// the wait was last polled (one atomic load).
    changes: watch::Receiver<Phase>,
    /// The waker the wait was last registered with.
    waker: Option<Waker>,
}

impl PhaseWait {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let same_waker = self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if same_waker && !self.changes.has_changed().unwrap_or(true) {
            // Still registered with this waker, and nothing was sent.
            return Poll::Pending;
        }
        self.changes.mark_unchanged();
        self.waker = Some(cx.waker().clone());
        Pin::new(&mut self.reached).poll(cx).map(|_| ())
    }
}

/// The body of a [`TrackedSse`]: axum's SSE body, counted, read for ids,
/// and ended at its moment.
struct TrackedBody {
    inner: Body,
    runtime: last_call_runtime::Runtime,
    /// Taken when the stream ends at shutdown.
    ending: Option<Ending>,
    count: Option<StreamCount>,
    started: bool,
    finished: bool,
    /// The value of the last `id:` sent, if any was.
    last_id: Option<Vec<u8>>,
    watch: Watch,
}

impl TrackedBody {
    /// Whether the moment to end has come; otherwise this task is woken
    /// when it comes.
    fn due(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(ending) = &self.ending else {
            return false;
        };
        let phase = ending.phase();
        loop {
            match &mut self.watch {
                Watch::Before(wait) => {
                    if self.runtime.phase() < phase {
                        let wait = wait.get_or_insert_with(|| {
                            let reached = Reached::new(&self.runtime, phase);
                            let changes = crate::bridge::bridge(&self.runtime).sender.subscribe();
                            Box::new(PhaseWait {
                                reached,
                                changes,
                                waker: None,
                            })
                        });
                        if wait.poll(cx).is_pending() {
                            return false;
                        }
                    }
                    // Its moment, drawn once: the reconnect spread for a
                    // resumable stream, the streams' last moment for a
                    // pod-bound one, now at Stopping.
                    let kind = match ending {
                        Ending::Reconnect(_) => Some(StreamKind::Resumable),
                        Ending::Final(_) => Some(StreamKind::PodBound),
                        Ending::AtStopping => None,
                    };
                    let left = kind
                        .and_then(|kind| self.runtime.reconnect_delay(kind))
                        .unwrap_or_default();
                    if left.is_zero() {
                        // Now (no timer: the host's tokio may run without one).
                        return true;
                    }
                    let at = Instant::now() + left;
                    self.watch = Watch::Due(Box::pin(tokio::time::sleep_until(at)));
                }
                Watch::Due(sleep) => return sleep.as_mut().poll(cx).is_ready(),
            }
        }
    }

    /// The stream's last bytes at its moment, if its kind sends any
    /// (counted for the shutdown log).
    fn ending_bytes(&mut self) -> Option<Bytes> {
        match self.ending.take()? {
            Ending::Reconnect(retry) => {
                self.runtime.stream_ending_sent(StreamKind::Resumable);
                Some(sse_bytes::reconnect_event(retry, self.last_id.as_deref()))
            }
            Ending::Final(event) => {
                self.runtime.stream_ending_sent(StreamKind::PodBound);
                Some(event_bytes(event))
            }
            Ending::AtStopping => None,
        }
    }
}

/// An event as axum writes it (axum keeps its encoder to itself: an `Sse`
/// of this one event, whose body is ready at once).
fn event_bytes(event: Event) -> Bytes {
    let body = Sse::new(futures_util::stream::iter([Ok::<_, Infallible>(event)]))
        .into_response()
        .into_body();
    match axum::body::to_bytes(body, usize::MAX).now_or_never() {
        Some(Ok(bytes)) => bytes,
        // An `Sse` of one ready event is always ready and never fails.
        _ => Bytes::new(),
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.finished {
            this.count = None;
            return Poll::Ready(None);
        }
        if !this.started {
            // The stream begins at its first poll. A count that cannot be
            // kept (the most streams a runtime counts) leaves it
            // uncounted: it is served and ended all the same.
            this.started = true;
            this.count = StreamCount::begin(&this.runtime).ok();
        }
        if this.due(cx) {
            this.finished = true;
            // The stream inside is dropped now: nothing more is sent.
            this.inner = Body::empty();
            let last = this.ending_bytes();
            if last.is_none() {
                this.count = None;
            }
            return Poll::Ready(last.map(|bytes| Ok(Frame::data(bytes))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(id) = frame.data_ref().and_then(|data| sse_bytes::last_id(data)) {
                    let last = this.last_id.get_or_insert_with(Vec::new);
                    last.clear();
                    last.extend_from_slice(id);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                // Its natural end: the count ends now, not when hyper drops
                // the body.
                this.finished = true;
                this.count = None;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}
