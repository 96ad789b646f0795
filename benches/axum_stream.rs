//! What `last_call::axum`'s `.tracked(kind)` adds to axum's `Sse`, beside
//! a bare `Sse`, in one run:
//!
//! * per event: a stream of 1,000 events, each after one `Pending` (as a
//!   stream waiting on its source is), its response body polled to the end
//!   with one waker (a connection task's); the time per event;
//! * per stream: a stream of one event, from the response's making to its
//!   body's end (the count's begin and end, the phase wait, the extra box).
//!
//! No network: the body is polled in place, so the rows are the wrapper's
//! own cost. `cargo bench --features axum --bench axum_stream`
//! (`make bench` runs it).

use axum::body::Body;
use axum::response::sse::{Event, Sse};
use axum::response::IntoResponse;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::stream::{self, Stream, StreamExt};
use http_body::Body as _;
use last_call::axum::SseExt;
use last_call::{Runtime, StreamKind};
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

const EVENTS: usize = 1_000;

/// Pending once (waking its task at once), then ready: a source that was
/// not ready when first asked.
struct OncePending(bool);

impl Future for OncePending {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn events(n: usize) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    stream::iter(0..n).then(|i| async move {
        OncePending(false).await;
        Ok(Event::default().id(i.to_string()).data("tick"))
    })
}

/// Polls `body` to its end with one waker; the bytes it gave.
fn drain(mut body: Body) -> usize {
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    let mut bytes = 0;
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                bytes += frame.data_ref().map_or(0, |data| data.len());
            }
            Poll::Ready(Some(Err(error))) => panic!("{error}"),
            Poll::Ready(None) => return bytes,
            Poll::Pending => {}
        }
    }
}

fn bare(n: usize) -> usize {
    drain(Sse::new(events(n)).into_response().into_body())
}

fn tracked(runtime: &Runtime, n: usize) -> usize {
    drain(
        Sse::new(events(n))
            .tracked(StreamKind::Resumable)
            .on(runtime)
            .into_response()
            .into_body(),
    )
}

fn per_event(c: &mut Criterion) {
    let runtime = Runtime::new();
    let mut group = c.benchmark_group("sse per event");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function(BenchmarkId::new("bare Sse", EVENTS), |b| {
        b.iter(|| black_box(bare(EVENTS)))
    });
    group.bench_function(BenchmarkId::new("tracked Sse", EVENTS), |b| {
        b.iter(|| black_box(tracked(&runtime, EVENTS)))
    });
    group.finish();
    assert_eq!(runtime.active_streams(), 0);
}

fn per_stream(c: &mut Criterion) {
    let runtime = Runtime::new();
    let mut group = c.benchmark_group("sse per stream");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare Sse, 1 event", |b| b.iter(|| black_box(bare(1))));
    group.bench_function("tracked Sse, 1 event", |b| {
        b.iter(|| black_box(tracked(&runtime, 1)))
    });
    group.finish();
    assert_eq!(runtime.active_streams(), 0);
    assert!(runtime.streams_finished_total() > 0);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = per_event, per_stream
}
criterion_main!(benches);
