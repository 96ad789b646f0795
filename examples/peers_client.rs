//! One client for the stream hub and its peers (nchan, Pushpin), so that
//! `benches/peers.py` measures all of them the same way: the same SSE
//! subscribers (hyper's HTTP/1 client, one connection each), the same
//! publisher (HTTP `POST`s on keep-alive connections), the same clock.
//!
//! ```text
//! peers_client --sub-url 'http://127.0.0.1:P/streams/{channel}?token={token}' \
//!     --token-url 'http://127.0.0.1:Q/token/{channel}' \
//!     --publish 'body:http://127.0.0.1:Q/pub/{channel}' --server-pids 123
//! ```
//!
//! `--publish body:URL` posts the event's data as the body (nchan's
//! publisher location, the hub's `hub_peer`); `--publish grip:URL` posts
//! Pushpin's JSON (`{"items": [{"channel", "formats": {"http-stream":
//! {"content": "event: ...\ndata: ...\n\n"}}}]}`). Each event's data is
//! `{"seq":N,...}` (about 80 bytes); a subscriber counts an event when its
//! `data:` line names a `seq`.
//!
//! Measures, in this order, and prints one JSON line:
//!
//! 1. **set-up at 256**: `--subscribers` (10,000) subscriptions to one
//!    channel, at most 256 being set up at once, timed until the last
//!    response head;
//! 2. **memory per idle subscriber**: the server's memory (the PSS of
//!    every process of `--server-pids`) with them held idle, less before;
//! 3. **fan-out to 10,000, then to 5,000** (half of them closed):
//!    `--fanout-events` events, each published once the previous one
//!    reached every subscriber; publish (just before the `POST`) -> the
//!    last subscriber's receipt, p50 / p99; the server's CPU per delivery;
//! 4. **closed loop**: 1,000 subscribers on 10 channels, each channel with
//!    `--window` (8) events in flight (published, not yet received by all
//!    its subscribers), for `--seconds`: events delivered per second;
//! 5. **open loop**: the same subscribers, each channel's publisher posting
//!    as fast as the server answers, for `--seconds`: events delivered per
//!    second, and subscribers lost (their connection ended by the server);
//! 6. **set-up at 64 and 256**: the same as 1, at most 64 at once, then 256,
//!    in turn until each has run 3 times (the first at 256 is step 1's):
//!    the median run of each; and whether every server process is still
//!    alive at the end.
//!
//! Beside each: the 1-minute load average when it started, and the cores
//! the client and the server used meanwhile (CPU time / wall time), which
//! says whether the client could have been the bottleneck.

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::Uri;
use last_call::monotonic_ns;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify, Semaphore};
use tokio::task::JoinHandle;

/// Channels a measure may use at once.
const CHANNELS: usize = 16;
/// Events tracked per channel (indexes wrap around).
const CAP: usize = 1 << 16;
/// Pads each event's data to about 80 bytes, a typical task event.
const PAD: &str = "progress update, step 1 of 10, 10 percent";

fn usage(message: &str) -> ! {
    eprintln!(
        "peers_client: {message}\nusage: peers_client --sub-url URL --publish (body|grip):URL \
         [--token-url URL] [--server-pids PID,...] [--subscribers 10000] [--fanout-events 20] \
         [--loop-subscribers 1000] [--loop-channels 10] [--window 8] [--seconds 10] [--threads 2]"
    );
    std::process::exit(2);
}

#[derive(Clone)]
enum Publish {
    /// `POST` the data to the URL (`{channel}` replaced).
    Body(String),
    /// `POST` Pushpin's publish JSON to the URL.
    Grip(String),
}

struct Options {
    sub_url: String,
    token_url: Option<String>,
    publish: Publish,
    server_pids: Vec<i32>,
    subscribers: usize,
    fanout_events: usize,
    loop_subscribers: usize,
    loop_channels: usize,
    window: usize,
    seconds: f64,
    threads: usize,
}

fn parse() -> Options {
    let mut sub_url = None;
    let mut token_url = None;
    let mut publish = None;
    let mut options = Options {
        sub_url: String::new(),
        token_url: None,
        publish: Publish::Body(String::new()),
        server_pids: Vec::new(),
        subscribers: 10_000,
        fanout_events: 20,
        loop_subscribers: 1_000,
        loop_channels: 10,
        window: 8,
        seconds: 10.0,
        threads: 2,
    };
    // lexopt: `--flag value` and `--flag=value`, its errors named.
    let mut parser = lexopt::Parser::from_env();
    let read = (|| -> Result<(), lexopt::Error> {
        use lexopt::prelude::*;
        while let Some(arg) = parser.next()? {
            match arg {
                Long("sub-url") => sub_url = Some(parser.value()?.string()?),
                Long("token-url") => token_url = Some(parser.value()?.string()?),
                Long("publish") => {
                    let value = parser.value()?.string()?;
                    publish = Some(match value.split_once(':') {
                        Some(("body", url)) => Publish::Body(url.to_owned()),
                        Some(("grip", url)) => Publish::Grip(url.to_owned()),
                        _ => usage("--publish body:URL or grip:URL"),
                    })
                }
                Long("server-pids") => {
                    options.server_pids = parser
                        .value()?
                        .string()?
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .map_err(|error| lexopt::Error::ParsingFailed {
                            value: "--server-pids".into(),
                            error: Box::new(error),
                        })?
                }
                Long("subscribers") => options.subscribers = parser.value()?.parse()?,
                Long("fanout-events") => options.fanout_events = parser.value()?.parse()?,
                Long("loop-subscribers") => options.loop_subscribers = parser.value()?.parse()?,
                Long("loop-channels") => {
                    options.loop_channels = parser.value()?.parse::<usize>()?.clamp(1, CHANNELS)
                }
                Long("window") => options.window = parser.value()?.parse::<usize>()?.max(1),
                Long("seconds") => options.seconds = parser.value()?.parse()?,
                Long("threads") => options.threads = parser.value()?.parse::<usize>()?.max(1),
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(())
    })();
    if let Err(error) = read {
        usage(&error.to_string());
    }
    options.sub_url = sub_url.unwrap_or_else(|| usage("--sub-url is needed"));
    options.token_url = token_url;
    options.publish = publish.unwrap_or_else(|| usage("--publish is needed"));
    options
}

/// What the subscribers saw, shared by all of them.
struct Tally {
    /// Receipts per channel and event (`channel * CAP + seq % CAP`).
    counts: Vec<AtomicU32>,
    /// The last receipt's time per channel and event.
    last_at: Vec<AtomicU64>,
    /// How many subscribers a channel has now: an event received by that
    /// many wakes the channel's publisher.
    expected: Vec<AtomicU32>,
    complete: Vec<Notify>,
    /// Events received while `counting`.
    delivered: AtomicU64,
    counting: AtomicBool,
    /// `event: gap` (the hub's) received.
    gaps: AtomicU64,
    /// Subscriptions whose connection ended while we held it.
    lost: AtomicUsize,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            counts: (0..CHANNELS * CAP).map(|_| AtomicU32::new(0)).collect(),
            last_at: (0..CHANNELS * CAP).map(|_| AtomicU64::new(0)).collect(),
            expected: (0..CHANNELS).map(|_| AtomicU32::new(u32::MAX)).collect(),
            complete: (0..CHANNELS).map(|_| Notify::new()).collect(),
            delivered: AtomicU64::new(0),
            counting: AtomicBool::new(false),
            gaps: AtomicU64::new(0),
            lost: AtomicUsize::new(0),
        }
    }

    fn slot(channel: usize, seq: u64) -> usize {
        channel * CAP + (seq as usize % CAP)
    }

    fn reset(&self, channel: usize) {
        for slot in channel * CAP..(channel + 1) * CAP {
            self.counts[slot].store(0, Ordering::Relaxed);
            self.last_at[slot].store(0, Ordering::Relaxed);
        }
    }

    fn received(&self, channel: usize, seq: u64) {
        let now = monotonic_ns();
        let slot = Tally::slot(channel, seq);
        self.last_at[slot].fetch_max(now, Ordering::Relaxed);
        let count = self.counts[slot].fetch_add(1, Ordering::AcqRel) + 1;
        if count == self.expected[channel].load(Ordering::Relaxed) {
            self.complete[channel].notify_waiters();
        }
        if self.counting.load(Ordering::Relaxed) {
            self.delivered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits (at most `within`) until `seq` of `channel` reached `count`
    /// subscribers.
    async fn wait_for(&self, channel: usize, seq: u64, count: u32, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let slot = Tally::slot(channel, seq);
        loop {
            let complete = self.complete[channel].notified();
            tokio::pin!(complete);
            complete.as_mut().enable();
            if self.counts[slot].load(Ordering::Acquire) >= count {
                return true;
            }
            if tokio::time::timeout_at(deadline, complete).await.is_err() {
                return self.counts[slot].load(Ordering::Acquire) >= count;
            }
        }
    }
}

/// Aborts a task when dropped: a subscriber's connection ends with it.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The `seq` of an event's `data:` line, if it has one.
fn seq_of(event: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"seq\":";
    let at = event.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = event[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&event[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// One subscription: `opened` is told whether its answer was a 200; then
/// every event is counted until the connection ends (a loss) or the task is
/// aborted (closed by us).
async fn subscribe(uri: Uri, channel: usize, tally: Arc<Tally>, opened: oneshot::Sender<bool>) {
    let mut opened = Some(opened);
    let mut tell = |ok: bool| {
        if let Some(opened) = opened.take() {
            let _ = opened.send(ok);
        }
    };
    let Some(authority) = uri.authority().cloned() else {
        return tell(false);
    };
    let Ok(stream) = tokio::net::TcpStream::connect(authority.as_str()).await else {
        return tell(false);
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
    else {
        return tell(false);
    };
    let _connection = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let Ok(request) = hyper::Request::get(path)
        .header("host", authority.as_str())
        .header("accept", "text/event-stream")
        .body(Empty::<Bytes>::new())
    else {
        return tell(false);
    };
    let Ok(response) = sender.send_request(request).await else {
        return tell(false);
    };
    if response.status() != 200 {
        return tell(false);
    }
    tell(true);
    let mut body = response.into_body();
    let mut text: Vec<u8> = Vec::with_capacity(4096);
    let mut scanned = 0;
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        text.extend_from_slice(&data);
        let mut start = 0;
        while let Some(at) = text[scanned..].windows(2).position(|w| w == b"\n\n") {
            let end = scanned + at;
            let event = &text[start..end];
            if event.starts_with(b"event: gap") {
                tally.gaps.fetch_add(1, Ordering::Relaxed);
            } else if let Some(seq) = seq_of(event) {
                tally.received(channel, seq);
            }
            start = end + 2;
            scanned = start;
        }
        text.drain(..start);
        scanned = text.len().saturating_sub(1);
    }
    tally.lost.fetch_add(1, Ordering::Relaxed);
}

/// Held subscriptions; dropping them closes their connections.
struct Held(Vec<AbortOnDrop>);

/// Opens `count` subscriptions, round robin over `channels` (index, URL),
/// at most `parallel` being set up at once. Returns those answered 200, the
/// seconds until the last answer, and how many of them each channel has.
async fn open(
    tally: &Arc<Tally>,
    channels: &[(usize, Uri)],
    count: usize,
    parallel: usize,
) -> (Held, f64, Vec<usize>) {
    let permits = Arc::new(Semaphore::new(parallel));
    let started = Instant::now();
    let mut held = Vec::with_capacity(count);
    let mut answers = Vec::with_capacity(count);
    for n in 0..count {
        let (channel, uri) = channels[n % channels.len()].clone();
        let (sender, answer) = oneshot::channel();
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .expect("open semaphore");
        let tally = Arc::clone(tally);
        let (relay, answered) = oneshot::channel();
        held.push(AbortOnDrop(tokio::spawn(subscribe(
            uri, channel, tally, sender,
        ))));
        // The permit is given back when the answer comes (or never comes).
        tokio::spawn(async move {
            let ok = answer.await.unwrap_or(false);
            drop(permit);
            let _ = relay.send(ok);
        });
        answers.push(answered);
    }
    let mut answered_ok = Vec::with_capacity(count);
    let mut on_channel = vec![0; CHANNELS];
    for (n, (subscription, answered)) in held.into_iter().zip(answers).enumerate() {
        if answered.await.unwrap_or(false) {
            answered_ok.push(subscription);
            on_channel[channels[n % channels.len()].0] += 1;
        }
    }
    (
        Held(answered_ok),
        started.elapsed().as_secs_f64(),
        on_channel,
    )
}

/// A keep-alive connection to the publish endpoint, opened again when the
/// server closes it.
struct Publisher {
    publish: Publish,
    sender: Option<SendRequest<Full<Bytes>>>,
    _connection: Option<AbortOnDrop>,
}

impl Publisher {
    fn new(publish: &Publish) -> Publisher {
        Publisher {
            publish: publish.clone(),
            sender: None,
            _connection: None,
        }
    }

    fn url(&self, channel: &str) -> Uri {
        match &self.publish {
            Publish::Body(url) => url.replace("{channel}", channel),
            Publish::Grip(url) => url.clone(),
        }
        .parse()
        .expect("a publish URL")
    }

    async fn connect(&mut self, uri: &Uri) -> Result<(), String> {
        let authority = uri.authority().ok_or("no host")?.to_string();
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        self._connection = Some(AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        })));
        self.sender = Some(sender);
        Ok(())
    }

    /// Publishes event `seq` to `channel`; `Err` if the server refused it.
    async fn publish(&mut self, channel: &str, seq: u64) -> Result<(), String> {
        let data = format!("{{\"seq\":{seq},\"pad\":\"{PAD}\"}}");
        let uri = self.url(channel);
        let body = match &self.publish {
            Publish::Body(_) => data,
            Publish::Grip(_) => json!({"items": [{"channel": channel, "formats": {"http-stream": {
                "content": format!("event: message\ndata: {data}\n\n")}}}]})
            .to_string(),
        };
        for _ in 0..2 {
            let ready = match self.sender.as_mut() {
                Some(sender) => sender.ready().await.is_ok(),
                None => false,
            };
            if !ready {
                self.connect(&uri).await?;
            }
            let request = hyper::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
                .header("host", uri.authority().map_or("", |a| a.as_str()))
                .header("x-eventsource-event", "message")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.clone())))
                .map_err(|e| e.to_string())?;
            let Some(sender) = self.sender.as_mut() else {
                continue;
            };
            match sender.send_request(request).await {
                Ok(response) => {
                    let status = response.status();
                    let _ = response.into_body().collect().await;
                    return if status.is_success() {
                        Ok(())
                    } else {
                        Err(format!("publish answered {status}"))
                    };
                }
                // Closed between requests (a keep-alive limit): once more
                // on a new connection.
                Err(_) => self.sender = None,
            }
        }
        Err("the publish endpoint closed the connection twice".into())
    }
}

/// CPU time (ticks) and proportional set size (KiB) of processes: the
/// PSS counts a page shared by several of them (nginx's workers map the
/// same shared memory) once in all, where their RSS would count it in each.
fn usage_of(pids: &[i32]) -> (u64, u64) {
    let mut ticks = 0;
    let mut pss = 0;
    for pid in pids {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            ticks += fields
                .get(11)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                + fields
                    .get(12)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
        }
        if let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            pss += rollup
                .lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    (ticks, pss)
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// The CPU the client and the server use over a measure.
struct Meter {
    pids: Vec<i32>,
    load: f64,
    started: Instant,
    client: u64,
    server: u64,
}

impl Meter {
    fn start(pids: &[i32]) -> Meter {
        let me = [std::process::id() as i32];
        Meter {
            pids: pids.to_vec(),
            load: load_average(),
            started: Instant::now(),
            client: usage_of(&me).0,
            server: usage_of(pids).0,
        }
    }

    /// `{load, client_cores, server_cores, server_cpu_seconds}` so far.
    fn read(&self) -> Value {
        let me = [std::process::id() as i32];
        let wall = self.started.elapsed().as_secs_f64();
        let hz = ticks_per_second();
        let client = usage_of(&me).0.saturating_sub(self.client) as f64 / hz;
        let server = usage_of(&self.pids).0.saturating_sub(self.server) as f64 / hz;
        json!({"load": self.load, "client_cores": client / wall, "server_cores": server / wall,
               "server_cpu_seconds": server, "seconds": wall})
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Client {
    options: Options,
    tally: Arc<Tally>,
    /// Subscription URL per channel name.
    urls: std::collections::HashMap<String, Uri>,
}

impl Client {
    async fn url(&mut self, name: &str) -> Uri {
        if let Some(uri) = self.urls.get(name) {
            return uri.clone();
        }
        let mut url = self.options.sub_url.replace("{channel}", name);
        if let Some(token_url) = &self.options.token_url {
            let token = fetch(&token_url.replace("{channel}", name))
                .await
                .unwrap_or_else(|e| panic!("a token for {name}: {e}"));
            url = url.replace("{token}", token.trim());
        }
        let uri: Uri = url.parse().expect("a subscription URL");
        self.urls.insert(name.to_owned(), uri.clone());
        uri
    }

    /// `n` events published one at a time to channel 0 (`name`), each once
    /// the previous reached all `count` subscribers: publish -> last
    /// receipt, and the server's CPU per delivery.
    async fn fanout(&self, name: &str, count: usize, events: usize) -> Value {
        let tally = &self.tally;
        tally.reset(0);
        tally.expected[0].store(count as u32, Ordering::Relaxed);
        let mut publisher = Publisher::new(&self.options.publish);
        // Two events first, not measured: connections and caches warm. The
        // first also says how many subscriptions are live: one answered 200
        // that never gets an event (Pushpin cancels some under a burst of
        // set-ups) is not waited for, and is counted as dead.
        let warm = 2;
        let meter = Meter::start(&self.options.server_pids);
        let mut to_last = Vec::new();
        let mut complete = 0;
        let mut deliveries = 0u64;
        let mut live = count as u32;
        for seq in 0..(events + warm) as u64 {
            let published = monotonic_ns();
            if let Err(error) = publisher.publish(name, seq).await {
                eprintln!("peers_client: fan-out publish: {error}");
                break;
            }
            let all = tally
                .wait_for(
                    0,
                    seq,
                    live,
                    Duration::from_secs(if seq == 0 { 5 } else { 10 }),
                )
                .await;
            if seq == 0 {
                live = tally.counts[Tally::slot(0, 0)].load(Ordering::Relaxed);
                tally.expected[0].store(live, Ordering::Relaxed);
            }
            let slot = Tally::slot(0, seq);
            deliveries += u64::from(tally.counts[slot].load(Ordering::Relaxed));
            if seq >= warm as u64 {
                complete += usize::from(all);
                let last = tally.last_at[slot].load(Ordering::Relaxed);
                to_last.push(last.saturating_sub(published) as f64 / 1e6);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let usage = meter.read();
        to_last.sort_by(f64::total_cmp);
        let cpu = usage["server_cpu_seconds"].as_f64().unwrap_or(0.0);
        json!({
            "subscribers": count, "live": live, "dead": count as u32 - live.min(count as u32),
            "events": to_last.len(), "every_receipt": complete,
            "publish_to_last_receipt_ms": {"p50": percentile(&to_last, 0.5), "p99": percentile(&to_last, 0.99)},
            "server_cpu_us_per_delivery": cpu * 1e6 / deliveries.max(1) as f64,
            "usage": usage,
        })
    }

    /// Closed loop: `window` events in flight per channel.
    async fn closed_loop(&self, names: &[String], on_channel: &[usize]) -> Value {
        let tally = &self.tally;
        for (channel, _) in names.iter().enumerate() {
            tally.reset(channel);
            tally.expected[channel].store(on_channel[channel] as u32, Ordering::Relaxed);
        }
        // A first event on each channel says how many of its subscriptions
        // are live (see `fanout`).
        let mut probes = Vec::new();
        for (channel, name) in names.iter().enumerate() {
            let (tally, name) = (Arc::clone(tally), name.clone());
            let per_channel = on_channel[channel];
            let mut publisher = Publisher::new(&self.options.publish);
            probes.push(tokio::spawn(async move {
                if publisher.publish(&name, 0).await.is_err() {
                    return 0;
                }
                tally
                    .wait_for(channel, 0, per_channel as u32, Duration::from_secs(5))
                    .await;
                let live = tally.counts[Tally::slot(channel, 0)].load(Ordering::Relaxed);
                tally.expected[channel].store(live, Ordering::Relaxed);
                live
            }));
        }
        let mut live = Vec::new();
        for probe in probes {
            live.push(probe.await.unwrap_or(0));
        }
        let seconds = Duration::from_secs_f64(self.options.seconds);
        let window = self.options.window as u64;
        let lost_before = tally.lost.load(Ordering::Relaxed);
        tally.delivered.store(0, Ordering::Relaxed);
        tally.counting.store(true, Ordering::Relaxed);
        let meter = Meter::start(&self.options.server_pids);
        let stalls = Arc::new(AtomicU64::new(0));
        let mut publishers = Vec::new();
        for (channel, name) in names.iter().enumerate() {
            let (tally, stalls, name) = (Arc::clone(tally), Arc::clone(&stalls), name.clone());
            let mut publisher = Publisher::new(&self.options.publish);
            let (live, per_channel) = (live[channel], on_channel[channel]);
            publishers.push(tokio::spawn(async move {
                let until = Instant::now() + seconds;
                let mut seq = 1u64;
                while Instant::now() < until {
                    if seq > window {
                        // An event that never reaches everyone (a server
                        // that drops it) holds the window for 1 s at most.
                        let done = tally
                            .wait_for(channel, seq - window, live, Duration::from_secs(1))
                            .await;
                        if !done {
                            stalls.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // The slot is free again (CAP events ago).
                    let slot = Tally::slot(channel, seq);
                    tally.counts[slot].store(0, Ordering::Relaxed);
                    if let Err(error) = publisher.publish(&name, seq).await {
                        eprintln!("peers_client: {name}: publish: {error}");
                        break;
                    }
                    seq += 1;
                }
                (seq - 1, per_channel as u32 - live.min(per_channel as u32))
            }));
        }
        let (mut published, mut dead) = (0, 0);
        for publisher in publishers {
            let (sent, lost) = publisher.await.unwrap_or((0, 0));
            published += sent;
            dead += lost;
        }
        tally.counting.store(false, Ordering::Relaxed);
        let usage = meter.read();
        let wall = usage["seconds"].as_f64().unwrap_or(1.0);
        json!({
            "published": published, "delivered": tally.delivered.load(Ordering::Relaxed),
            "delivered_per_second": tally.delivered.load(Ordering::Relaxed) as f64 / wall,
            "window_stalls": stalls.load(Ordering::Relaxed), "dead": dead,
            "lost": tally.lost.load(Ordering::Relaxed) - lost_before,
            "usage": usage,
        })
    }

    /// Open loop: each channel's publisher posts as fast as it is answered.
    async fn open_loop(&self, names: &[String]) -> Value {
        let tally = &self.tally;
        let seconds = Duration::from_secs_f64(self.options.seconds);
        let lost_before = tally.lost.load(Ordering::Relaxed);
        let gaps_before = tally.gaps.load(Ordering::Relaxed);
        tally.delivered.store(0, Ordering::Relaxed);
        for (channel, _) in names.iter().enumerate() {
            tally.expected[channel].store(u32::MAX, Ordering::Relaxed);
        }
        tally.counting.store(true, Ordering::Relaxed);
        let meter = Meter::start(&self.options.server_pids);
        let mut publishers = Vec::new();
        for name in names {
            let name = name.clone();
            let mut publisher = Publisher::new(&self.options.publish);
            publishers.push(tokio::spawn(async move {
                let until = Instant::now() + seconds;
                // Above the closed loop's numbers: another event each.
                let mut seq = 1u64 << 40;
                while Instant::now() < until {
                    if let Err(error) = publisher.publish(&name, seq).await {
                        eprintln!("peers_client: {name}: publish: {error}");
                        break;
                    }
                    seq += 1;
                }
                seq - (1u64 << 40)
            }));
        }
        let mut published = 0;
        for publisher in publishers {
            published += publisher.await.unwrap_or(0);
        }
        tally.counting.store(false, Ordering::Relaxed);
        let usage = meter.read();
        let wall = usage["seconds"].as_f64().unwrap_or(1.0);
        // Those the server ends within a second after the flood count too.
        tokio::time::sleep(Duration::from_secs(1)).await;
        json!({
            "published": published, "delivered": tally.delivered.load(Ordering::Relaxed),
            "delivered_per_second": tally.delivered.load(Ordering::Relaxed) as f64 / wall,
            "gaps": tally.gaps.load(Ordering::Relaxed) - gaps_before,
            "lost": tally.lost.load(Ordering::Relaxed) - lost_before,
            "usage": usage,
        })
    }
}

/// `GET url`'s body.
async fn fetch(url: &str) -> Result<String, String> {
    let uri: Uri = url.parse().map_err(|_| "not a URL")?;
    let authority = uri.authority().ok_or("no host")?.to_string();
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    let _connection = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let request = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header("host", authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    String::from_utf8(body.to_bytes().to_vec()).map_err(|e| e.to_string())
}

fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct that lives here.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

async fn run(options: Options) -> Value {
    let mut client = Client {
        options,
        tally: Arc::new(Tally::new()),
        urls: std::collections::HashMap::new(),
    };
    let tally = Arc::clone(&client.tally);
    let subscribers = client.options.subscribers;
    let events = client.options.fanout_events;
    let pids = client.options.server_pids.clone();
    let mut result = serde_json::Map::new();
    let tag = std::process::id();

    // 1-3: set-up at 256, memory, fan-out to 10,000 then 5,000.
    let fan = client.url(&format!("fan{tag}")).await;
    let meter = Meter::start(&pids);
    let pss_before = usage_of(&pids).1;
    let (held, seconds, on_channel) = open(&tally, &[(0, fan)], subscribers, 256).await;
    let ok = on_channel[0];
    let mut setups: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
    setups[1].push(
        json!({"subscribers": ok, "seconds": seconds, "per_second": ok as f64 / seconds, "usage": meter.read()}),
    );
    eprintln!("peers_client: {ok} set up 256 at once in {seconds:.2} s");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let load = load_average();
    let pss_after = usage_of(&pids).1;
    result.insert(
        "memory".into(),
        json!({"subscribers": ok, "pss_kib": [pss_before, pss_after],
               "kib_per_subscriber": (pss_after as f64 - pss_before as f64) / ok.max(1) as f64, "load": load}),
    );
    let name = format!("fan{tag}");
    let fan_10k = client.fanout(&name, ok, events).await;
    eprintln!("peers_client: fan-out to {ok}: {fan_10k}");
    result.insert("fanout_10000".into(), fan_10k);
    let Held(mut held) = held;
    let half = held.len() / 2;
    held.truncate(half);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fan_5k = client.fanout(&name, half, events).await;
    eprintln!("peers_client: fan-out to {half}: {fan_5k}");
    result.insert("fanout_5000".into(), fan_5k);
    let lost_fanout = tally.lost.load(Ordering::Relaxed);
    drop(held);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 4-5: closed and open loop on `loop_channels` channels.
    let channels = client.options.loop_channels;
    let names: Vec<String> = (0..channels).map(|c| format!("loop{tag}-{c}")).collect();
    let mut urls = Vec::new();
    for (channel, name) in names.iter().enumerate() {
        urls.push((channel, client.url(name).await));
    }
    let lost_before = tally.lost.load(Ordering::Relaxed);
    let (held, _, on_channel) = open(&tally, &urls, client.options.loop_subscribers, 256).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let closed = client.closed_loop(&names, &on_channel).await;
    eprintln!("peers_client: closed loop: {closed}");
    result.insert("closed_loop".into(), closed);
    let open_loop = client.open_loop(&names).await;
    eprintln!("peers_client: open loop: {open_loop}");
    result.insert("open_loop".into(), open_loop);
    result.insert(
        "lost".into(),
        json!({"fanout": lost_fanout, "loops": tally.lost.load(Ordering::Relaxed) - lost_before}),
    );
    drop(held);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 6: set-up again, 64 and 256 at once in turn: three of each in all
    // (one takes under a second, which the machine's noise swamps).
    for round in 0..3 {
        for (at, parallel) in [(0, 64), (1, 256)] {
            if at == 1 && round == 2 {
                break;
            }
            let setup = client.url(&format!("setup{tag}-{round}-{parallel}")).await;
            let meter = Meter::start(&pids);
            let (held, seconds, on_channel) =
                open(&tally, &[(1, setup)], subscribers, parallel).await;
            let ok = on_channel[1];
            setups[at].push(json!({"subscribers": ok, "seconds": seconds,
                                   "per_second": ok as f64 / seconds, "usage": meter.read()}));
            eprintln!("peers_client: {ok} set up {parallel} at once in {seconds:.2} s");
            drop(held);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    for (key, runs) in ["setup_64", "setup_256"].iter().zip(setups) {
        // The median run, and every run.
        let mut sorted = runs.clone();
        sorted.sort_by(|a, b| {
            a["per_second"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b["per_second"].as_f64().unwrap_or(0.0))
        });
        let mut median = sorted[sorted.len() / 2].clone();
        median["runs"] = Value::Array(runs);
        result.insert((*key).into(), median);
    }

    // Whether every server process lived through it all (Pushpin's proxy
    // has been seen to exit under the set-ups' churn).
    result.insert(
        "server_alive".into(),
        json!(pids
            .iter()
            .all(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())),
    );
    Value::Object(result)
}

fn main() {
    let options = parse();
    raise_fd_limit();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = tokio.block_on(run(options));
    println!("{result}");
    // The held subscriptions' tasks are not waited for.
    tokio.shutdown_timeout(Duration::from_secs(1));
}
