//! Two stream hubs (two "pods", `examples/hub_holder` in child processes)
//! on one real redis-server (`GS_STREAM_STORE`): one order on every pod, a
//! resume on the other pod exactly once, and Redis killed and restarted
//! empty under them.

mod common;

#[path = "../crates/store/tests/common/mod.rs"]
mod redis_server;

use common::sse::{self, Arrival, SseStream};
use common::{clear_gs_environment, example, ChildProcess};
use redis_server::RedisServer;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

struct Pod {
    child: ChildProcess,
    addr: SocketAddr,
    feed_token: String,
}

fn pod(store: &str) -> Pod {
    let mut command = Command::new(example("hub_holder"));
    clear_gs_environment(&mut command);
    command
        .env("GS_STREAM_ADDR", "127.0.0.1:0")
        .env("GS_STREAM_SECRET", "a secret every pod shares, 32 bytes")
        .env("GS_STREAM_STORE", store)
        .env("GS_DRAIN_DELAY_SECONDS", "0")
        .env("GS_SHUTDOWN_TIMEOUT_SECONDS", "4");

    let mut child = ChildProcess::spawn(command);
    let line = child.wait_for_line("\"feed\"", WAIT);
    let tokens = common::json(&line);
    Pod {
        addr: tokens["addr"].as_str().unwrap().parse().unwrap(),
        feed_token: tokens["feed"].as_str().unwrap().to_owned(),
        child,
    }
}

fn client() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn feed(client: &tokio::runtime::Runtime, pod: &Pod, last_event_id: Option<&str>) -> SseStream {
    let path = format!("/streams/feed?token={}", pod.feed_token);
    let headers: Vec<(&str, &str)> = last_event_id
        .map(|id| ("last-event-id", id))
        .into_iter()
        .collect();
    let stream = sse::open(client, pod.addr, &path, &headers);
    assert_eq!(stream.status, 200);
    stream
}

/// The next event's text (`retry:` and heartbeats skipped).
fn next(stream: &SseStream) -> String {
    loop {
        match stream.next_event(WAIT) {
            Some(Arrival::Event(text)) if text.starts_with("retry:") => continue,
            Some(Arrival::Event(text)) => return text,
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

fn id_of(text: &str) -> Option<&str> {
    text.strip_prefix("id: ")
        .and_then(|rest| rest.split('\n').next())
}

/// `count` ids of events (not gaps) from `stream`.
fn ids(stream: &SseStream, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let text = next(stream);
        if let Some(id) = id_of(&text) {
            ids.push(id.to_owned());
        }
    }
    ids
}

#[test]
fn two_hubs_on_one_redis_see_one_order_and_a_resume_on_the_other_is_exact() {
    let redis = RedisServer::start();
    let (a, b) = (pod(&redis.url()), pod(&redis.url()));
    let client = client();
    let on_a = feed(&client, &a, None);
    let on_b = feed(&client, &b, None);
    // Both pods publish to `feed` every 100 ms: each subscriber sees both
    // pods' events, in one order.
    let seen_a = ids(&on_a, 30);
    let seen_b = ids(&on_b, 30);

    let start = seen_a
        .iter()
        .position(|id| *id == seen_b[0])
        .expect("the two pods' subscribers overlap");
    let overlap = (seen_a.len() - start).min(seen_b.len());
    assert!(overlap >= 10, "{seen_a:?} / {seen_b:?}");
    assert_eq!(seen_a[start..start + overlap], seen_b[..overlap]);
    // Part read on A, the rest on B after Last-Event-ID: exactly once.
    let resumed = feed(&client, &b, Some(&seen_a[5]));
    let replayed = ids(&resumed, seen_a.len() - 6);
    assert_eq!(replayed, seen_a[6..]);
    for pod in [a, b] {
        let mut child = pod.child;
        ChildProcess::signal(child.pid(), libc::SIGTERM);
        assert_eq!(child.wait_exit(WAIT).code(), Some(0), "{}", child.stderr());
    }
}

#[test]
fn redis_killed_and_restarted_empty_subscribers_get_every_event_or_gap_and_pods_exit_0() {
    let mut redis = RedisServer::start();
    let mut a = pod(&redis.url());
    let client = client();
    let on_a = feed(&client, &a, None);
    let before = ids(&on_a, 5);
    redis.kill();
    // Degraded: A's own events still reach its subscriber, after a gap
    // (they no longer come through the store), with ids of A's own epoch.
    let mut texts = Vec::new();
    while texts
        .iter()
        .filter(|t: &&String| id_of(t).is_some())
        .count()
        < 5
    {
        texts.push(next(&on_a));
    }
    let epoch = |id: &str| id.split('-').next().unwrap().to_owned();
    let degraded_epoch = epoch(id_of(texts.last().unwrap()).unwrap());
    assert_ne!(degraded_epoch, epoch(&before[0]), "{texts:?}");
    assert!(
        texts.iter().any(|t| t.starts_with("event: gap")),
        "{texts:?}"
    );
    a.child.wait_for_stderr("unreachable", WAIT);
    // Back, empty: the pod says so, and the stream goes on from the store
    // (a new epoch), after a gap.
    redis.restart();
    a.child.wait_for_stderr("is back", WAIT);
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "no event from the restarted store"
        );
        let text = next(&on_a);
        if let Some(id) = id_of(&text) {
            let now = epoch(id);
            if now != degraded_epoch && now != epoch(&before[0]) {
                break;
            }
        }
    }
    // An id from before the restart: gap first.
    let resumed = feed(&client, &a, Some(&before[4]));
    assert!(next(&resumed).starts_with("event: gap"));
    ChildProcess::signal(a.child.pid(), libc::SIGTERM);
    assert_eq!(
        a.child.wait_exit(WAIT).code(),
        Some(0),
        "{}",
        a.child.stderr()
    );
}
