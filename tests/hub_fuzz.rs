//! The hub's request path fuzzed over real sockets on 127.0.0.1: request
//! lines, targets, queries, `Last-Event-ID`, `Authorization` and other
//! headers as a hostile client writes them (line breaks inside values,
//! bare LF, NULs, bodies, bytes that are no HTTP at all), each sent to the
//! running hub, which must answer or close, never panic, and open a stream
//! only for a request that carries a valid token for its channel.
//! Afterwards a real subscription still gets a published event: nothing
//! was left broken. 128 cases in `make test` (a few seconds); `make fuzz`
//! sets `PROPTEST_CASES` higher.

mod common;

use last_call::{HubOptions, Runtime, StreamKind};
use proptest::prelude::*;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"a secret the fuzz shares, 32 bytes or more";
/// What a case waits for its answer at most (the hub reads the request
/// as soon as the client closes its side).
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// Panics anywhere in the process: the hub's thread and its tasks included.
static PANICS: AtomicUsize = AtomicUsize::new(0);

struct Hub {
    addr: SocketAddr,
    /// A valid token for channel `c`, and one for channel `d`.
    token_c: String,
    token_d: String,
}

fn hub() -> &'static Hub {
    static HUB: OnceLock<Hub> = OnceLock::new();
    HUB.get_or_init(|| {
        common::require_process_per_test();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
        let addr = Runtime::global()
            .start_hub(HubOptions::new("127.0.0.1:0", SECRET))
            .unwrap();
        let token = |channel| {
            Runtime::global()
                .hub_subscribe_token(channel, Duration::from_secs(3600))
                .unwrap()
        };
        Hub {
            addr,
            token_c: token("c"),
            token_d: token("d"),
        }
    })
}

/// Sends `request`, closes the sending side (a request cut short is then
/// over, not waited for), and reads what comes back until the hub closes
/// or [`ANSWER_WITHIN`].
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
    // The hub may answer and close before it has read everything: a reset
    // on writing is an answer too.
    let _ = stream.write_all(request);
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + ANSWER_WITHIN;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline && answer.len() < 65_536 {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    answer
}

/// The status of an answer's status line.
fn status(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    text.split(' ').nth(1)?.parse().ok()
}

#[derive(Debug, Clone)]
enum Token {
    None,
    ValidForC,
    ValidForD,
    Junk(String),
}

#[derive(Debug, Clone)]
struct Attempt {
    method: Vec<u8>,
    path: Vec<u8>,
    token_in_query: Token,
    extra_query: Vec<u8>,
    version: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    bearer: Token,
    newline: &'static [u8],
    body: Vec<u8>,
}

fn token_text<'a>(hub: &'a Hub, token: &'a Token) -> Option<&'a str> {
    match token {
        Token::None => None,
        Token::ValidForC => Some(&hub.token_c),
        Token::ValidForD => Some(&hub.token_d),
        Token::Junk(text) => Some(text),
    }
}

impl Attempt {
    fn bytes(&self, hub: &Hub) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.method);
        out.push(b' ');
        out.extend_from_slice(&self.path);
        out.push(b'?');
        if let Some(token) = token_text(hub, &self.token_in_query) {
            // Encoded, as a client does (a valid token needs none).
            let encoded: String = token
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            out.extend_from_slice(b"token=");
            out.extend_from_slice(encoded.as_bytes());
            out.push(b'&');
        }
        out.extend_from_slice(&self.extra_query);
        out.push(b' ');
        out.extend_from_slice(&self.version);
        out.extend_from_slice(self.newline);
        out.extend_from_slice(b"Host: 127.0.0.1");
        out.extend_from_slice(self.newline);
        if let Some(token) = token_text(hub, &self.bearer) {
            out.extend_from_slice(b"Authorization: Bearer ");
            out.extend_from_slice(token.as_bytes());
            out.extend_from_slice(self.newline);
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(self.newline);
        }
        out.extend_from_slice(self.newline);
        out.extend_from_slice(&self.body);
        out
    }

    /// Whether the request, if well formed, carries a token that opens
    /// the stream it asks for: the bearer wins over the query's token.
    fn may_open(&self) -> bool {
        // `%63` is `c`, percent-encoded.
        let path = String::from_utf8_lossy(&self.path).replace("%63", "c");
        let channel = path.strip_prefix("/streams/");
        // A bearer that is blank counts as absent.
        let token = match (&self.bearer, &self.token_in_query) {
            (Token::None, query) => query,
            (Token::Junk(text), query) if text.trim().is_empty() => query,
            (bearer, _) => bearer,
        };
        matches!(
            (channel, token),
            (Some("c"), Token::ValidForC) | (Some("d"), Token::ValidForD)
        )
    }
}

fn bytes(pattern: &str) -> impl Strategy<Value = Vec<u8>> {
    proptest::string::string_regex(pattern)
        .unwrap()
        .prop_map(String::into_bytes)
}

fn junk(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn token() -> impl Strategy<Value = Token> {
    prop_oneof![
        Just(Token::None),
        Just(Token::ValidForC),
        Just(Token::ValidForD),
        "[ -~]{0,60}".prop_map(Token::Junk),
    ]
}

/// `clean` when a well-formed pick has this weight to a hostile one's 1:
/// `hostile` 0 gives well-formed parts only.
fn pick(
    clean: impl Strategy<Value = Vec<u8>> + 'static,
    hostile: impl Strategy<Value = Vec<u8>> + 'static,
    hostile_weight: u32,
) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![6 => clean, hostile_weight => hostile].boxed()
}

/// A request: well formed (`hostile` 0: every part one hyper reads, so
/// that the hub's own rules are what answer), or with hostile parts.
fn attempt(hostile: u32) -> impl Strategy<Value = Attempt> {
    let method = pick(
        prop_oneof![
            6 => Just(b"GET".to_vec()),
            1 => Just(b"OPTIONS".to_vec()),
            1 => Just(b"POST".to_vec()),
            1 => bytes("[A-Z]{1,8}"),
        ],
        junk(12),
        hostile,
    );
    let path = pick(
        prop_oneof![
            4 => Just(b"/streams/c".to_vec()),
            2 => Just(b"/streams/d".to_vec()),
            1 => Just(b"/streams/%63".to_vec()),
            2 => bytes("/streams/[A-Za-z0-9%:~._-]{0,40}"),
            1 => bytes("/[a-z/]{0,20}"),
        ],
        prop_oneof![
            bytes("/streams/[!-~]{0,40}"),
            bytes("[!-~]{0,40}"),
            junk(40)
        ],
        hostile,
    );
    let query = pick(
        // With last_event_id often, and other keys.
        bytes("(last_event_id=[A-Za-z0-9%+-]{0,12}&|[A-Za-z0-9%=&_.~:+-]{0,10}){0,4}"),
        bytes("[!-~]{0,80}"),
        hostile,
    );
    let version = pick(
        prop_oneof![
            4 => Just(b"HTTP/1.1".to_vec()),
            2 => Just(b"HTTP/1.0".to_vec()),
        ],
        prop_oneof![bytes("HTTP/[0-9]\\.[0-9]"), junk(10)],
        hostile,
    );
    let header_name = pick(
        prop_oneof![
            Just(b"Last-Event-ID".to_vec()),
            Just(b"Authorization".to_vec()),
            Just(b"Origin".to_vec()),
            Just(b"Content-Length".to_vec()),
            Just(b"Transfer-Encoding".to_vec()),
            Just(b"Connection".to_vec()),
            Just(b"Expect".to_vec()),
            bytes("[A-Za-z-]{1,20}"),
        ],
        junk(20),
        hostile,
    );
    let header_value = pick(
        prop_oneof![
            3 => bytes("[!-~]([ -~]{0,58}[!-~])?"),
            1 => bytes("[0-9]{1,20}"),
            1 => Just(b"chunked".to_vec()),
            1 => Just(b"".to_vec()),
        ],
        // Line breaks and NULs inside a value: smuggling a header or a
        // second request.
        junk(60),
        hostile,
    );
    let newline = if hostile == 0 {
        Just(&b"\r\n"[..]).boxed()
    } else {
        prop_oneof![4 => Just(&b"\r\n"[..]), 1 => Just(&b"\n"[..])].boxed()
    };
    let body = pick(Just(Vec::new()), junk(200), hostile);
    (
        (method, path, token(), query, version),
        (
            proptest::collection::vec((header_name, header_value), 0..4),
            token(),
            newline,
            body,
        ),
    )
        .prop_map(
            |(
                (method, path, token_in_query, extra_query, version),
                (headers, bearer, newline, body),
            )| {
                Attempt {
                    method,
                    path,
                    token_in_query,
                    extra_query,
                    version,
                    headers,
                    bearer,
                    newline,
                    body,
                }
            },
        )
}

/// Cases: `PROPTEST_CASES`, else 128 (make test); each is one connection.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(128);
    ProptestConfig {
        cases,
        // A failing case is printed, minimised, with the seed to replay.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One case: the answer is a status line or nothing (the hub closed), its
/// status one the hub or hyper gives a client, and a stream is opened only
/// for a request with a valid token for its channel.
fn check(hub: &Hub, attempt: &Attempt, raw: Option<&[u8]>) -> Result<(), TestCaseError> {
    let built;
    let request = match raw {
        Some(raw) => raw,
        None => {
            built = attempt.bytes(hub);
            &built
        }
    };
    let answer = exchange(hub.addr, request);
    let shown = || String::from_utf8_lossy(request).into_owned();
    if !answer.is_empty() {
        prop_assert!(
            answer.starts_with(b"HTTP/1."),
            "{:?} for {:?}",
            String::from_utf8_lossy(&answer),
            shown()
        );
        let code = status(&answer);
        prop_assert!(
            code.is_some_and(
                |code| [200, 400, 401, 403, 404, 405, 413, 414, 431, 501, 505].contains(&code)
            ),
            "status {:?} for {:?}",
            code,
            shown()
        );
        if code == Some(200) {
            prop_assert!(
                raw.is_none() && attempt.may_open(),
                "a stream for {:?}",
                shown()
            );
            prop_assert!(String::from_utf8_lossy(&answer).contains("text/event-stream"));
        }
    }
    prop_assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "a panic for {:?}",
        shown()
    );
    Ok(())
}

#[test]
fn fuzz_the_hub_answers_any_request_or_closes_and_streams_only_with_a_valid_token() {
    let hub = hub();
    let mut runner = proptest::test_runner::TestRunner::new(config());
    // Half well formed, half hostile, and now and then no HTTP at all.
    let attempts = prop_oneof![attempt(0), attempt(2)];
    let raw = prop_oneof![8 => Just(None), 1 => junk(300).prop_map(Some)];
    if let Err(failure) = runner.run(&(attempts, raw), |(attempt, raw)| {
        check(hub, &attempt, raw.as_deref())
    }) {
        panic!("{failure}");
    }
    // Nothing was left broken: a subscription still gets its event.
    let mut stream = TcpStream::connect(hub.addr).unwrap();
    stream.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
    write!(
        stream,
        "GET /streams/c?token={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        hub.token_c
    )
    .unwrap();
    let deadline = Instant::now() + ANSWER_WITHIN;
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    let mut published = false;
    while !String::from_utf8_lossy(&seen).contains("data: after the fuzz") {
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&seen)
        );
        if !published && String::from_utf8_lossy(&seen).contains("retry:") {
            Runtime::global()
                .hub_publish("c", "step", "after the fuzz", None, StreamKind::Resumable)
                .unwrap();
            published = true;
        }
        match stream.read(&mut buffer) {
            Ok(0) => panic!("closed: {}", String::from_utf8_lossy(&seen)),
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
            Err(error) => panic!("{error}: {}", String::from_utf8_lossy(&seen)),
        }
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
}
