//! `last_call::tower::StreamLayer` around a tower service under plain
//! hyper on 127.0.0.1, on a private runtime: a streaming response body
//! counted for its life (to its end, or the client gone), never counted
//! when never sent, and 503 + `Retry-After` to new requests while draining.

#![cfg(feature = "tower")]

mod common;

use common::sse::{Arrival, SseStream};
use http_body_util::StreamBody;
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use last_call::tower::StreamLayer;
use last_call::Runtime;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tower::{Layer, Service, ServiceExt};

const WAIT: Duration = Duration::from_secs(10);

type Chunks =
    StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, std::io::Error>>>;

/// Sent as a chunk, the body fails instead (a source that broke).
const FAIL: &[u8] = b"!fail";
/// Sent as a chunk, the body panics instead (a bug in it).
const PANIC: &[u8] = b"!panic";

/// The app: each response body streams what the test sends into the
/// channel it hands over, until the test drops its sender.
#[derive(Clone, Default)]
struct Streams {
    senders: Arc<Mutex<Vec<mpsc::UnboundedSender<Bytes>>>>,
}

impl Streams {
    fn respond(&self) -> Response<Chunks> {
        let (sender, mut chunks) = mpsc::unbounded_channel::<Bytes>();
        self.senders.lock().unwrap().push(sender);
        let body = futures_util::stream::poll_fn(move |cx| {
            chunks.poll_recv(cx).map(|chunk| {
                chunk.map(|bytes| match &bytes[..] {
                    FAIL => Err(std::io::Error::other("the source broke")),
                    PANIC => panic!("a bug inside the body (expected by the test)"),
                    _ => Ok(Frame::data(bytes)),
                })
            })
        });
        Response::new(StreamBody::new(futures_util::StreamExt::boxed(body)))
    }

    fn take_sender(&self) -> mpsc::UnboundedSender<Bytes> {
        self.senders.lock().unwrap().remove(0)
    }
}

fn service(
    streams: &Streams,
) -> impl Service<
    Request<Incoming>,
    Response = Response<Chunks>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    let streams = streams.clone();
    tower::service_fn(move |_request: Request<Incoming>| {
        let response = streams.respond();
        async move { Ok::<_, Infallible>(response) }
    })
}

/// Serves the layered app under hyper's HTTP/1 server; its address.
fn serve(tokio: &tokio::runtime::Runtime, runtime: &Runtime, streams: &Streams) -> SocketAddr {
    let listener = tokio
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = StreamLayer::new().on(runtime).layer(service(streams));
    tokio.spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let app = TowerToHyperService::new(app.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), app),
            );
        }
    });
    addr
}

/// The layered app served on 127.0.0.1 by a tokio runtime of its own, on
/// a private last-call runtime.
struct Served {
    runtime: Runtime,
    tokio: tokio::runtime::Runtime,
    streams: Streams,
    addr: SocketAddr,
}

impl Served {
    fn start() -> Self {
        let runtime = Runtime::new();
        let tokio = common::tokio_runtime(2);
        let streams = Streams::default();
        let addr = serve(&tokio, &runtime, &streams);
        Served {
            runtime,
            tokio,
            streams,
            addr,
        }
    }

    fn open(&self) -> SseStream {
        common::sse::open(&self.tokio, self.addr, "/", &[])
    }

    /// A stream opened, its first chunk received and the stream counted;
    /// with the sender that feeds it.
    fn open_counted(&self) -> (SseStream, mpsc::UnboundedSender<Bytes>) {
        let stream = self.open();
        assert_eq!(stream.status, 200);
        let sender = self.streams.take_sender();
        sender.send(Bytes::from_static(b"data: one\n\n")).unwrap();
        assert_eq!(stream.next(WAIT), Some(Arrival::Event("data: one".into())));
        common::wait_active(&self.runtime, 1, WAIT);
        (stream, sender)
    }

    /// No stream open, and the one begun counted once.
    fn assert_counted_once(&self) {
        common::wait_active(&self.runtime, 0, WAIT);
        assert_eq!(self.runtime.streams_started_total(), 1);
        assert_eq!(self.runtime.streams_finished_total(), 1);
    }
}

#[test]
fn a_body_counts_from_its_first_poll_to_its_end() {
    let served = Served::start();
    let (stream, sender) = served.open_counted();
    sender.send(Bytes::from_static(b"data: two\n\n")).unwrap();
    drop(sender);
    assert_eq!(stream.until_end(WAIT), ["data: two"]);
    assert_eq!(stream.cut(), None);
    served.assert_counted_once();
}

#[test]
fn a_client_that_goes_away_ends_its_count_once() {
    let served = Served::start();
    let (stream, sender) = served.open_counted();
    drop(stream);
    // hyper notices at its next write at the latest.
    let deadline = Instant::now() + WAIT;
    while served.runtime.active_streams() != 0 {
        assert!(Instant::now() < deadline, "the count never ended");
        let _ = sender.send(Bytes::from_static(b": ping\n\n"));
        std::thread::sleep(Duration::from_millis(20));
    }
    served.assert_counted_once();
}

#[test]
fn a_response_never_sent_is_never_counted() {
    let runtime = Runtime::new();
    let tokio = common::tokio_runtime(2);
    let streams = Streams::default();
    let app = StreamLayer::new()
        .on(&runtime)
        .layer(tower::service_fn(move |_: Request<()>| {
            let response = streams.respond();
            async move { Ok::<_, Infallible>(response) }
        }));
    let response = tokio.block_on(app.oneshot(Request::new(()))).unwrap();
    drop(response);
    assert_eq!(runtime.streams_started_total(), 0);
    assert_eq!(runtime.active_streams(), 0);
}

#[test]
fn while_draining_new_requests_get_503_with_retry_after() {
    let served = Served::start();
    // A stream open before the drain goes on.
    let (open_before, sender) = served.open_counted();
    served.runtime.set_draining(true).unwrap();
    let refused = served.open();
    assert_eq!(refused.status, 503);
    assert_eq!(refused.headers["retry-after"], "2");
    assert!(common::sse::body_text(&refused).contains("draining"));
    // Only the stream open before was counted; it still streams.
    assert_eq!(served.runtime.streams_started_total(), 1);
    sender.send(Bytes::from_static(b"data: after\n\n")).unwrap();
    drop(sender);
    assert_eq!(open_before.until_end(WAIT), ["data: after"]);
    served.assert_counted_once();
    // Back in rotation: served again.
    served.runtime.set_draining(false).unwrap();
    assert_eq!(served.open().status, 200);
}

/// A body that ends in `last` after one chunk: counted once, back to 0.
fn counted_once_when_the_body(last: &'static [u8]) {
    let served = Served::start();
    let (stream, sender) = served.open_counted();
    sender.send(Bytes::from_static(last)).unwrap();
    stream.until_end(WAIT);
    assert!(stream.cut().is_some(), "the body ended in an error");
    served.assert_counted_once();
    // The server goes on serving.
    assert_eq!(served.open().status, 200);
}

#[test]
fn a_body_that_errors_is_counted_once() {
    counted_once_when_the_body(FAIL);
}

#[test]
fn a_panic_inside_the_body_ends_its_count_once() {
    counted_once_when_the_body(PANIC);
}
