//! A tower [`Layer`] for hosts that serve streams from plain hyper, tonic
//! or any tower stack: each response body of the routes it wraps counts as
//! a stream while it is sent, and while the pod drains, new requests are
//! answered 503 with `Retry-After` (another pod takes them).
//!
//! ```no_run
//! use last_call::tower::StreamLayer;
//! use tower_layer::Layer;
//! # fn f<S>(service: S) {
//! let service = StreamLayer::new().layer(service);
//! # }
//! ```
//!
//! The layer counts; it does not end a body. A body that streams for long
//! ends by its own kind in time ([`last_call::StreamGuard::end_in`] says
//! when), or is ended by the server's graceful shutdown; for axum's `Sse`,
//! [`crate::sse`] does both.
//!
//! [`last_call::StreamGuard::end_in`]: last_call_runtime::StreamGuard::end_in

use crate::count::StreamCount;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use last_call_http::Runtime;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tower_layer::Layer;
use tower_service::Service;

/// Told to clients refused while draining: by then another pod is ready.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(2);

/// Counts each response body as a stream for its life, and refuses new
/// requests with 503 + `Retry-After` while draining. On the process-wide
/// runtime unless [`StreamLayer::on`] names another.
#[derive(Clone, Debug)]
pub struct StreamLayer {
    runtime: Option<Runtime>,
    retry_after: HeaderValue,
}

impl Default for StreamLayer {
    fn default() -> Self {
        StreamLayer::new()
    }
}

impl StreamLayer {
    /// The layer on the process-wide runtime, `Retry-After: 2`.
    pub fn new() -> StreamLayer {
        StreamLayer {
            runtime: None,
            retry_after: retry_after_value(DEFAULT_RETRY_AFTER),
        }
    }

    /// Counts on `runtime` (a private one) instead.
    pub fn on(mut self, runtime: &Runtime) -> StreamLayer {
        self.runtime = Some(runtime.clone());
        self
    }

    /// The `Retry-After` of refused requests, in whole seconds (at least 1).
    pub fn retry_after(mut self, after: Duration) -> StreamLayer {
        self.retry_after = retry_after_value(after);
        self
    }
}

fn retry_after_value(after: Duration) -> HeaderValue {
    let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    HeaderValue::from(seconds.max(1))
}

impl<S> Layer<S> for StreamLayer {
    type Service = StreamService<S>;

    fn layer(&self, inner: S) -> StreamService<S> {
        StreamService {
            inner,
            runtime: self
                .runtime
                .clone()
                .unwrap_or_else(|| Runtime::global().clone()),
            retry_after: self.retry_after.clone(),
        }
    }
}

/// The service of [`StreamLayer`].
#[derive(Clone, Debug)]
pub struct StreamService<S> {
    inner: S,
    runtime: Runtime,
    retry_after: HeaderValue,
}

impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for StreamService<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    ResponseBody: Body<Data = Bytes>,
{
    type Response = Response<CountedBody<ResponseBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        if self.runtime.is_draining() {
            return ResponseFuture {
                state: State::Refused {
                    retry_after: Some(self.retry_after.clone()),
                },
            };
        }
        ResponseFuture {
            state: State::Called {
                future: self.inner.call(request),
                runtime: Some(self.runtime.clone()),
            },
        }
    }
}

pin_project! {
    /// The response future of [`StreamService`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F> {
        Called { #[pin] future: F, runtime: Option<Runtime> },
        Refused { retry_after: Option<HeaderValue> },
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<CountedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Called { future, runtime } => {
                let response = ready!(future.poll(cx))?;
                let runtime = runtime.take().expect("polled after completion");
                Poll::Ready(Ok(response.map(|body| CountedBody::new(body, runtime))))
            }
            StateProjection::Refused { retry_after } => {
                let mut response = Response::new(CountedBody::refused());
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                let headers = response.headers_mut();
                headers.insert(
                    header::RETRY_AFTER,
                    retry_after.take().expect("polled after completion"),
                );
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                Poll::Ready(Ok(response))
            }
        }
    }
}

/// The answer to a request refused while draining.
const REFUSED: &[u8] = b"draining: retry on another instance\n";

pin_project! {
    /// A response body counted as a stream from its first poll to its end
    /// (or its drop, however it ends: an error, the client gone, a panic
    /// in it). A body never polled is never counted.
    pub struct CountedBody<B> {
        #[pin]
        inner: Option<B>,
        runtime: Option<Runtime>,
        count: Option<StreamCount>,
        refused: Option<Bytes>,
    }
}

impl<B> CountedBody<B> {
    fn new(inner: B, runtime: Runtime) -> CountedBody<B> {
        CountedBody {
            inner: Some(inner),
            runtime: Some(runtime),
            count: None,
            refused: None,
        }
    }

    fn refused() -> CountedBody<B> {
        CountedBody {
            inner: None,
            runtime: None,
            count: None,
            refused: Some(Bytes::from_static(REFUSED)),
        }
    }
}

impl<B> Body for CountedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(this.refused.take().map(|text| Ok(Frame::data(text))));
        };
        if let Some(runtime) = this.runtime.take() {
            // The stream begins here, at the first poll. A count that
            // cannot be kept (the most streams a runtime counts) leaves
            // the body uncounted: it is served all the same.
            *this.count = StreamCount::begin(runtime.core()).ok();
        }
        let frame = ready!(inner.poll_frame(cx));
        if frame.is_none() {
            // Its end: the stream is over now, not when hyper drops it.
            this.count.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(inner) => inner.is_end_stream(),
            None => self.refused.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => SizeHint::with_exact(self.refused.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}
