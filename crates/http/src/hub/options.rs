//! What the stream hub needs, from code or from the environment.

use crate::config::ConfigError;
use crate::env_text::text;
use std::net::SocketAddr;
use std::time::Duration;

/// Where the hub listens (`host:port`, port 0: a free port).
pub const STREAM_ADDR: &str = "GS_STREAM_ADDR";
/// The HMAC-SHA256 key subscription tokens are signed with; the same on
/// every pod (a Kubernetes Secret), so that a token is valid on any of them.
pub const STREAM_SECRET: &str = "GS_STREAM_SECRET";
/// Comma-separated origins allowed to subscribe from a browser (CORS).
pub const STREAM_CORS_ORIGINS: &str = "GS_STREAM_CORS_ORIGINS";
/// Seconds between heartbeat comments on an idle stream.
pub const STREAM_HEARTBEAT: &str = "GS_STREAM_HEARTBEAT_SECONDS";
/// How far (in events) a subscriber may fall behind before it skips ahead
/// with `event: gap`: a channel keeps at least this many recent events.
pub const STREAM_QUEUE: &str = "GS_STREAM_QUEUE_EVENTS";
/// Where channels live: unset or `memory:` (this process), `redis://...`,
/// `rediss://...`, `redis+cluster://...` (shared by every pod).
pub use last_call_store::STREAM_STORE;
/// TLS to the shared store: the CAs to trust instead of the system's roots,
/// and the client certificate and key for mutual TLS (PEM files).
pub use last_call_store::{
    STREAM_STORE_CA_FILE, STREAM_STORE_CLIENT_CERT_FILE, STREAM_STORE_CLIENT_KEY_FILE,
};
/// Events waiting to be written to the shared store, at most.
pub const STREAM_PUBLISH_QUEUE: &str = "GS_STREAM_PUBLISH_QUEUE_EVENTS";
/// Seconds a subscriber may stay behind, from the first write its socket
/// refused until it has caught up, before it is dropped as too slow (a
/// trickle of bytes meanwhile does not reset the count).
pub const STREAM_STALL: &str = "GS_STREAM_STALL_SECONDS";
/// Events kept per channel for `Last-Event-ID` resume.
pub const STREAM_HISTORY: &str = "GS_STREAM_HISTORY_EVENTS";
/// Seconds an event stays in its channel's history.
pub const STREAM_HISTORY_AGE: &str = "GS_STREAM_HISTORY_SECONDS";
/// Connections the hub holds at once (streams and requests).
pub const STREAM_MAX_CONNECTIONS: &str = "GS_STREAM_MAX_CONNECTIONS";
/// Channels held at once.
pub const STREAM_MAX_CHANNELS: &str = "GS_STREAM_MAX_CHANNELS";
/// Bytes of history one channel may hold.
pub const STREAM_MAX_CHANNEL_BYTES: &str = "GS_STREAM_MAX_CHANNEL_BYTES";
/// Seconds after which a channel with no subscriber and no publish is
/// forgotten.
pub const STREAM_IDLE: &str = "GS_STREAM_IDLE_SECONDS";
/// Threads that write the hub's streams (and answer its requests).
pub const STREAM_THREADS: &str = "GS_STREAM_THREADS";

/// The shortest secret accepted: HMAC-SHA256's output size, and more than
/// anyone recovers by trying.
pub const MIN_SECRET_BYTES: usize = 32;

/// How the example manifests' placeholders begin
/// (`examples/kubernetes/secret.example.yaml`): a secret deployed as is
/// would be known to everyone who read them.
const PLACEHOLDER_PREFIX: &[u8] = b"replace-me";

/// The largest `GS_STREAM_QUEUE_EVENTS` and `GS_STREAM_HISTORY_EVENTS`.
pub const MAX_EVENTS: usize = 1_000_000;
/// The largest `GS_STREAM_MAX_CONNECTIONS` (the kernel's usual ceiling on
/// a process's open files).
pub const MAX_CONNECTIONS: usize = 1_048_576;
/// The largest `GS_STREAM_MAX_CHANNELS`.
pub const MAX_CHANNELS: usize = 10_000_000;
/// The largest `GS_STREAM_MAX_CHANNEL_BYTES` (1 GiB).
pub const MAX_CHANNEL_BYTES: usize = 1 << 30;
/// The largest `GS_STREAM_PUBLISH_QUEUE_EVENTS`.
pub const MAX_PUBLISH_QUEUE: usize = 10_000_000;
/// The largest `GS_STREAM_THREADS`: a channel records which writer threads
/// hold its subscribers in one 64-bit word.
pub const MAX_THREADS: usize = 64;
/// The most writer threads the hub takes by default: past a few, the
/// kernel's TCP path, not the threads, bounds the fan-out, and a pod's
/// cores are also the app's.
const DEFAULT_MAX_THREADS: usize = 4;

/// The default `GS_STREAM_THREADS`: the cores this process may use (its
/// CPU affinity and cgroup quota, as the standard library reads them), at
/// most [`DEFAULT_MAX_THREADS`].
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(DEFAULT_MAX_THREADS)
}

fn store_error(error: last_call_store::StoreConfigError) -> ConfigError {
    ConfigError {
        variable: error.variable,
        value: error.value,
        reason: error.reason,
    }
}

/// How the hub is set up. [`HubOptions::new`] gives the documented
/// defaults.
#[derive(Clone, PartialEq)]
pub struct HubOptions {
    /// Where to listen: `host:port` (port 0: a free port).
    pub addr: String,
    /// The key subscription tokens are signed with (not empty).
    pub secret: Vec<u8>,
    /// Origins allowed by CORS (exact match, such as
    /// `https://app.example.com`); empty: no cross-origin access.
    pub cors_origins: Vec<String>,
    /// A comment is sent on a stream idle this long (default 15 s), so that
    /// proxies keep it open and a vanished client is noticed.
    pub heartbeat: Duration,
    /// How far (in events) a subscriber may fall behind before it skips
    /// ahead with `event: gap` (default 64): a channel keeps at least this
    /// many recent events, one copy for all its subscribers.
    pub queue_capacity: usize,
    /// Events kept per channel for resume (default 100).
    pub history_len: usize,
    /// How long an event stays in the history (default 300 s).
    pub history_age: Duration,
    /// Connections held at once, streams and requests (default 10,000, and
    /// no more than the file-descriptor limit allows); at the cap the
    /// oldest connection that has not sent its request is closed, and with
    /// none, a newcomer is answered 503 with `Retry-After`.
    pub max_connections: usize,
    /// Channels held at once (default 10,000); a publish to a new channel
    /// beyond it first forgets idle ones, else is refused.
    pub max_channels: usize,
    /// Bytes of history per channel (default 1 MiB); the oldest events go
    /// first.
    pub max_channel_bytes: usize,
    /// A channel with no subscriber and no publish for this long is
    /// forgotten (default 300 s).
    pub channel_idle: Duration,
    /// Where channels live (default: this process).
    pub store: last_call_store::StoreUrl,
    /// TLS's files for a `rediss://` store (default: the system's roots,
    /// no client certificate); read and checked when the hub starts.
    pub store_tls: last_call_store::StoreTls,
    /// Events waiting to be written to a shared store, at most (default
    /// 10,000); a publish beyond it is refused ([`crate::error::Error::HubBusy`]).
    pub publish_queue: usize,
    /// A subscriber that has not caught up this long after the first write
    /// its socket refused is dropped as too slow (default 5 s; a trickle of
    /// bytes meanwhile does not reset the count); it resumes with
    /// `event: gap`.
    pub stall: Duration,
    /// Threads that answer subscriptions and write the streams, each
    /// connection on one of them (default: the cores this process may use,
    /// its CPU affinity and cgroup quota, at most 4). The listener's own
    /// thread accepts beside them while they are all busy.
    pub threads: usize,
}

impl std::fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("HubOptions")
            .field("addr", &self.addr)
            .field("secret", &"<redacted>")
            .field("cors_origins", &self.cors_origins)
            .field("heartbeat", &self.heartbeat)
            .field("queue_capacity", &self.queue_capacity)
            .field("history_len", &self.history_len)
            .field("history_age", &self.history_age)
            .field("max_connections", &self.max_connections)
            .field("max_channels", &self.max_channels)
            .field("max_channel_bytes", &self.max_channel_bytes)
            .field("channel_idle", &self.channel_idle)
            .field("store", &self.store)
            .field("store_tls", &self.store_tls)
            .field("publish_queue", &self.publish_queue)
            .field("stall", &self.stall)
            .field("threads", &self.threads)
            .finish()
    }
}

impl HubOptions {
    /// Listens on `addr` with `secret` and the defaults for the rest.
    pub fn new(addr: impl Into<String>, secret: impl Into<Vec<u8>>) -> HubOptions {
        HubOptions {
            addr: addr.into(),
            secret: secret.into(),
            cors_origins: Vec::new(),
            heartbeat: Duration::from_secs(15),
            queue_capacity: 64,
            history_len: 100,
            history_age: Duration::from_secs(300),
            max_connections: 10_000,
            max_channels: 10_000,
            max_channel_bytes: 1024 * 1024,
            channel_idle: Duration::from_secs(300),
            store: last_call_store::StoreUrl::Memory,
            store_tls: last_call_store::StoreTls::default(),
            publish_queue: 10_000,
            stall: Duration::from_secs(5),
            threads: default_threads(),
        }
    }

    /// From `GS_STREAM_ADDR` (`None` when unset) and the other
    /// `GS_STREAM_*` variables. `GS_STREAM_SECRET` is required; a missing or
    /// malformed value names its variable.
    pub fn from_env() -> Result<Option<HubOptions>, ConfigError> {
        match text(STREAM_ADDR)? {
            Some(addr) => Self::from_env_with_addr(&addr).map(Some),
            None => Ok(None),
        }
    }

    /// Listens on `addr`, everything else from the environment.
    pub fn from_env_with_addr(addr: &str) -> Result<HubOptions, ConfigError> {
        let secret = crate::env_text::secret(STREAM_SECRET)?.unwrap_or_default();
        let mut options = HubOptions::new(addr, secret.into_bytes());
        options.check_secret()?;
        if let Some(origins) = text(STREAM_CORS_ORIGINS)? {
            options.cors_origins = origins
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(value) = seconds(STREAM_HEARTBEAT)? {
            options.heartbeat = value;
        }
        if let Some(value) = count(STREAM_QUEUE)? {
            options.queue_capacity = value;
        }
        if let Some(value) = count(STREAM_HISTORY)? {
            options.history_len = value;
        }
        if let Some(value) = seconds(STREAM_HISTORY_AGE)? {
            options.history_age = value;
        }
        if let Some(value) = count(STREAM_MAX_CONNECTIONS)? {
            options.max_connections = value;
        }
        if let Some(value) = count(STREAM_MAX_CHANNELS)? {
            options.max_channels = value;
        }
        if let Some(value) = count(STREAM_MAX_CHANNEL_BYTES)? {
            options.max_channel_bytes = value;
        }
        if let Some(value) = seconds(STREAM_IDLE)? {
            options.channel_idle = value;
        }
        let lookup = last_call_runtime::settings::var_os;
        options.store = last_call_store::StoreUrl::from_lookup(lookup).map_err(store_error)?;
        options.store_tls = last_call_store::StoreTls::from_lookup(lookup).map_err(store_error)?;
        if let Some(value) = count(STREAM_PUBLISH_QUEUE)? {
            options.publish_queue = value;
        }
        if let Some(value) = seconds(STREAM_STALL)? {
            options.stall = value;
        }
        if let Some(value) = count(STREAM_THREADS)? {
            options.threads = value;
        }
        Ok(options)
    }

    /// Every value checked: the secret, the address, the bounds.
    pub(crate) fn validate(&self) -> Result<SocketAddr, ConfigError> {
        self.check_secret()?;
        for (variable, value, most) in [
            (STREAM_QUEUE, self.queue_capacity, MAX_EVENTS),
            (STREAM_HISTORY, self.history_len, MAX_EVENTS),
            (
                STREAM_MAX_CONNECTIONS,
                self.max_connections,
                MAX_CONNECTIONS,
            ),
            (STREAM_MAX_CHANNELS, self.max_channels, MAX_CHANNELS),
            (
                STREAM_MAX_CHANNEL_BYTES,
                self.max_channel_bytes,
                MAX_CHANNEL_BYTES,
            ),
            (STREAM_PUBLISH_QUEUE, self.publish_queue, MAX_PUBLISH_QUEUE),
            (STREAM_THREADS, self.threads, MAX_THREADS),
        ] {
            // Past the range, a value is a mistake, and a huge one made
            // every subscription panic allocating its channel's ring.
            if value == 0 || value > most {
                return Err(ConfigError {
                    variable,
                    value: value.to_string(),
                    reason: format!("must be from 1 to {most}"),
                });
            }
        }
        for (variable, value) in [
            (STREAM_HEARTBEAT, self.heartbeat),
            (STREAM_STALL, self.stall),
        ] {
            if value.is_zero() {
                return Err(ConfigError {
                    variable,
                    value: "0".into(),
                    reason: "must be more than 0".into(),
                });
            }
        }
        self.socket_addr()
    }

    fn check_secret(&self) -> Result<(), ConfigError> {
        let refused = |reason: &str| ConfigError {
            variable: STREAM_SECRET,
            // Never the secret itself: its length says enough.
            value: format!("<{} bytes>", self.secret.len()),
            reason: reason.into(),
        };
        if self.secret.is_empty() {
            return Err(refused(
                "the hub needs a secret to sign subscription tokens (the same on every pod)",
            ));
        }
        if self.secret.len() < MIN_SECRET_BYTES {
            // A 2-byte secret was recovered offline from one token in
            // 0.01 s, and then any channel's token forged.
            return Err(refused(
                "a secret of at least 32 bytes is needed (a short one is guessed from one token); \
                 for example: openssl rand -hex 32",
            ));
        }
        if self.secret.starts_with(PLACEHOLDER_PREFIX) {
            return Err(refused(
                "this is the example manifest's placeholder: create the real secret \
                 (openssl rand -hex 32)",
            ));
        }
        Ok(())
    }

    fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        crate::env_text::listen_addr(STREAM_ADDR, &self.addr)
    }
}

fn count(variable: &'static str) -> Result<Option<usize>, ConfigError> {
    let Some(raw) = text(variable)? else {
        return Ok(None);
    };
    match raw.trim().parse::<usize>() {
        Ok(value) if value > 0 => Ok(Some(value)),
        _ => Err(ConfigError {
            variable,
            value: raw,
            reason: "expected a whole number of at least 1".into(),
        }),
    }
}

fn seconds(variable: &'static str) -> Result<Option<Duration>, ConfigError> {
    let Some(raw) = text(variable)? else {
        return Ok(None);
    };
    match raw.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 && value < 1e9 => {
            Ok(Some(Duration::from_secs_f64(value)))
        }
        _ => Err(ConfigError {
            variable,
            value: raw,
            reason: "expected a number of seconds above 0, such as 15".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "a secret of at least thirty-two bytes";

    #[test]
    fn a_missing_secret_names_its_variable() {
        let error = HubOptions::new("127.0.0.1:0", Vec::new())
            .validate()
            .unwrap_err();
        assert_eq!(error.variable, STREAM_SECRET);
        assert!(error.to_string().contains(STREAM_SECRET));
    }

    #[test]
    fn addresses_and_bounds_are_checked() {
        assert!(HubOptions::new("127.0.0.1:0", KEY).validate().is_ok());
        for bad in ["", "8082", "127.0.0.1:99999", "no such host:1"] {
            let error = HubOptions::new(bad, KEY).validate().unwrap_err();
            assert_eq!(error.variable, STREAM_ADDR, "{bad:?}");
        }
        let mut options = HubOptions::new("127.0.0.1:0", KEY);
        options.queue_capacity = 0;
        assert_eq!(options.validate().unwrap_err().variable, STREAM_QUEUE);
        options.queue_capacity = usize::MAX;
        assert_eq!(options.validate().unwrap_err().variable, STREAM_QUEUE);
        let mut options = HubOptions::new("127.0.0.1:0", KEY);
        options.max_connections = MAX_CONNECTIONS + 1;
        assert_eq!(
            options.validate().unwrap_err().variable,
            STREAM_MAX_CONNECTIONS
        );
        for threads in [0, MAX_THREADS + 1] {
            let mut options = HubOptions::new("127.0.0.1:0", KEY);
            options.threads = threads;
            let error = options.validate().unwrap_err();
            assert_eq!(error.variable, STREAM_THREADS);
            assert!(error.to_string().contains("from 1 to 64"), "{error}");
        }
        let mut options = HubOptions::new("127.0.0.1:0", KEY);
        options.threads = MAX_THREADS;
        assert!(options.validate().is_ok());
    }

    #[test]
    fn the_default_threads_are_the_usable_cores_at_most_four() {
        let threads = HubOptions::new("127.0.0.1:0", KEY).threads;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(threads, cores.min(4));
        assert!((1..=4).contains(&threads));
    }

    #[test]
    fn a_short_or_placeholder_secret_is_refused_naming_the_variable() {
        for bad in [
            &b"s"[..],
            b"ab",
            &[b'x'; 31],
            b"replace-me-with-a-long-random-secret",
        ] {
            let error = HubOptions::new("127.0.0.1:0", bad).validate().unwrap_err();
            assert_eq!(error.variable, STREAM_SECRET);
            assert!(!error.to_string().contains("replace-me"), "{error}");
        }
        assert!(HubOptions::new("127.0.0.1:0", [b'x'; 32])
            .validate()
            .is_ok());
    }

    #[test]
    fn the_debug_form_hides_the_secret() {
        let text = format!("{:?}", HubOptions::new("127.0.0.1:0", "hunter2"));
        assert!(!text.contains("hunter2"), "{text}");
    }
}
