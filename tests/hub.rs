//! The stream hub over real HTTP on 127.0.0.1, driving the process-wide
//! runtime (one process per test under cargo-nextest): ordering, ids,
//! `Last-Event-ID` replay and the gap event, channel close, tokens, CORS,
//! a slow client, a vanished client, and SIGTERM with both kinds of
//! channel in a child process.

mod common;

use common::sse::{self, Arrival, SseStream};
use common::{clear_gs_environment, example, ChildProcess};
use last_call::{HubOptions, Runtime, StreamKind};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"a secret the tests share, 32 bytes or more";
const WAIT: Duration = Duration::from_secs(10);

fn start(configure: impl FnOnce(&mut HubOptions)) -> SocketAddr {
    common::require_process_per_test();
    let mut options = HubOptions::new("127.0.0.1:0", SECRET);
    configure(&mut options);
    Runtime::global().start_hub(options).unwrap()
}

fn token(channel: &str) -> String {
    Runtime::global()
        .hub_subscribe_token(channel, Duration::from_secs(60))
        .unwrap()
}

fn subscribe(
    client: &tokio::runtime::Runtime,
    addr: SocketAddr,
    channel: &str,
    headers: &[(&str, &str)],
) -> SseStream {
    let path = format!("/streams/{channel}?token={}", token(channel));
    let stream = sse::open(client, addr, &path, headers);
    assert_eq!(stream.status, 200);
    stream
}

fn publish(channel: &str, data: &str) -> String {
    Runtime::global()
        .hub_publish(channel, "step", data, None, StreamKind::Resumable)
        .unwrap()
}

fn event(stream: &SseStream) -> String {
    match stream.next_event(WAIT) {
        Some(Arrival::Event(text)) => text,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Waits (bounded) until the hub's connections are counted as `count`.
fn wait_for_streams(count: u32) {
    let deadline = Instant::now() + WAIT;
    while Runtime::global().active_streams() != count {
        assert!(
            Instant::now() < deadline,
            "active streams stayed at {} (expected {count})",
            Runtime::global().active_streams()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn events_arrive_in_order_with_ids_and_sse_headers() {
    let addr = start(|_| {});
    let client = common::tokio_runtime(1);
    let stream = subscribe(&client, addr, "orders", &[]);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["cache-control"], "no-cache");
    assert_eq!(stream.headers["x-accel-buffering"], "no");
    assert_eq!(event(&stream), "retry: 1000");
    wait_for_streams(1);
    for n in 1..=50 {
        assert_eq!(publish("orders", &format!("{{\"n\":{n}}}")), n.to_string());
    }
    for n in 1..=50 {
        assert_eq!(
            event(&stream),
            format!("id: {n}\nevent: step\ndata: {{\"n\":{n}}}")
        );
    }
    // A host-given id is kept, and multi-line data is one data line each.
    let id = Runtime::global()
        .hub_publish(
            "orders",
            "note",
            "a\nb",
            Some("custom-7"),
            StreamKind::Resumable,
        )
        .unwrap();
    assert_eq!(id, "custom-7");
    assert_eq!(
        event(&stream),
        "id: custom-7\nevent: note\ndata: a\ndata: b"
    );
    // Line breaks cannot smuggle fields in.
    assert!(Runtime::global()
        .hub_publish("orders", "x\ndata: y", "", None, StreamKind::Resumable)
        .is_err());
    assert!(Runtime::global()
        .hub_publish("../etc", "x", "", None, StreamKind::Resumable)
        .is_err());
}

#[test]
fn last_event_id_replays_the_history_and_says_when_it_has_a_gap() {
    let addr = start(|options| options.history_len = 5);
    let client = common::tokio_runtime(1);
    for n in 1..=8 {
        publish("feed", &n.to_string());
    }
    // The header, as a reconnecting EventSource sends it.
    let resumed = subscribe(&client, addr, "feed", &[("last-event-id", "6")]);
    assert_eq!(event(&resumed), "retry: 1000");
    assert_eq!(event(&resumed), "id: 7\nevent: step\ndata: 7");
    assert_eq!(event(&resumed), "id: 8\nevent: step\ndata: 8");
    publish("feed", "9");
    assert_eq!(event(&resumed), "id: 9\nevent: step\ndata: 9");
    // The query parameter, for a first connection; 2 has left a history
    // of 5 (5..=9): a gap event, then what is kept.
    let path = format!("/streams/feed?token={}&last_event_id=2", token("feed"));
    let gapped = sse::open(&client, addr, &path, &[]);
    assert_eq!(event(&gapped), "retry: 1000");
    let gap = event(&gapped);
    assert!(gap.starts_with("event: gap\ndata: "), "{gap}");
    assert!(gap.contains("\"last_event_id\":\"2\""), "{gap}");
    for n in 5..=9 {
        assert_eq!(event(&gapped), format!("id: {n}\nevent: step\ndata: {n}"));
    }
}

#[test]
fn closing_a_channel_sends_the_final_event_and_ends_every_stream() {
    let addr = start(|_| {});
    let client = common::tokio_runtime(1);
    let runtime = Runtime::global();
    runtime
        .hub_set_final_event(
            "task-1",
            StreamKind::PodBound,
            "task_failed",
            "{\"reason\":\"shutdown\"}",
        )
        .unwrap();
    let a = subscribe(&client, addr, "task-1", &[]);
    let b = subscribe(&client, addr, "task-1", &[]);
    wait_for_streams(2);
    runtime
        .hub_publish("task-1", "step", "1", None, StreamKind::PodBound)
        .unwrap();
    assert!(runtime
        .hub_close_channel("task-1", Some(("task_completed", "{\"ok\":true}")))
        .unwrap());
    for stream in [&a, &b] {
        let events = stream.until_end(WAIT);
        assert_eq!(
            events,
            [
                "retry: 1000",
                "id: 1\nevent: step\ndata: 1",
                "id: 2\nevent: task_completed\ndata: {\"ok\":true}"
            ]
        );
    }
    wait_for_streams(0);
    // A late subscriber gets the history and the final event, then the end.
    let late = subscribe(&client, addr, "task-1", &[]);
    assert_eq!(late.until_end(WAIT).len(), 3);
    // A closed channel takes no more events.
    assert!(runtime
        .hub_publish("task-1", "step", "2", None, StreamKind::PodBound)
        .is_err());
}

#[test]
fn a_refused_token_is_a_json_error_and_opens_no_stream() {
    let addr = start(|_| {});
    let client = common::tokio_runtime(1);
    let good = token("mine");
    let other = token("theirs");
    let expired = {
        // A token of one second, used once it has run out.
        let runtime = Runtime::global();
        let fresh = runtime
            .hub_subscribe_token("mine", Duration::from_secs(1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(2100));
        fresh
    };
    // One character of the MAC changed (its first: every bit of it is
    // significant, unlike the last one's padding bits).
    let tag_at = good.rfind('.').unwrap() + 1;
    let first = &good[tag_at..=tag_at];
    let forged = format!(
        "{}{}{}",
        &good[..tag_at],
        if first == "A" { "B" } else { "A" },
        &good[tag_at + 1..]
    );
    /// A request path, its headers, the answer's status and error code.
    type Case<'a> = (String, Vec<(&'a str, String)>, u16, &'a str);
    let cases: [Case; 6] = [
        ("/streams/mine".into(), vec![], 401, "token_missing"),
        (
            format!("/streams/mine?token={forged}"),
            vec![],
            403,
            "token_invalid",
        ),
        (
            format!("/streams/mine?token={expired}"),
            vec![],
            401,
            "token_expired",
        ),
        (
            format!("/streams/mine?token={other}"),
            vec![],
            403,
            "token_wrong_channel",
        ),
        (
            "/streams/mine?token=v1.garbage".into(),
            vec![],
            401,
            "token_malformed",
        ),
        (
            "/streams/mine".into(),
            vec![("authorization", format!("Bearer {forged}"))],
            403,
            "token_invalid",
        ),
    ];
    for (path, headers, status, code) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = sse::open(&client, addr, &path, &headers);
        assert_eq!(answer.status, status, "{path}");
        assert_eq!(answer.headers["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_str(&sse::body_text(&answer)).unwrap();
        assert_eq!(body["error"], code, "{path}");
        assert_eq!(Runtime::global().active_streams(), 0);
    }
    // The bearer header works as well as the query.
    let bearer = format!("Bearer {good}");
    let answer = sse::open(
        &client,
        addr,
        "/streams/mine",
        &[("authorization", &bearer)],
    );
    assert_eq!(answer.status, 200);
}

#[test]
fn cors_allows_only_the_listed_origins() {
    let addr = start(|options| options.cors_origins = vec!["https://app.example".into()]);
    let client = common::tokio_runtime(1);
    let allowed = subscribe(&client, addr, "c", &[("origin", "https://app.example")]);
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://app.example"
    );
    let other = subscribe(&client, addr, "c", &[("origin", "https://evil.example")]);
    assert!(other.headers.get("access-control-allow-origin").is_none());
    let (status, _, _) = common::request(
        addr,
        "OPTIONS",
        "/streams/c",
        &[("origin", "https://app.example")],
    );
    assert_eq!(status, 204);
    let (status, _, _) = common::request(
        addr,
        "OPTIONS",
        "/streams/c",
        &[("origin", "https://evil.example")],
    );
    assert_eq!(status, 403);
}

#[test]
fn a_client_that_stops_reading_is_dropped_at_the_stall_while_a_fast_one_keeps_up() {
    let addr = start(|options| {
        options.queue_capacity = 4;
        options.stall = Duration::from_millis(500);
    });
    let client = common::tokio_runtime(1);
    let fast = subscribe(&client, addr, "firehose", &[]);
    assert_eq!(event(&fast), "retry: 1000");
    // The slow client: a raw socket that sends its request and then reads
    // nothing, so the kernel's buffers fill and its writes stall.
    use std::io::Read;
    let mut slow = raw_subscriber(addr, "firehose", false);
    wait_for_streams(2);
    let big = "x".repeat(64 * 1024);
    let mut published = 0;
    let deadline = Instant::now() + WAIT;
    while Runtime::global().hub_slow_clients_disconnected() == 0 {
        assert!(
            Instant::now() < deadline,
            "the slow client was never dropped"
        );
        publish("firehose", &big);
        published += 1;
        // The fast client reads each event as it comes: never behind.
        let got = event(&fast);
        assert!(
            got.starts_with(&format!("id: {published}\n")),
            "{}",
            &got[..20]
        );
    }
    assert_eq!(Runtime::global().hub_slow_clients_disconnected(), 1);
    // Uncounted the moment it is dropped.
    wait_for_streams(1);
    // The fast one still gets every event.
    for _ in 0..10 {
        publish("firehose", "after");
        published += 1;
        assert_eq!(
            event(&fast),
            format!("id: {published}\nevent: step\ndata: after")
        );
    }
    // The slow one's connection was reset: what it reads now ends (with a
    // reset, or the end), and never with a last word it could not take.
    slow.set_read_timeout(Some(WAIT)).unwrap();
    let mut buffer = vec![0u8; 1 << 16];
    let mut ended = false;
    for _ in 0..10_000 {
        match slow.read(&mut buffer) {
            Ok(0) | Err(_) => {
                ended = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(ended, "the stalled connection was not closed");
    let metrics = last_call::metrics::render_prometheus(Runtime::global());
    assert!(metrics.contains("gs_hub_slow_clients_disconnected_total 1\n"));
}

/// A receive buffer of a few KiB: the client's window opens a little at a
/// time as it reads.
fn small_receive_buffer(socket: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4096;
    // SAFETY: setsockopt reads `size` (a c_int that lives here, its length
    // given) on the socket's open descriptor.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::addr_of!(size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0);
}

/// A subscriber on a plain socket, its request sent and nothing read: a
/// client the test starves or reads by hand. `small_buffer` shrinks its
/// receive buffer first (see [`small_receive_buffer`]).
fn raw_subscriber(addr: SocketAddr, channel: &str, small_buffer: bool) -> std::net::TcpStream {
    use std::io::Write;
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    if small_buffer {
        small_receive_buffer(&socket);
    }
    write!(
        socket,
        "GET /streams/{channel}?token={} HTTP/1.1\r\nhost: hub\r\n\r\n",
        token(channel)
    )
    .unwrap();
    socket
}

#[test]
fn a_stream_whose_last_words_cannot_be_written_is_closed_at_once() {
    // A long stall time: the end must not wait for it. A history that
    // holds every event published below (4 MiB): with the default (1 MiB),
    // the stream skips to what is left with a gap, which the kernel's send
    // buffer can take whole, and its end is written after all.
    let addr = start(|options| {
        options.stall = Duration::from_secs(30);
        options.max_channel_bytes = 64 << 20;
        options.queue_capacity = 128;
        options.history_len = 128;
    });
    let _silent = raw_subscriber(addr, "ending", true); // held, never read
    wait_for_streams(1);
    // The client reads nothing: its socket fills.
    let big = "x".repeat(64 * 1024);
    for _ in 0..64 {
        publish("ending", &big);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(Runtime::global().active_streams(), 1);
    // Its final event can never be written: the stream is closed and
    // uncounted now, not held for the stall time (a SIGTERM waited 8 s
    // for such streams).
    Runtime::global()
        .hub_close_channel("ending", Some(("done", "{}")))
        .unwrap();
    wait_for_streams(0);
    // Counted as a slow client by the writer that dropped it, which may
    // come a moment after the stream's uncounting.
    let waited = std::time::Instant::now();
    while Runtime::global().hub_slow_clients_disconnected() == 0
        && waited.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(Runtime::global().hub_slow_clients_disconnected(), 1);
}

#[test]
fn a_reader_whose_socket_is_full_when_its_channel_closes_gets_every_event_and_the_end() {
    use std::io::Read;
    // A socket full of events (16 MiB: more than the kernel's buffers on
    // both sides hold) when the channel closes, then read as fast as the
    // client can: a reader that keeps up, whose socket was full for a
    // moment when its channel closed, was dropped without the rest
    // (reviewed, issue 25).
    let addr = start(|options| {
        options.stall = Duration::from_secs(30);
        options.max_channel_bytes = 64 << 20;
        options.queue_capacity = 512;
        options.history_len = 512;
    });
    let mut reader = raw_subscriber(addr, "ending", false);
    wait_for_streams(1);
    let big = "x".repeat(64 * 1024);
    for _ in 0..256 {
        publish("ending", &big);
    }
    std::thread::sleep(Duration::from_millis(200));
    Runtime::global()
        .hub_close_channel("ending", Some(("done", "{}")))
        .unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    // Bounded: 16 MiB in reads of at least a byte each would be far more
    // than this many, but every read here is a full buffer or the end.
    for _ in 0..1_000_000 {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error) => panic!("the stream broke after {} bytes: {error}", received.len()),
        }
    }
    let text = String::from_utf8_lossy(&received);
    assert_eq!(text.matches(big.as_str()).count(), 256);
    assert!(
        text.contains("event: done"),
        "no end: {}",
        &text[text.len().saturating_sub(300)..]
    );
    assert_eq!(Runtime::global().hub_slow_clients_disconnected(), 0);
}

#[test]
fn a_client_that_takes_a_trickle_while_the_stream_runs_ahead_is_dropped() {
    use std::io::Read;
    let addr = start(|options| {
        options.queue_capacity = 4;
        options.stall = Duration::from_millis(1_000);
    });
    // A client that reads a little, often: its window opens now and then
    // and the hub's writes make a little progress, which held it for ever
    // (the stall restarted at each write) while it fell further behind.
    let mut trickle = raw_subscriber(addr, "river", true);
    wait_for_streams(1);
    trickle
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let event = "x".repeat(64 * 1024);
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut closed = false;
    while Instant::now() < deadline {
        // The stream runs ahead: more than the client takes.
        for _ in 0..4 {
            publish("river", &event);
        }
        match trickle.read(&mut buffer) {
            Ok(0) => closed = true,
            Err(e)
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut =>
            {
                closed = true
            }
            _ => {}
        }
        if closed {
            break;
        }
    }
    assert!(
        closed,
        "a client that never caught up was still served after 8 s"
    );
    assert_eq!(Runtime::global().hub_slow_clients_disconnected(), 1);
    wait_for_streams(0);
}

#[test]
fn a_burst_never_drops_a_reader_that_keeps_reading_and_a_lagging_one_is_told_gap() {
    // A ring of 50 events, a burst of 5,000 published as fast as the host
    // can: readers that keep reading fall behind the ring and skip ahead
    // with `event: gap`, but none is dropped, and each sees the events in
    // publish order ending with the last one.
    let addr = start(|options| {
        options.history_len = 50;
        options.queue_capacity = 50;
    });
    let client = common::tokio_runtime(1);
    let readers: Vec<SseStream> = (0..20)
        .map(|_| subscribe(&client, addr, "burst", &[]))
        .collect();
    for reader in &readers {
        assert_eq!(event(reader), "retry: 1000");
    }
    wait_for_streams(20);
    for n in 1..=5_000 {
        publish("burst", &n.to_string());
    }
    publish("burst", "last");
    for reader in &readers {
        let mut previous = 0u64;
        loop {
            let text = event(reader);
            if text.starts_with("event: gap") {
                continue;
            }
            let id: u64 = text
                .strip_prefix("id: ")
                .and_then(|rest| rest.split('\n').next())
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("{text}"));
            assert!(id > previous, "{id} after {previous}");
            previous = id;
            if text.ends_with("data: last") {
                break;
            }
        }
    }
    assert_eq!(Runtime::global().hub_slow_clients_disconnected(), 0);
    wait_for_streams(20);
}

#[test]
fn a_client_that_goes_away_is_uncounted_promptly() {
    let addr = start(|_| {});
    let client = common::tokio_runtime(1);
    let streams: Vec<SseStream> = (0..20)
        .map(|_| subscribe(&client, addr, "gone", &[]))
        .collect();
    wait_for_streams(20);
    let started = Instant::now();
    drop(streams);
    // No event and no heartbeat is sent: the hub sees the connection close.
    wait_for_streams(0);
    eprintln!("20 disconnects seen in {:?}", started.elapsed());
    // Publishing to a channel whose subscribers left is fine.
    publish("gone", "nobody");
}

#[test]
fn the_hub_needs_a_secret_and_starts_once() {
    common::require_process_per_test();
    let runtime = Runtime::global();
    assert!(matches!(
        runtime.hub_publish("c", "m", "", None, StreamKind::Resumable),
        Err(last_call::Error::HubNotStarted)
    ));
    let error = runtime
        .start_hub(HubOptions::new("127.0.0.1:0", Vec::new()))
        .unwrap_err();
    assert!(error.to_string().contains("GS_STREAM_SECRET"), "{error}");
    let addr = runtime
        .start_hub(HubOptions::new("127.0.0.1:0", SECRET))
        .unwrap();
    assert!(matches!(
        runtime.start_hub(HubOptions::new("127.0.0.1:0", SECRET)),
        Err(last_call::Error::AlreadyStarted(a)) if a == addr
    ));
}

#[test]
fn sigterm_ends_each_hub_stream_by_its_channel_kind_spread_then_exits_0() {
    let mut command = Command::new(example("hub_holder"));
    clear_gs_environment(&mut command);
    command
        .env("GS_STREAM_ADDR", "127.0.0.1:0")
        .env(
            "GS_STREAM_SECRET",
            "a secret the tests share, 32 bytes or more",
        )
        .env("GS_DRAIN_DELAY_SECONDS", "0.5")
        .env("GS_SHUTDOWN_TIMEOUT_SECONDS", "6")
        .env("GS_CLOSE_NOTICE_SECONDS", "3")
        .env("GS_HOOK_BUDGET_SECONDS", "0.5");
    let mut child = ChildProcess::spawn(command);
    let line = child.wait_for_line("\"feed\"", WAIT);
    let tokens = common::json(&line);
    let addr: SocketAddr = tokens["addr"].as_str().unwrap().parse().unwrap();
    let client = common::tokio_runtime(1);
    let open = |channel: &str| {
        let path = format!(
            "/streams/{channel}?token={}",
            tokens[channel].as_str().unwrap()
        );
        let stream = sse::open(&client, addr, &path, &[]);
        assert_eq!(stream.status, 200);
        stream
    };
    let feeds: Vec<SseStream> = (0..12).map(|_| open("feed")).collect();
    let tasks: Vec<SseStream> = (0..4).map(|_| open("task")).collect();
    // Each has seen a live event: they are all subscribed.
    for stream in feeds.iter().chain(&tasks) {
        assert_eq!(event(stream), "retry: 1000");
        assert!(event(stream).starts_with("id: "));
    }
    let signalled = Instant::now();
    ChildProcess::signal(child.pid(), libc::SIGTERM);
    // Draining: a new resumable subscription is still accepted.
    std::thread::sleep(Duration::from_millis(100));
    let late = open("feed");
    let ending = |stream: &SseStream| -> (Duration, String) {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok((at, arrival)) = stream.arrivals.recv_timeout(left) else {
                let tail: Vec<_> = seen.iter().rev().take(3).collect();
                panic!("no ending in time; last arrivals {tail:?}");
            };
            seen.push((at - signalled, arrival.clone()));
            if let Arrival::Event(text) = arrival {
                if text.contains("event: reconnect") || text.contains("event: task_failed") {
                    assert_eq!(stream.next(WAIT), Some(Arrival::End), "ends after {text}");
                    return (at - signalled, text);
                }
            }
        }
    };
    let mut reconnect_times = Vec::new();
    for stream in feeds.iter().chain([&late]) {
        let (at, text) = ending(stream);
        assert!(text.starts_with("retry: 1000\nid: "), "{text}");
        assert!(text.contains("event: reconnect"), "{text}");
        reconnect_times.push(at);
    }
    let mut task_times = Vec::new();
    for stream in &tasks {
        let (at, text) = ending(stream);
        assert!(
            text.contains("event: task_failed\ndata: {\"reason\":\"shutdown\"}"),
            "{text}"
        );
        task_times.push(at);
    }
    // hub_holder registers no shutdown hook, so no budget is kept: the
    // close notice starts at 6 - 3 = 3 s and the streams' last moment is
    // 6 - 0.75 (a quarter of the notice) = 5.25 s. Pod-bound ones run to
    // that last moment, then get their final event; resumable ones are
    // spread over the nudge window (3 s to 5.25 s).
    let closing = Duration::from_millis(3000);
    let last_moment = Duration::from_millis(5250);
    for at in &task_times {
        assert!(*at >= last_moment - Duration::from_millis(100), "{at:?}");
        assert!(*at < last_moment + Duration::from_millis(700), "{at:?}");
    }
    reconnect_times.sort();
    let spread = *reconnect_times.last().unwrap() - reconnect_times[0];
    assert!(
        reconnect_times[0] >= closing - Duration::from_millis(100),
        "{reconnect_times:?}"
    );
    assert!(
        spread >= Duration::from_millis(500),
        "not spread: {reconnect_times:?}"
    );
    let status = child.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", child.stderr());
}

#[test]
fn the_c_abi_publishes_and_mints_and_refuses_bad_input() {
    use last_call::ffi::*;
    use std::ffi::CStr;
    use std::ptr::{null, null_mut};
    common::require_process_per_test();
    // SAFETY: every pointer passed below is NULL or a live, NUL-terminated
    // string or buffer of the length given.
    unsafe {
        let data = b"{\"n\":1}";
        assert_eq!(
            gs_hub_publish(
                c"c".as_ptr(),
                null(),
                data.as_ptr(),
                data.len(),
                null(),
                GS_STREAM_RESUMABLE,
                null_mut(),
                0,
                null_mut()
            ),
            gs_status::GS_ERR_HUB_NOT_STARTED
        );
        std::env::set_var(
            "GS_STREAM_SECRET",
            "a secret the tests share, 32 bytes or more",
        );
        let mut bound = [0 as std::ffi::c_char; 64];
        assert_eq!(
            gs_hub_start(
                c"127.0.0.1:0".as_ptr(),
                bound.as_mut_ptr(),
                bound.len(),
                null_mut()
            ),
            gs_status::GS_OK
        );
        let addr: SocketAddr = CStr::from_ptr(bound.as_ptr())
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let mut token = [0 as std::ffi::c_char; 256];
        assert_eq!(
            gs_hub_subscribe_token(
                c"c".as_ptr(),
                60.0,
                token.as_mut_ptr(),
                token.len(),
                null_mut()
            ),
            gs_status::GS_OK
        );
        let token = CStr::from_ptr(token.as_ptr()).to_str().unwrap().to_owned();
        let client = common::tokio_runtime(1);
        let stream = sse::open(&client, addr, &format!("/streams/c?token={token}"), &[]);
        assert_eq!(stream.status, 200);
        wait_for_streams(1);
        let mut id = [0 as std::ffi::c_char; 32];
        assert_eq!(
            gs_hub_publish(
                c"c".as_ptr(),
                null(),
                data.as_ptr(),
                data.len(),
                null(),
                GS_STREAM_RESUMABLE,
                id.as_mut_ptr(),
                id.len(),
                null_mut()
            ),
            gs_status::GS_OK
        );
        assert_eq!(CStr::from_ptr(id.as_ptr()).to_str().unwrap(), "1");
        assert_eq!(event(&stream), "retry: 1000");
        assert_eq!(event(&stream), "id: 1\nevent: message\ndata: {\"n\":1}");
        // Hostile input: NULLs, bad kinds, bad UTF-8, bad names, NaN.
        // A publish with no id of its own and none asked back.
        let publish_no_id = |channel, event, data, length, kind| {
            gs_hub_publish(
                channel,
                event,
                data,
                length,
                null(),
                kind,
                null_mut(),
                0,
                null_mut(),
            )
        };
        let bad = [0xffu8, 0xfe];
        for status in [
            publish_no_id(null(), null(), data.as_ptr(), data.len(), 0),
            publish_no_id(c"c".as_ptr(), null(), null(), 3, 0),
            publish_no_id(c"c".as_ptr(), null(), data.as_ptr(), data.len(), 7),
            publish_no_id(c"c".as_ptr(), null(), bad.as_ptr(), bad.len(), 0),
            publish_no_id(c"a/b".as_ptr(), null(), data.as_ptr(), data.len(), 0),
            publish_no_id(
                c"c".as_ptr(),
                c"x\ny".as_ptr(),
                data.as_ptr(),
                data.len(),
                0,
            ),
            gs_hub_subscribe_token(c"c".as_ptr(), f64::NAN, null_mut(), 0, null_mut()),
            gs_hub_set_final_event(c"c".as_ptr(), 9, c"e".as_ptr(), c"d".as_ptr()),
            gs_hub_close_channel(null(), null(), null(), null_mut()),
        ] {
            assert_eq!(status, gs_status::GS_ERR_INVALID_ARGUMENT);
        }
        let mut known = false;
        assert_eq!(
            gs_hub_close_channel(c"c".as_ptr(), c"done".as_ptr(), c"{}".as_ptr(), &mut known),
            gs_status::GS_OK
        );
        assert!(known);
        let rest = stream.until_end(WAIT);
        assert_eq!(rest, ["id: 2\nevent: done\ndata: {}"]);
        assert_eq!(gs_hub_slow_clients_disconnected_total(), 0);
    }
}

#[test]
fn a_short_id_out_publishes_nothing_and_no_id_out_publishes_once() {
    // Before: a small or absent `id_out` had published when it returned
    // GS_ERR_BUFFER_TOO_SMALL, so following the retry rule published twice;
    // NULL `id_out` published and reported failure.
    use last_call::ffi::*;
    use std::ffi::CStr;
    use std::ptr::{null, null_mut};
    common::require_process_per_test();
    std::env::set_var("GS_STREAM_SECRET", std::str::from_utf8(SECRET).unwrap());
    // SAFETY: every pointer is NULL or a live NUL-terminated string or a
    // buffer of the length given.
    unsafe {
        assert_eq!(
            gs_hub_start(c"127.0.0.1:0".as_ptr(), null_mut(), 0, null_mut()),
            gs_status::GS_OK
        );
        let data = b"x";
        let publish = |id_out: *mut std::ffi::c_char, length: usize, written: *mut usize| {
            gs_hub_publish(
                c"short".as_ptr(),
                null(),
                data.as_ptr(),
                data.len(),
                null(),
                GS_STREAM_RESUMABLE,
                id_out,
                length,
                written,
            )
        };
        let mut small = [0 as std::ffi::c_char; 4];
        let mut needed = 0usize;
        assert_eq!(
            publish(small.as_mut_ptr(), small.len(), &mut needed),
            gs_status::GS_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(needed + 1, GS_EVENT_NUMBER_LENGTH_MAX);
        // With no id_out: published, GS_OK, the id's length told.
        let mut length = 0usize;
        assert_eq!(publish(null_mut(), 0, &mut length), gs_status::GS_OK);
        assert_eq!(length, 1);
        // The retry with the size told: the second event published, not
        // the third (the refused one published nothing).
        let mut id = vec![0 as std::ffi::c_char; needed + 1];
        assert_eq!(
            publish(id.as_mut_ptr(), id.len(), null_mut()),
            gs_status::GS_OK
        );
        assert_eq!(CStr::from_ptr(id.as_ptr()).to_str().unwrap(), "2");
    }
}

#[test]
fn gs_hub_send_returns_the_number_or_a_negated_status() {
    use last_call::ffi::*;
    use std::ptr::null;
    common::require_process_per_test();
    let failed = |status: gs_status| -(status as i64);
    // SAFETY: every pointer passed below is NULL or a live, NUL-terminated
    // string.
    unsafe {
        assert_eq!(
            gs_hub_send(
                c"c".as_ptr(),
                GS_STREAM_RESUMABLE,
                null(),
                c"x".as_ptr(),
                null()
            ),
            failed(gs_status::GS_ERR_HUB_NOT_STARTED)
        );
        let addr = start(|_| {});
        let client = common::tokio_runtime(1);
        let stream = subscribe(&client, addr, "c", &[]);
        assert_eq!(event(&stream), "retry: 1000");
        wait_for_streams(1);
        let send = |event: *const std::ffi::c_char, data: &std::ffi::CStr, id| {
            gs_hub_send(c"c".as_ptr(), GS_STREAM_RESUMABLE, event, data.as_ptr(), id)
        };
        assert_eq!(send(null(), c"{\"n\":1}", null()), 1);
        assert_eq!(send(c"step".as_ptr(), c"a\r\nb", null()), 2);
        // A host's id: 0, the id being the host's; a numeric one moves the
        // numbering past it.
        assert_eq!(send(null(), c"x", c"note".as_ptr()), 0);
        assert_eq!(send(null(), c"y", c"41".as_ptr()), 0);
        assert_eq!(send(null(), c"z", null()), 42);
        for expected in [
            "id: 1\nevent: message\ndata: {\"n\":1}",
            "id: 2\nevent: step\ndata: a\ndata: b",
            "id: note\nevent: message\ndata: x",
            "id: 41\nevent: message\ndata: y",
            "id: 42\nevent: message\ndata: z",
        ] {
            assert_eq!(event(&stream), expected);
        }
        // Hostile input: NULLs, a bad kind, bad UTF-8, a bad name, a line
        // break in a field; each refused with nothing published.
        let bad_utf8 = [0xffu8, 0xfe, 0];
        for result in [
            gs_hub_send(null(), 0, null(), c"x".as_ptr(), null()),
            gs_hub_send(c"c".as_ptr(), 0, null(), null(), null()),
            gs_hub_send(c"c".as_ptr(), 7, null(), c"x".as_ptr(), null()),
            gs_hub_send(c"c".as_ptr(), 0, null(), bad_utf8.as_ptr().cast(), null()),
            gs_hub_send(c"a/b".as_ptr(), 0, null(), c"x".as_ptr(), null()),
            gs_hub_send(c"c".as_ptr(), 0, c"x\ny".as_ptr(), c"x".as_ptr(), null()),
            gs_hub_send(c"c".as_ptr(), 0, null(), c"x".as_ptr(), c"1\r".as_ptr()),
        ] {
            assert_eq!(result, failed(gs_status::GS_ERR_INVALID_ARGUMENT));
        }
        // A closed channel takes no more events.
        Runtime::global().hub_close_channel("c", None).unwrap();
        assert_eq!(
            gs_hub_send(c"c".as_ptr(), 0, null(), c"x".as_ptr(), null()),
            failed(gs_status::GS_ERR_INVALID_ARGUMENT)
        );
        assert_eq!(stream.until_end(WAIT), ["id: 43\nevent: close\ndata: {}"]);
    }
}

/// The stream's bytes on a plain socket: the head as hyper wrote it (an
/// HTTP/1.0 answer: its body lasts until the connection closes), then the
/// events as they are, with no chunk framing; a client that keeps sending
/// after its request is still served, and uncounted once it leaves.
#[test]
fn a_short_or_placeholder_secret_is_refused_and_one_trailing_newline_trimmed() {
    common::require_process_per_test();
    for bad in [
        "ab",
        "replace-me-with-a-long-random-secret",
        " a secret with a leading space, 32 bytes",
    ] {
        std::env::set_var("GS_STREAM_SECRET", bad);
        let error = HubOptions::from_env_with_addr("127.0.0.1:0")
            .and_then(|options| {
                Runtime::global()
                    .start_hub(options)
                    .map(|_| ())
                    .map_err(|e| match e {
                        last_call::Error::Config(c) => c,
                        other => panic!("{other}"),
                    })
            })
            .unwrap_err();
        assert_eq!(error.variable, "GS_STREAM_SECRET", "{bad:?}");
        assert!(
            !error.to_string().contains(bad),
            "the error shows the secret: {error}"
        );
    }
    // As `kubectl create secret --from-file` makes it: the newline is not
    // part of the key.
    let with_newline = format!("{}\n", std::str::from_utf8(SECRET).unwrap());
    std::env::set_var("GS_STREAM_SECRET", with_newline);
    let options = HubOptions::from_env_with_addr("127.0.0.1:0").unwrap();
    assert_eq!(options.secret, SECRET);
}

#[test]
fn a_huge_bound_is_refused_at_start_naming_its_variable() {
    common::require_process_per_test();
    std::env::set_var("GS_STREAM_SECRET", std::str::from_utf8(SECRET).unwrap());
    for variable in [
        "GS_STREAM_QUEUE_EVENTS",
        "GS_STREAM_HISTORY_EVENTS",
        "GS_STREAM_MAX_CONNECTIONS",
        "GS_STREAM_MAX_CHANNELS",
        "GS_STREAM_MAX_CHANNEL_BYTES",
        "GS_STREAM_PUBLISH_QUEUE_EVENTS",
        "GS_STREAM_THREADS",
    ] {
        // Every subscription panicked inside the hub with the first.
        std::env::set_var(variable, "18446744073709551615");
        let options = HubOptions::from_env_with_addr("127.0.0.1:0").unwrap();
        match Runtime::global().start_hub(options) {
            Err(last_call::Error::Config(error)) => assert_eq!(error.variable, variable),
            other => panic!("{variable}: {other:?}"),
        }
        std::env::remove_var(variable);
    }
    let options = HubOptions::from_env_with_addr("127.0.0.1:0").unwrap();
    Runtime::global().start_hub(options).unwrap();
}

#[test]
fn gs_stream_threads_sets_the_writer_threads_and_a_value_out_of_range_is_refused_by_name() {
    common::require_process_per_test();
    std::env::set_var("GS_STREAM_SECRET", std::str::from_utf8(SECRET).unwrap());
    for bad in ["0", "-1", "two", "1.5"] {
        std::env::set_var("GS_STREAM_THREADS", bad);
        let error = HubOptions::from_env_with_addr("127.0.0.1:0").unwrap_err();
        assert_eq!(error.variable, "GS_STREAM_THREADS", "{bad}");
    }
    std::env::set_var("GS_STREAM_THREADS", "65");
    let options = HubOptions::from_env_with_addr("127.0.0.1:0").unwrap();
    match Runtime::global().start_hub(options) {
        Err(last_call::Error::Config(error)) => {
            assert_eq!(error.variable, "GS_STREAM_THREADS");
            assert!(error.to_string().contains("from 1 to 64"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    std::env::set_var("GS_STREAM_THREADS", "3");
    let options = HubOptions::from_env_with_addr("127.0.0.1:0").unwrap();
    assert_eq!(options.threads, 3);
    let addr = Runtime::global().start_hub(options).unwrap();
    // A thread names itself as it starts.
    let writers = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("last-call-hub-w"))
            .count()
    };
    let deadline = Instant::now() + WAIT;
    while writers() != 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(writers(), 3);
    // Subscribers on each thread get a channel's events in order.
    let client = common::tokio_runtime(1);
    let streams: Vec<SseStream> = (0..6)
        .map(|_| subscribe(&client, addr, "spread", &[]))
        .collect();
    wait_for_streams(6);
    for n in 1..=20 {
        publish("spread", &n.to_string());
    }
    for stream in &streams {
        assert_eq!(event(stream), "retry: 1000");
        for n in 1..=20 {
            assert_eq!(event(stream), format!("id: {n}\nevent: step\ndata: {n}"));
        }
    }
}

#[test]
fn bearer_in_any_case_an_allowed_character_escaped_and_an_empty_last_event_id() {
    let addr = start(|_| {});
    let client = common::tokio_runtime(1);
    // The scheme is case-insensitive (RFC 9110, 11.1).
    let bearer = format!("bearer {}", token("cased"));
    let cased = sse::open(
        &client,
        addr,
        "/streams/cased",
        &[("authorization", &bearer)],
    );
    assert_eq!(cased.status, 200);
    // `:` is allowed in a channel name; a client may escape it.
    let escaped = format!("/streams/ns%3A1?token={}", token("ns:1"));
    let stream = sse::open(&client, addr, &escaped, &[]);
    assert_eq!(stream.status, 200);
    assert_eq!(event(&stream), "retry: 1000");
    wait_for_streams(2);
    publish("ns:1", "x");
    assert_eq!(event(&stream), "id: 1\nevent: step\ndata: x");
    // An empty Last-Event-ID header counts as absent: the query's id holds.
    for n in 1..=3 {
        publish("feed", &n.to_string());
    }
    let path = format!("/streams/feed?token={}&last_event_id=2", token("feed"));
    let resumed = sse::open(&client, addr, &path, &[("last-event-id", "")]);
    assert_eq!(event(&resumed), "retry: 1000");
    assert_eq!(event(&resumed), "id: 3\nevent: step\ndata: 3");
    // A token's lifetime is whole seconds: under one it would be expired
    // when given.
    assert!(Runtime::global()
        .hub_subscribe_token("c", Duration::from_millis(500))
        .is_err());
    assert!(Runtime::global()
        .hub_subscribe_token("c", Duration::from_secs(1))
        .is_ok());
}

#[test]
fn a_stream_is_a_close_delimited_body_and_a_chatty_client_is_closed() {
    use std::io::{Read, Write};
    let addr = start(|_| {});
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        socket,
        "GET /streams/chatty?token={} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n",
        token("chatty")
    )
    .unwrap();
    wait_for_streams(1);
    for n in 1..=3 {
        publish("chatty", &format!("n={n}"));
    }
    let mut received = Vec::new();
    let deadline = Instant::now() + WAIT;
    let last = b"id: 3\nevent: step\ndata: n=3\n\n";
    while !received.windows(last.len()).any(|w| w == last) {
        assert!(Instant::now() < deadline, "events missing: {received:?}");
        let mut buffer = [0u8; 4096];
        let read = socket.read(&mut buffer).unwrap();
        assert!(read > 0, "the hub closed the stream");
        received.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8(received).unwrap();
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    let expected: String = std::iter::once("retry: 1000\n\n".to_owned())
        .chain((1..=3).map(|n| format!("id: {n}\nevent: step\ndata: n={n}\n\n")))
        .collect();
    assert_eq!(body, expected);
    // Bytes after the request (an upload flood pinned the hub's thread,
    // which read and discarded them for ever): the stream is closed and
    // uncounted at once.
    socket.set_write_timeout(Some(WAIT)).unwrap();
    let chunk = [b'x'; 64 * 1024];
    let written = (0..64)
        .take_while(|_| socket.write_all(&chunk).is_ok())
        .count();
    assert!(written < 64, "the hub kept reading an upload flood");
    wait_for_streams(0);
}

#[test]
fn a_connection_answered_is_closed_not_kept_alive() {
    use std::io::{Read, Write};
    let addr = start(|_| {});
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    // Closed with its answer, well before the header timeout (10 s) of a
    // next request would close it.
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    // One request every few seconds kept a connection open for ever.
    write!(socket, "GET /nothing HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let read = socket.read_to_end(&mut answer);
    assert!(read.is_ok(), "the connection was kept open: {read:?}");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
}

#[test]
fn at_the_connection_cap_idle_ones_make_room_then_it_is_503_with_retry_after() {
    use std::io::{Read, Write};
    let addr = start(|options| options.max_connections = 20);
    let client = common::tokio_runtime(1);
    // Idle connections that never send a request fill the cap: a
    // subscriber still gets in, each closing the oldest idle one.
    let idle: Vec<_> = (0..20)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let streams: Vec<_> = (0..20)
        .map(|n| subscribe(&client, addr, &format!("c{n}"), &[]))
        .collect();
    wait_for_streams(20);
    // Every connection a stream: a newcomer is told to come back.
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    write!(socket, "GET /streams/c0 HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 503"), "{text}");
    assert!(text.contains("retry-after: 1"), "{text}");
    assert!(text.contains("too_many_connections"), "{text}");
    // A stream ends: its place is free again.
    drop(streams);
    wait_for_streams(0);
    let _again = subscribe(&client, addr, "again", &[]);
    drop(idle);
}

/// A forked child does not have its parent's hub (the parent's thread
/// serves it, and that thread is not in the child): publishing there says
/// so, and the child may start a hub of its own.
#[test]
fn a_forked_child_has_no_hub_until_it_starts_its_own() {
    let addr = start(|_| {});
    assert_eq!(Runtime::global().hub_addr(), Some(addr));
    let code = common::in_forked_child(WAIT, || {
        let runtime = Runtime::global();
        if runtime.hub_addr().is_some() {
            10
        } else if !matches!(
            runtime.hub_publish("c", "m", "x", None, StreamKind::Resumable),
            Err(last_call::Error::HubNotStarted)
        ) {
            11
        } else if runtime
            .start_hub(HubOptions::new("127.0.0.1:0", SECRET))
            .is_err()
        {
            12
        } else if runtime
            .hub_publish("c", "m", "x", None, StreamKind::Resumable)
            .ok()
            .as_deref()
            != Some("1")
        {
            13
        } else {
            0
        }
    });
    assert_eq!(
        code, 0,
        "10: a hub inherited, 11: publish not refused, 12: start failed, 13: publish failed"
    );
    // The parent's hub is untouched.
    assert_eq!(publish("c", "parent"), "1");
}
