//! Two stream hubs (two "pods", `examples/hub_holder` in child processes)
//! on one real redis-server (`GS_STREAM_STORE`): one order on every pod, a
//! resume on the other pod exactly once, Redis killed and restarted empty
//! under them, and Redis over TLS with a private CA.

mod common;

#[path = "../crates/store/tests/common/mod.rs"]
mod redis_server;

#[path = "../crates/store/tests/pki/mod.rs"]
mod pki;

use common::sse::{self, Arrival, SseStream};
use common::{clear_gs_environment, example, ChildProcess};
use last_call::{Runtime, StreamKind};
use redis_server::{RedisServer, ServerTls};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

struct Pod {
    child: ChildProcess,
    addr: SocketAddr,
    feed_token: String,
    task_token: String,
}

fn pod(store: &str) -> Pod {
    pod_with(store, &[])
}

fn pod_with(store: &str, env: &[(&str, &str)]) -> Pod {
    let mut command = Command::new(example("hub_holder"));
    clear_gs_environment(&mut command);
    command
        .env("GS_STREAM_ADDR", "127.0.0.1:0")
        .env("GS_STREAM_SECRET", "a secret every pod shares, 32 bytes")
        .env("GS_STREAM_STORE", store)
        .env("GS_DRAIN_DELAY_SECONDS", "0")
        .env("GS_SHUTDOWN_TIMEOUT_SECONDS", "4")
        .envs(env.iter().copied());
    let mut child = ChildProcess::spawn(command);
    let line = child.wait_for_line("\"feed\"", WAIT);
    let tokens = common::json(&line);
    Pod {
        addr: tokens["addr"].as_str().unwrap().parse().unwrap(),
        feed_token: tokens["feed"].as_str().unwrap().to_owned(),
        task_token: tokens["task"].as_str().unwrap().to_owned(),
        child,
    }
}

fn feed(client: &tokio::runtime::Runtime, pod: &Pod, last_event_id: Option<&str>) -> SseStream {
    channel(client, pod, "feed", &pod.feed_token, last_event_id)
}

fn channel(
    client: &tokio::runtime::Runtime,
    pod: &Pod,
    name: &str,
    token: &str,
    last_event_id: Option<&str>,
) -> SseStream {
    let path = format!("/streams/{name}?token={token}");
    let headers: Vec<(&str, &str)> = last_event_id
        .map(|id| ("last-event-id", id))
        .into_iter()
        .collect();
    let stream = sse::open(client, pod.addr, &path, &headers);
    assert_eq!(stream.status, 200);
    stream
}

/// SIGTERM, and the pod exits 0.
fn stop(pod: &mut Pod) {
    ChildProcess::signal(pod.child.pid(), libc::SIGTERM);
    let status = pod.child.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", pod.child.stderr());
}

/// The next event's text (the stream's first `retry:` alone skipped).
fn next(stream: &SseStream) -> String {
    loop {
        match stream.next_event(WAIT) {
            Some(Arrival::Event(text)) if text.starts_with("retry:") && !text.contains('\n') => {
                continue
            }
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
    let client = common::tokio_runtime(1);
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
    for mut pod in [a, b] {
        stop(&mut pod);
    }
}

#[test]
fn redis_killed_and_restarted_empty_subscribers_get_every_event_or_gap_and_pods_exit_0() {
    killed_and_restarted(RedisServer::start());
}

/// With every write fsynced to the append-only file, the restarted server
/// has every event; its replication id is new all the same, so an id from
/// before is told `gap` (docs/hub.md: a restart that lost nothing cannot be
/// told from one that did).
#[test]
fn redis_with_aof_always_killed_and_restarted_subscribers_get_every_event_or_gap_and_pods_exit_0() {
    killed_and_restarted(RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]));
}

fn killed_and_restarted(mut redis: RedisServer) {
    let mut a = pod(&redis.url());
    let client = common::tokio_runtime(1);
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
    stop(&mut a);
}

/// Resident memory of this process, in bytes.
/// A subscriber to `channel` on this process's hub at `addr`, which has
/// received `data` published after it subscribed.
fn subscribed_in_process(
    client: &tokio::runtime::Runtime,
    addr: SocketAddr,
    channel: &str,
    data: &str,
) -> SseStream {
    let runtime = Runtime::global();
    let token = runtime
        .hub_subscribe_token(channel, Duration::from_secs(60))
        .unwrap();
    let subscriber = sse::open(
        client,
        addr,
        &format!("/streams/{channel}?token={token}"),
        &[],
    );
    assert_eq!(subscriber.status, 200);
    runtime
        .hub_publish(channel, "step", data, None, StreamKind::Resumable)
        .unwrap();
    assert!(next(&subscriber).ends_with(&format!("data: {data}")));
    subscriber
}

fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

#[test]
fn a_publisher_outpacing_a_stopped_redis_is_told_busy_memory_stays_bounded_and_it_recovers() {
    use last_call::{Error, HubOptions, StoreUrl};
    common::require_process_per_test();
    let redis = RedisServer::start();
    let runtime = Runtime::global();
    let mut options = HubOptions::new("127.0.0.1:0", "a secret every pod shares, 32 bytes");
    options.store = StoreUrl::parse(&redis.url()).unwrap();
    options.publish_queue = 100;
    let addr = runtime.start_hub(options).unwrap();
    let probes = runtime
        .start_probe_listener(last_call::ProbeOptions::new("127.0.0.1:0"))
        .unwrap();
    let health = || common::request(probes, "GET", "/healthz", &[("accept", "application/json")]);
    let (status, body, _) = health();
    assert_eq!(status, 200);
    assert!(body.contains(r#""stream_store":{"state":"ok"}"#), "{body}");
    let client = common::tokio_runtime(1);
    let subscriber = subscribed_in_process(&client, addr, "flood", "before");
    // Redis stops answering (longer than the client's timeouts).
    ChildProcess::signal(redis.pid(), libc::SIGSTOP);
    let data = "x".repeat(1024);
    let before = resident();
    let (mut queued, mut busy) = (0u64, 0u64);
    for _ in 0..200_000 {
        match runtime.hub_publish("flood", "step", &data, None, StreamKind::Resumable) {
            Ok(_) => queued += 1,
            Err(Error::HubBusy) => busy += 1,
            Err(other) => panic!("{other}"),
        }
    }
    let grown = resident().saturating_sub(before);
    assert!(
        busy > 0,
        "the queue never said it was full ({queued} queued)"
    );
    // 200 MB were offered; a bounded queue holds 100 events.
    assert!(grown < 64 << 20, "grew by {grown} bytes");
    let degraded =
        || last_call::metrics::render_prometheus(runtime).contains("gs_hub_store_degraded 1\n");
    let deadline = Instant::now() + WAIT;
    while !degraded() {
        assert!(Instant::now() < deadline, "never reported degraded");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Liveness stays 200 and says the store is degraded, and since when.
    let (status, body, _) = health();
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""state":"degraded","degraded_seconds":"#),
        "{body}"
    );
    let (_, text, _) = common::request(probes, "GET", "/healthz", &[]);
    assert!(
        text.starts_with("alive (stream store degraded for "),
        "{text}"
    );
    ChildProcess::signal(redis.pid(), libc::SIGCONT);
    let deadline = Instant::now() + WAIT;
    while degraded() {
        assert!(Instant::now() < deadline, "never recovered");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Through the store again: a later event reaches the subscriber.
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "no event after the store came back"
        );
        let _ = runtime.hub_publish("flood", "step", "after", None, StreamKind::Resumable);
        if let Some(Arrival::Event(text)) = subscriber.next_event(Duration::from_millis(200)) {
            if text.ends_with("data: after") {
                break;
            }
        }
    }
}

#[test]
fn at_drain_a_task_stream_is_handed_off_and_follows_its_task_on_the_other_pod_to_its_end() {
    let redis = RedisServer::start();
    // A: drain delay 0.5 s, close notice 2 s, timeout 6 s, no hook. The
    // hand-off window is 0.5 to 2.5 s after SIGTERM; the streams' last
    // moment 6 - 0.5 = 5.5 s, when A's task is cancelled (closed with
    // task_failed through the store).
    let timings = [
        ("GS_DRAIN_DELAY_SECONDS", "0.5"),
        ("GS_SHUTDOWN_TIMEOUT_SECONDS", "6"),
        ("GS_CLOSE_NOTICE_SECONDS", "2"),
    ];
    let mut a = pod_with(&redis.url(), &timings);
    let b = pod(&redis.url());
    let client = common::tokio_runtime(1);
    let on_a = channel(&client, &a, "task", &a.task_token, None);
    let before = ids(&on_a, 3);
    let signalled = Instant::now();
    ChildProcess::signal(a.child.pid(), libc::SIGTERM);
    // Handed off in the window: retry:, the last id, event: reconnect.
    let mut last_id = before.last().cloned().unwrap();
    let nudge = loop {
        let text = next(&on_a);
        if text.contains("event: reconnect") {
            break text;
        }
        if let Some(id) = id_of(&text) {
            last_id = id.to_owned();
        }
    };
    let at = signalled.elapsed();
    assert!(
        at >= Duration::from_millis(400) && at < Duration::from_millis(3_500),
        "nudged at {at:?}"
    );
    assert!(nudge.contains(&format!("id: {last_id}")), "{nudge}");
    // The client reconnects to B with its last id: every later event of
    // A's task, exactly once, to its true end (task_failed at A's streams'
    // last moment), then the end of the stream.
    let on_b = channel(&client, &b, "task", &b.task_token, Some(&last_id));
    let mut previous = last_call_store::ids::EventId::parse(&last_id).unwrap();
    let ending = loop {
        let text = next(&on_b);
        assert!(
            !text.starts_with("event: gap"),
            "a gap with a healthy store: {text}"
        );
        let id = last_call_store::ids::EventId::parse(id_of(&text).unwrap()).unwrap();
        assert!(id > previous, "{id} after {previous}");
        previous = id;
        if text.contains("event: task_failed") {
            break text;
        }
    };
    assert!(ending.contains("shutdown"), "{ending}");
    let ended_at = signalled.elapsed();
    assert!(
        ended_at >= Duration::from_secs(5),
        "the task ended at {ended_at:?}"
    );
    assert_eq!(on_b.next(WAIT), Some(Arrival::End));
    // A exits 0 once its work is done.
    assert_eq!(
        a.child.wait_exit(WAIT).code(),
        Some(0),
        "{}",
        a.child.stderr()
    );
    let mut b = b;
    stop(&mut b);
}

#[test]
fn a_resume_from_an_id_of_another_epoch_a_malformed_or_a_huge_one_starts_with_gap() {
    let redis = RedisServer::start();
    let mut a = pod(&redis.url());
    let client = common::tokio_runtime(1);
    let on_a = feed(&client, &a, None);
    let seen = ids(&on_a, 3);
    let real = last_call_store::ids::EventId::parse(&seen[2]).unwrap();
    let other_epoch = format!("0123456789abcdef-{}-{}", real.ms, real.seq);
    for bad in [
        other_epoch.as_str(),
        "garbage",
        "ffffffffffffffff-99999999999999999999999-1",
        "1",
    ] {
        let resumed = feed(&client, &a, Some(bad));
        let first = next(&resumed);
        assert!(first.starts_with("event: gap"), "{bad:?}: {first}");
        // Then the history, and live events, in order.
        let after = ids(&resumed, 3);
        let parsed: Vec<_> = after
            .iter()
            .map(|id| last_call_store::ids::EventId::parse(id).unwrap())
            .collect();
        assert!(parsed.windows(2).all(|w| w[0] < w[1]), "{after:?}");
    }
    // The real id: no gap, the next events.
    let resumed = feed(&client, &a, Some(&seen[1]));
    assert_eq!(id_of(&next(&resumed)), Some(seen[2].as_str()));
    stop(&mut a);
}

#[test]
fn two_hubs_on_a_tls_redis_with_a_private_ca_and_client_certificates() {
    let pki = pki::Pki::new("hub");
    let server = pki.issue("redis", &["127.0.0.1"]);
    let redis = RedisServer::start_tls(ServerTls {
        cert: server.cert,
        key: server.key,
        ca: pki.ca_file.clone(),
        auth_clients: true,
    });
    let client_leaf = pki.issue("hub", &["hub"]);
    let (ca, cert, key) = (
        pki.ca_file.to_str().unwrap(),
        client_leaf.cert.to_str().unwrap(),
        client_leaf.key.to_str().unwrap(),
    );
    let tls = [
        ("GS_STREAM_STORE_CA_FILE", ca),
        ("GS_STREAM_STORE_CLIENT_CERT_FILE", cert),
        ("GS_STREAM_STORE_CLIENT_KEY_FILE", key),
    ];
    let (a, b) = (pod_with(&redis.url(), &tls), pod_with(&redis.url(), &tls));
    let client = common::tokio_runtime(1);
    let on_a = feed(&client, &a, None);
    let seen_a = ids(&on_a, 12);
    // Part read on A, the rest on B after Last-Event-ID: exactly once.
    let resumed = feed(&client, &b, Some(&seen_a[3]));
    assert_eq!(ids(&resumed, seen_a.len() - 4), seen_a[4..]);
    assert!(redis.cli(&["DBSIZE"]).parse::<u32>().unwrap() > 0);
    for mut pod in [a, b] {
        stop(&mut pod);
    }
}

/// The hub does not start: exit 2, and stderr names `variable`.
fn refused_at_start(store: &str, env: &[(&str, &str)], variable: &str) {
    let mut command = Command::new(example("hub_holder"));
    clear_gs_environment(&mut command);
    command
        .env("GS_STREAM_ADDR", "127.0.0.1:0")
        .env("GS_STREAM_SECRET", "a secret every pod shares, 32 bytes")
        .env("GS_STREAM_STORE", store)
        .envs(env.iter().copied());
    let mut child = ChildProcess::spawn(command);
    let status = child.wait_exit(WAIT);
    let stderr = child.stderr();
    assert_eq!(status.code(), Some(2), "{store} {env:?}: {stderr}");
    assert!(
        stderr.contains(&format!("invalid {variable}=")),
        "{store} {env:?}: {stderr}"
    );
}

#[test]
fn a_bad_tls_setting_for_the_store_stops_the_hub_at_start_naming_its_variable() {
    let pki = pki::Pki::new("bad");
    let garbage = pki.file("garbage.pem", "not a certificate\n");
    let leaf = pki.issue("hub", &["hub"]);
    let tls_store = "rediss://127.0.0.1:6390";
    refused_at_start(
        tls_store,
        &[("GS_STREAM_STORE_CA_FILE", "/nonexistent/ca.pem")],
        "GS_STREAM_STORE_CA_FILE",
    );
    refused_at_start(
        tls_store,
        &[("GS_STREAM_STORE_CA_FILE", garbage.to_str().unwrap())],
        "GS_STREAM_STORE_CA_FILE",
    );
    refused_at_start(
        tls_store,
        &[("GS_STREAM_STORE_CA_FILE", "")],
        "GS_STREAM_STORE_CA_FILE",
    );
    refused_at_start(
        tls_store,
        &[(
            "GS_STREAM_STORE_CLIENT_CERT_FILE",
            leaf.cert.to_str().unwrap(),
        )],
        "GS_STREAM_STORE_CLIENT_KEY_FILE",
    );
    // A CA for a plaintext store: TLS expected where there would be none.
    refused_at_start(
        "redis://127.0.0.1:6390",
        &[("GS_STREAM_STORE_CA_FILE", pki.ca_file.to_str().unwrap())],
        "GS_STREAM_STORE_CA_FILE",
    );
    refused_at_start("rediss://127.0.0.1:6390/#insecure", &[], "GS_STREAM_STORE");
}

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// A "worker process" of a pod: a private runtime told it has `workers`
/// siblings, its hub on `port`.
fn worker(workers: u32, port: u16, store: &str) -> Result<last_call::Runtime, last_call::Error> {
    let runtime = last_call::Runtime::new();
    runtime.set_worker_processes(workers)?;
    let mut options = last_call::hub::HubOptions::new(
        format!("127.0.0.1:{port}"),
        "a secret every pod shares, 32 bytes",
    );
    options.store = last_call_store::StoreUrl::parse(store).unwrap();
    runtime.start_hub(options)?;
    Ok(runtime)
}

#[test]
fn two_workers_share_one_hub_port_and_every_subscriber_gets_both_workers_events() {
    let redis = RedisServer::start();
    let port = free_port();
    let workers: Vec<last_call::Runtime> = (0..2)
        .map(|_| worker(2, port, &redis.url()).expect("a worker's hub on the shared port"))
        .collect();
    // A process that says it is alone does not share the port: it is told
    // the port is in use, as a second copy of a server should be.
    let alone = worker(1, port, &redis.url()).expect_err("a lone process on the workers' port");
    assert!(alone.to_string().contains("GS_STREAM_ADDR"), "{alone}");

    let client = common::tokio_runtime(1);
    let token = workers[0]
        .hub_subscribe_token("jobs", Duration::from_secs(60))
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // The kernel spreads them over the two workers' sockets.
    let streams: Vec<SseStream> = (0..12)
        .map(|_| {
            let stream = sse::open(&client, addr, &format!("/streams/jobs?token={token}"), &[]);
            assert_eq!(stream.status, 200);
            stream
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    while workers.iter().map(|w| w.active_streams()).sum::<u32>() < 12 {
        assert!(
            Instant::now() < deadline,
            "the subscribers were not all counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Each worker publishes: whichever worker holds a subscriber, one of
    // the two publishers is the other one.
    let mut published = Vec::new();
    for round in 0..3 {
        for (n, worker) in workers.iter().enumerate() {
            let data = format!("worker-{n}-{round}");
            worker
                .hub_publish("jobs", "job", &data, None, last_call::StreamKind::Resumable)
                .unwrap();
            published.push(data);
        }
    }
    published.sort();
    for stream in &streams {
        let mut got: Vec<String> = (0..published.len())
            .map(|_| {
                let text = next(stream);
                let data = text.lines().find_map(|line| line.strip_prefix("data: "));
                data.expect("an event with data").to_owned()
            })
            .collect();
        got.sort();
        assert_eq!(got, published, "every worker's events, each once");
    }
}

#[test]
fn several_workers_refuse_the_in_process_store_and_port_0_by_name() {
    let memory = worker(2, free_port(), "memory:").expect_err("memory with two workers");
    assert!(memory.to_string().contains("GS_STREAM_STORE"), "{memory}");
    let redis = RedisServer::start();
    let any_port = worker(2, 0, &redis.url()).expect_err("port 0 with two workers");
    assert!(any_port.to_string().contains("port 0"), "{any_port}");
    assert!(last_call::Runtime::new().set_worker_processes(0).is_err());
}

#[test]
fn a_hub_that_cannot_verify_the_tls_redis_runs_degraded_and_sends_nothing_in_plaintext() {
    use last_call::{HubOptions, Runtime, StoreTls, StoreUrl};
    common::require_process_per_test();
    let (ours, theirs) = (pki::Pki::new("ours"), pki::Pki::new("theirs"));
    let leaf = theirs.issue("redis", &["127.0.0.1"]);
    let redis = RedisServer::start_tls(ServerTls {
        cert: leaf.cert,
        key: leaf.key,
        ca: theirs.ca_file.clone(),
        auth_clients: false,
    });
    let runtime = Runtime::global();
    let mut options = HubOptions::new("127.0.0.1:0", "a secret every pod shares, 32 bytes");
    options.store = StoreUrl::parse(&redis.url()).unwrap();
    options.store_tls = StoreTls {
        ca_file: Some(ours.ca_file.clone()),
        ..StoreTls::default()
    };
    let addr = runtime.start_hub(options).unwrap();
    let probes = runtime
        .start_probe_listener(last_call::ProbeOptions::new("127.0.0.1:0"))
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body, _) =
            common::request(probes, "GET", "/healthz", &[("accept", "application/json")]);
        assert_eq!(status, 200, "{body}");
        if body.contains(r#""state":"degraded""#) {
            break;
        }
        assert!(Instant::now() < deadline, "never reported degraded: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Local subscribers still get local publishes (degraded, this pod only).
    let client = common::tokio_runtime(1);
    subscribed_in_process(&client, addr, "local", "here");
    // Nothing reached Redis: no plaintext fallback, no write on an
    // unverified link.
    assert_eq!(redis.cli(&["DBSIZE"]), "0");
}
