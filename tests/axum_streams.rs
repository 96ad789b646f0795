//! `last_call::axum`'s tracked `Sse` under axum's own server on 127.0.0.1,
//! on a private runtime: each stream counted exactly once however it ends
//! (an error, a client gone, never sent, a panic inside), and ended by its
//! kind once the shutdown sequence reaches it.

#![cfg(feature = "axum")]

mod common;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use common::sse::{open, Arrival};
use futures_util::stream::{self, StreamExt};
use last_call::axum::SseExt;
use last_call::{Config, Runtime, StreamKind};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// Serves `app` on 127.0.0.1 from `tokio`; its address.
fn serve(tokio: &tokio::runtime::Runtime, app: Router) -> SocketAddr {
    let listener = tokio
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio.spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A router that answers `/` with what `respond` makes, given its own
/// handle on `runtime`.
fn route<F, Fut>(runtime: &Runtime, respond: F) -> Router
where
    F: Fn(Runtime) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: IntoResponse,
{
    let gs = runtime.clone();
    Router::new().route("/", get(move || respond(gs.clone())))
}

fn ticks<E: Send + 'static>(
    n: usize,
) -> impl futures_util::Stream<Item = Result<Event, E>> + Send + 'static {
    stream::iter(0..n).map(|i| Ok(Event::default().id(i.to_string()).data(format!("tick {i}"))))
}

/// Every stream begun has ended, each once.
fn assert_counted_once(runtime: &Runtime, streams: u64) {
    common::wait_active(runtime, 0, WAIT);
    assert_eq!(runtime.streams_started_total(), streams);
    assert_eq!(runtime.streams_finished_total(), streams);
}

fn short_sequence(runtime: &Runtime) {
    // No hooks: ClosingStreams 1 s after the start, the last moment 1.75 s.
    runtime
        .configure(Config {
            drain_delay: Some(Duration::from_millis(100)),
            shutdown_timeout: Duration::from_secs(2),
            close_notice: Some(Duration::from_secs(1)),
            ..Config::default()
        })
        .unwrap();
}

#[test]
fn a_stream_that_errors_is_counted_once() {
    let runtime = Runtime::new();
    let tokio = common::tokio_runtime(2);
    let app = route(&runtime, |gs| async move {
        // After its events have gone out (an error in the same
        // write would lose the response head with them).
        let failing = ticks(2).chain(stream::once(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Err::<Event, _>(std::io::Error::other("the feed broke"))
        }));
        Sse::new(failing).tracked(StreamKind::Resumable).on(&gs)
    });
    let addr = serve(&tokio, app);
    let stream = open(&tokio, addr, "/", &[]);
    let events = stream.until_end(WAIT);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(stream.cut().is_some(), "an error cuts the body");
    assert_counted_once(&runtime, 1);
}

#[test]
fn a_client_that_goes_away_ends_its_stream_once() {
    let runtime = Runtime::new();
    let tokio = common::tokio_runtime(2);
    let app = route(&runtime, |gs| async move {
        Sse::new(ticks::<Infallible>(1).chain(stream::pending()))
            .keep_alive(KeepAlive::new().interval(Duration::from_millis(50)))
            .tracked(StreamKind::PodBound)
            .on(&gs)
    });
    let addr = serve(&tokio, app);
    let stream = open(&tokio, addr, "/", &[]);
    assert!(matches!(stream.next_event(WAIT), Some(Arrival::Event(_))));
    common::wait_active(&runtime, 1, WAIT);
    drop(stream);
    assert_counted_once(&runtime, 1);
}

#[test]
fn a_response_never_sent_is_never_counted() {
    let runtime = Runtime::new();
    let response: Response = Sse::new(ticks::<Infallible>(3))
        .tracked(StreamKind::Resumable)
        .on(&runtime)
        .into_response();
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    drop(response);
    assert_eq!(runtime.streams_started_total(), 0);
    assert_eq!(runtime.active_streams(), 0);
}

/// A stream's next event that panics, once the events before it are out.
async fn a_bug() -> Result<Event, Infallible> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    panic!("a bug inside the stream (expected by the test)")
}

#[test]
fn a_panic_inside_the_stream_ends_its_count_once() {
    let runtime = Runtime::new();
    let tokio = common::tokio_runtime(2);
    let app = route(&runtime, |gs| async move {
        let panicking = ticks::<Infallible>(1).chain(stream::once(a_bug()));
        Sse::new(panicking).tracked(StreamKind::Resumable).on(&gs)
    });
    let addr = serve(&tokio, app);
    let stream = open(&tokio, addr, "/", &[]);
    let events = stream.until_end(WAIT);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_counted_once(&runtime, 1);
    // The server goes on serving.
    let again = open(&tokio, addr, "/", &[]);
    assert_eq!(again.until_end(WAIT).len(), 1);
    assert_counted_once(&runtime, 2);
}

#[test]
fn a_stream_that_ends_by_itself_ends_its_count_at_its_end() {
    let runtime = Runtime::new();
    let tokio = common::tokio_runtime(2);
    let app = route(&runtime, |gs| async move {
        Sse::new(ticks::<Infallible>(3))
            .tracked(StreamKind::Resumable)
            .on(&gs)
    });
    let addr = serve(&tokio, app);
    let stream = open(&tokio, addr, "/", &[]);
    assert_eq!(stream.until_end(WAIT).len(), 3);
    assert_eq!(stream.cut(), None);
    assert_counted_once(&runtime, 1);
}

/// A route whose streams send three ticks, then wait forever.
fn endless(runtime: &Runtime, kind: StreamKind, last: Option<Event>) -> Router {
    route(runtime, move |gs| {
        let last = last.clone();
        async move {
            let tracked = Sse::new(ticks::<Infallible>(3).chain(stream::pending()))
                .keep_alive(KeepAlive::new().interval(Duration::from_millis(200)))
                .tracked(kind)
                .on(&gs);
            match last {
                Some(event) => tracked.final_event(event),
                None => tracked,
            }
        }
    })
}

/// The events of a stream opened before the shutdown, not heartbeats,
/// after it ended cleanly.
/// Returns them and how long after the start of the sequence it ended.
fn through_the_shutdown(runtime: &Runtime, app: Router) -> (Vec<String>, Duration) {
    short_sequence(runtime);
    let tokio = common::tokio_runtime(2);
    let addr = serve(&tokio, app);
    let stream = open(&tokio, addr, "/", &[]);
    common::wait_active(runtime, 1, WAIT);
    let started = Instant::now();
    assert!(runtime.begin_shutdown().unwrap());
    let events: Vec<String> = stream
        .until_end(WAIT)
        .into_iter()
        .filter(|e| !e.starts_with(':'))
        .collect();
    let after = started.elapsed();
    assert_eq!(stream.cut(), None, "{events:?}");
    assert_counted_once(runtime, 1);
    assert_eq!(runtime.streams_closed_by_deadline(), 1);
    (events, after)
}

#[test]
fn a_resumable_stream_is_told_to_reconnect_with_its_last_id() {
    let runtime = Runtime::new();
    let (events, after) =
        through_the_shutdown(&runtime, endless(&runtime, StreamKind::Resumable, None));
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(
        events[3],
        "retry: 1000\nid: 2\nevent: reconnect\ndata: {\"reason\":\"server shutting down\",\"retry_ms\":1000}"
    );
    // Within the notice window (1 s to 1.75 s after the start), not before.
    assert!(after >= Duration::from_millis(950), "{after:?}");
}

#[test]
fn a_pod_bound_stream_gets_its_final_event_at_the_last_moment() {
    let runtime = Runtime::new();
    let last = Event::default()
        .event("task_failed")
        .data("{\"reason\":\"shutdown\"}");
    let (events, after) = through_the_shutdown(
        &runtime,
        endless(&runtime, StreamKind::PodBound, Some(last)),
    );
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(
        events[3],
        "event: task_failed\ndata: {\"reason\":\"shutdown\"}"
    );
    assert!(after >= Duration::from_millis(1700), "{after:?}");
}

#[test]
fn a_pod_bound_stream_without_a_final_event_is_ended_at_stopping() {
    let runtime = Runtime::new();
    let (events, _) = through_the_shutdown(&runtime, endless(&runtime, StreamKind::PodBound, None));
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(runtime.phase() >= last_call::Phase::Stopping);
}
