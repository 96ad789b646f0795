//! A publisher's burst against a thousand readers, on one writer thread
//! and on two (`GS_STREAM_THREADS`): 10,000 events published as fast as the
//! host can into one channel that 1,000 subscribers read over real
//! connections on 127.0.0.1, and one more subscriber that stops reading.
//!
//! Every reader gets the events in publish order, a skip only ever after
//! `event: gap`, and every event still in the channel's history at the end;
//! none is disconnected. The one that stopped reading is the only one
//! dropped, and it resumes with `gap`.

mod common;

use last_call::{HubOptions, Runtime, StreamKind};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &[u8] = b"a secret the tests share, 32 bytes or more";
const READERS: usize = 1_000;
const EVENTS: u64 = 10_000;
/// The channel's ring: the history a resume finds, and how far a reader
/// may lag before it skips ahead with `gap`.
const HISTORY: usize = 100;
/// Bounds every wait: far beyond what the test takes (about a second).
const WAIT: Duration = Duration::from_secs(30);

/// What one reader saw.
#[derive(Debug, Default)]
struct Seen {
    /// Event ids in the order they came.
    ids: Vec<u64>,
    gaps: usize,
    /// An id that did not follow the previous one without a `gap` before
    /// it, or came out of order.
    disorder: Option<String>,
    /// The connection ended before the last event.
    ended_early: bool,
    /// The connection, held open once the last event came.
    socket: Option<tokio::net::TcpStream>,
}

/// A subscriber that reads everything, checking the order as it goes,
/// until the burst's last event (or its connection ends).
async fn read(addr: SocketAddr, request: String) -> Seen {
    let mut seen = Seen::default();
    let Ok(mut socket) = tokio::net::TcpStream::connect(addr).await else {
        seen.ended_early = true;
        return seen;
    };
    if socket.write_all(request.as_bytes()).await.is_err() {
        seen.ended_early = true;
        return seen;
    }
    let mut text = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut previous = 0u64;
    let mut gap_told = false;
    // Where the next event starts in `text`, and where to look on for its
    // end (a blank line): each byte is looked at once.
    let (mut start, mut from) = (0, 0);
    loop {
        let read = match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                seen.ended_early = true;
                return seen;
            }
            Ok(read) => read,
        };
        text.extend_from_slice(&buffer[..read]);
        while let Some(at) = text[from..].iter().position(|b| *b == b'\n') {
            let line_end = from + at;
            if text.get(line_end + 1).is_none() {
                break; // the next byte says whether the event ends here
            }
            from = line_end + 1;
            if text[from] != b'\n' {
                continue;
            }
            let event = &text[start..line_end];
            from += 1;
            start = from;
            if event.starts_with(b"event: gap") {
                seen.gaps += 1;
                gap_told = true;
                continue;
            }
            let Some(id) = event
                .strip_prefix(b"id: ")
                .and_then(|rest| rest.split(|b| *b == b'\n').next())
                .and_then(|id| std::str::from_utf8(id).ok()?.parse::<u64>().ok())
            else {
                continue; // the head, `retry:`, a heartbeat
            };
            if id <= previous || (id != previous + 1 && !gap_told) {
                seen.disorder
                    .get_or_insert_with(|| format!("{id} after {previous}, gap told: {gap_told}"));
            }
            seen.ids.push(id);
            previous = id;
            gap_told = false;
            if id == EVENTS {
                seen.socket = Some(socket);
                return seen;
            }
        }
        text.drain(..start);
        from -= start;
        start = 0;
    }
}

fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct that lives here.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

/// A connection whose path holds about 25 KiB: the smallest receive
/// buffer and a small segment size, both set before it connects (with the
/// loopback's 64 KiB segments, the hub's send buffer alone grew to 4 MiB,
/// more than this test sends anyone).
fn stopped_reader(addr: SocketAddr) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(1).unwrap();
    socket.set_tcp_mss(200).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

/// The CPU time (clock ticks) each thread of this process whose name
/// starts with `prefix` has used.
fn threads_named(prefix: &str) -> Vec<u64> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| {
            let path = task.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            // After the name in parentheses: utime and stime are the 12th
            // and 13th fields.
            let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
            let ticks = fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?;
            name.starts_with(prefix).then_some(ticks)
        })
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn burst_into_a_thousand_readers(threads: usize) {
    common::require_process_per_test();
    raise_fd_limit();
    let runtime = Runtime::global();
    let mut options = HubOptions::new("127.0.0.1:0", SECRET);
    options.threads = threads;
    options.history_len = HISTORY;
    options.queue_capacity = HISTORY;
    // Generous: a reader that keeps reading never comes near it, even on a
    // loaded machine (its socket never refuses a write).
    options.stall = Duration::from_secs(2);
    // Longer than any wait here: a subscriber not woken by its channel
    // would not be saved by a heartbeat's wake.
    options.heartbeat = Duration::from_secs(300);
    let addr = runtime.start_hub(options).unwrap();
    // A thread names itself as it starts.
    wait_until("the writer threads named", || {
        threads_named("last-call-hub-w").len() == threads
    });
    let token = runtime
        .hub_subscribe_token("burst", Duration::from_secs(600))
        .unwrap();
    let request = format!("GET /streams/burst?token={token} HTTP/1.1\r\nhost: hub\r\n\r\n");

    // The one that stops reading (after the first event, below).
    let mut stopped = stopped_reader(addr);
    stopped.write_all(request.as_bytes()).unwrap();

    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let readers: Vec<_> = (0..READERS)
        .map(|_| client.spawn(read(addr, request.clone())))
        .collect();
    wait_until("every subscriber counted", || {
        runtime.active_streams() as usize == READERS + 1
    });
    // Spread over the writer threads: with two, the channel is held by
    // both, and each publish goes through the dispatcher to each.
    let loads = runtime.hub_writer_loads();
    assert_eq!(loads.len(), threads);
    assert!(loads.iter().all(|load| *load > 0), "{loads:?}");

    // 1 KiB events: the history alone (100 KiB) is four times what the
    // stopped subscriber's path holds, so it can never catch up.
    let data = "x".repeat(1024);
    let publish = || {
        runtime
            .hub_publish("burst", "step", &data, None, StreamKind::Resumable)
            .unwrap()
    };
    // The first event: the stopped subscriber reads it, and no more.
    assert_eq!(publish(), "1");
    stopped.set_read_timeout(Some(WAIT)).unwrap();
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let first = format!("id: 1\nevent: step\ndata: {data}\n\n");
    while !String::from_utf8_lossy(&received).contains(&first) {
        let read = stopped.read(&mut buffer).expect("the first event");
        assert!(read > 0, "the stopped subscriber's stream ended");
        received.extend_from_slice(&buffer[..read]);
    }
    let started = Instant::now();
    for _ in 1..EVENTS {
        publish();
    }
    let burst = started.elapsed();

    let seen: Vec<Seen> = client.block_on(async {
        let mut seen = Vec::with_capacity(READERS);
        for reader in readers {
            let result = tokio::time::timeout(WAIT, reader).await;
            seen.push(result.expect("a reader got the last event").unwrap());
        }
        seen
    });
    let gaps: usize = seen.iter().map(|s| s.gaps).sum();
    let delivered: usize = seen.iter().map(|s| s.ids.len()).sum();
    eprintln!(
        "{threads} writer thread(s): {EVENTS} events published in {burst:?}; \
         {delivered} delivered to {READERS} readers, {gaps} gaps told"
    );
    for (n, reader) in seen.iter().enumerate() {
        assert!(!reader.ended_early, "reader {n} was disconnected");
        assert_eq!(reader.disorder, None, "reader {n}: out of publish order");
        // Every event still in the history: the last HISTORY ids, each.
        let tail: Vec<u64> = reader
            .ids
            .iter()
            .copied()
            .filter(|id| *id > EVENTS - HISTORY as u64)
            .collect();
        let expected: Vec<u64> = (EVENTS - HISTORY as u64 + 1..=EVENTS).collect();
        assert_eq!(tail, expected, "reader {n} missed events of the history");
    }

    // The stopped one is dropped at the stall; the readers are all still
    // held.
    wait_until("the stopped subscriber dropped", || {
        runtime.hub_slow_clients_disconnected() >= 1
    });
    wait_until("the stopped subscriber uncounted", || {
        runtime.active_streams() as usize == READERS
    });
    assert_eq!(runtime.hub_slow_clients_disconnected(), 1);
    // Still open on the readers' side too.
    let open = client.block_on(async {
        let mut open = 0;
        for reader in &seen {
            let socket = reader.socket.as_ref().expect("held open");
            let mut bytes = [0u8; 256];
            match socket.try_read(&mut bytes) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
                _ => {}
            }
        }
        open
    });
    assert_eq!(open, READERS, "readers whose connection ended");

    // Its connection was reset.
    let mut ended = false;
    for _ in 0..10_000 {
        match stopped.read(&mut buffer) {
            Ok(0) | Err(_) => {
                ended = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(ended, "the stopped subscriber's connection was not closed");

    // It resumes after the last event it read: told `gap`, then the
    // history.
    let last_id = "1";
    let mut resumed = std::net::TcpStream::connect(addr).unwrap();
    resumed.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        resumed,
        "GET /streams/burst?token={token} HTTP/1.1\r\nhost: hub\r\nlast-event-id: {last_id}\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let first = EVENTS - HISTORY as u64 + 1;
    while !text.contains(&format!("id: {first}\n")) {
        let read = resumed.read(&mut buffer).expect("the resumed stream");
        assert!(read > 0, "the resumed stream ended: {text}");
        text.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let events: Vec<&str> = body.split("\n\n").collect();
    assert_eq!(events[0], "retry: 1000");
    assert!(
        events[1].starts_with(&format!(
            "event: gap\ndata: {{\"last_event_id\":\"{last_id}\""
        )),
        "{}",
        events[1]
    );
    assert!(events[2].starts_with(&format!("id: {first}\n")));
    assert_eq!(runtime.hub_slow_clients_disconnected(), 1);
}

#[test]
fn a_burst_into_a_thousand_readers_on_one_writer_thread_drops_only_the_one_that_stopped() {
    burst_into_a_thousand_readers(1);
}

#[test]
fn a_burst_into_a_thousand_readers_on_two_writer_threads_keeps_each_in_publish_order() {
    burst_into_a_thousand_readers(2);
}
