//! The stream hub: Server-Sent Events held by the runtime itself, so that a
//! host (a Python app on a small thread pool) publishes to channels and
//! never holds a connection.
//!
//! * `options.rs`: where it listens and its bounds (`GS_STREAM_*`);
//! * `token.rs`: signed, expiring subscription tokens;
//! * `channel.rs`: a channel's ring of recent events, read by each
//!   subscriber through a cursor; `channels.rs`: the channels by name, and
//!   how their subscribers are woken;
//! * `shared.rs`: the shared store (`GS_STREAM_STORE`): every pod's events
//!   through Redis, and what happens when it is away;
//! * `frame.rs`: the SSE bytes, serialized once per event;
//! * `server.rs`: the listener and each connection's body;
//! * `accept.rs`: how connections are taken, on the writer threads, and
//!   by the accepting thread while they are all busy;
//! * `writers.rs`: the threads that answer the connections and write the
//!   streams (`GS_STREAM_THREADS`), each woken once per burst;
//! * `drain.rs`: the shutdown sequence applied to the hub's connections.

mod accept;
mod channel;
mod channels;
mod drain;
mod frame;
mod options;
mod request;
mod server;
mod shared;
mod token;
mod writers;

pub(crate) use frame::json_string;

pub use options::HubOptions;
pub use options::{
    STREAM_ADDR, STREAM_CORS_ORIGINS, STREAM_HEARTBEAT, STREAM_HISTORY, STREAM_HISTORY_AGE,
    STREAM_IDLE, STREAM_MAX_CHANNELS, STREAM_MAX_CHANNEL_BYTES, STREAM_MAX_CONNECTIONS,
    STREAM_PUBLISH_QUEUE, STREAM_QUEUE, STREAM_SECRET, STREAM_STALL, STREAM_STORE,
    STREAM_STORE_CA_FILE, STREAM_STORE_CLIENT_CERT_FILE, STREAM_STORE_CLIENT_KEY_FILE,
    STREAM_THREADS,
};

/// What a publish did.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The event's id; `None` with a shared store, which gives it when the
    /// event is written.
    pub id: Option<String>,
    /// The number the hub gave it, when the host gave no id (and there is
    /// no shared store).
    pub number: Option<u64>,
}

use crate::error::Error;
use crate::listener::Started;
use crate::reconnect_spread::StreamKind;
use crate::runtime::{lock, Runtime};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A running hub, held by its runtime.
pub(crate) struct Hub {
    runtime: Runtime,
    options: HubOptions,
    channels: Arc<channels::Channels>,
    /// The shared store, when `GS_STREAM_STORE` names one.
    shared: Option<Arc<shared::Shared>>,
    /// The threads that serve the connections; every stream waits on its
    /// own thread's word of a phase change (see `drain.rs`).
    writers: Arc<writers::Writers>,
    /// Where it listens, and in which process image: a forked child does
    /// not have it.
    started: Started,
    /// The hub's event loop, for timers started from other threads.
    handle: tokio::runtime::Handle,
    /// The connections held, under their cap.
    connections: Arc<crate::connections::Connections>,
    /// Answers at the cap being written now, a few at most.
    refusing: Arc<tokio::sync::Semaphore>,
    /// The accept loops (each writer's, and the accepting thread's sweep),
    /// aborted at Stopping: the listening socket closes with the last.
    accepting: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

/// The longest channel name: 200 characters.
pub const CHANNEL_LEN_MAX: usize = 200;

/// The longest subscription token [`Runtime::hub_subscribe_token`] mints,
/// for a channel of [`CHANNEL_LEN_MAX`] characters and the farthest
/// expiry: `v1.`, the channel in base64url (267 characters), `.`, the
/// expiry (at most 20 digits), `.`, the MAC in base64url (43 characters).
pub const SUBSCRIBE_TOKEN_LEN_MAX: usize = token::MINTED_LEN_MAX;

/// Checks a channel name: 1 to 200 characters of `A-Z a-z 0-9 - _ . ~ :`,
/// so that it is one path segment as it stands.
fn check_channel(channel: &str) -> Result<(), Error> {
    let ok = !channel.is_empty()
        && channel.len() <= CHANNEL_LEN_MAX
        && channel
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(
            "a channel name is 1 to 200 characters of A-Z a-z 0-9 - _ . ~ :",
        ))
    }
}

fn check_field(text: &str, what: &'static str) -> Result<(), Error> {
    if frame::is_field_safe(text) && !text.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidArgument(what))
    }
}

fn kind_for_store(kind: StreamKind) -> last_call_store::Kind {
    match kind {
        StreamKind::Resumable => last_call_store::Kind::Resumable,
        StreamKind::PodBound => last_call_store::Kind::PodBound,
    }
}

impl Hub {
    /// Appends to the shared store's queue.
    fn queue(&self, shared: &shared::Shared, append: last_call_store::Append) -> Result<(), Error> {
        if shared.publish(append) {
            Ok(())
        } else {
            Err(Error::HubBusy)
        }
    }

    /// Whether a stream of a channel of `kind` ends as a resumable one: every
    /// stream does while a healthy shared store holds the channel (another
    /// pod serves it from there, publisher and all); otherwise as its kind.
    fn ends_as(&self, kind: StreamKind) -> StreamKind {
        match &self.shared {
            Some(shared) if shared.health.degraded_for().is_none() => StreamKind::Resumable,
            _ => kind,
        }
    }
}

impl Runtime {
    fn hub(&self) -> Result<Arc<Hub>, Error> {
        lock(&self.http.state)
            .hub
            .as_ref()
            .filter(|hub| hub.started.in_this_process())
            .cloned()
            .ok_or(Error::HubNotStarted)
    }

    /// Starts the stream hub: `GET /streams/<channel>` served as
    /// Server-Sent Events from a thread of the runtime's own, following the
    /// shutdown sequence. Prints `streams on http://ADDR` on stdout and
    /// returns the address (port 0 picks a free one). Once per process:
    /// again gives [`Error::AlreadyStarted`]. A malformed option is
    /// [`Error::Config`] naming its variable.
    pub fn start_hub(&self, options: HubOptions) -> Result<SocketAddr, Error> {
        server::start(self, options)
    }

    /// Starts the hub as [`HubOptions::from_env`] says, if `GS_STREAM_ADDR`
    /// is set (`Ok(None)` otherwise).
    pub fn start_hub_from_env(&self) -> Result<Option<SocketAddr>, Error> {
        match HubOptions::from_env()? {
            Some(options) => self.start_hub(options).map(Some),
            None => Ok(None),
        }
    }

    /// The hub's address, once started.
    pub fn hub_addr(&self) -> Option<SocketAddr> {
        self.hub().ok().map(|hub| hub.started.addr)
    }

    /// Publishes an event to `channel` from any thread, without blocking:
    /// appended once to the channel's ring, which each subscriber reads at
    /// its own pace (one that falls behind it skips ahead with `gap`); the
    /// subscribers are woken on the hub's writer threads, with one
    /// hand-over from this thread per burst whatever their number. Returns
    /// the event's id: `id`, or the channel's next number; `""` with a
    /// shared store, which numbers the event when it writes it and does not
    /// use `id`. `kind` is the channel's from now on.
    /// [`Error::InvalidArgument`] for a bad channel name, an event name or
    /// id with a line break, or (without a shared store) a closed channel;
    /// [`Error::HubFull`] when `max_channels` channels are held;
    /// [`Error::HubBusy`] when the queue to the shared store is full (the
    /// store is slower than the publishers); [`Error::HubNotStarted`]
    /// before [`Runtime::start_hub`].
    pub fn hub_publish(
        &self,
        channel: &str,
        event: &str,
        data: &str,
        id: Option<&str>,
        kind: StreamKind,
    ) -> Result<String, Error> {
        self.hub_publish_event(channel, event, data, id, kind)
            .map(|published| published.id.unwrap_or_default())
    }

    /// [`Runtime::hub_publish`], giving what the store said: the event and
    /// the number the hub gave it (for the C ABI, which returns the number
    /// without copying the id out).
    #[doc(hidden)]
    pub fn hub_publish_event(
        &self,
        channel: &str,
        event: &str,
        data: &str,
        id: Option<&str>,
        kind: StreamKind,
    ) -> Result<Published, Error> {
        check_channel(channel)?;
        check_field(event, "an event name is not empty and has no line break")?;
        if let Some(id) = id {
            check_field(id, "an event id is not empty and has no line break")?;
        }
        if data.contains('\0') {
            return Err(Error::InvalidArgument("event data must not contain NUL"));
        }
        let hub = self.hub()?;
        if let Some(shared) = &hub.shared {
            // The store numbers events, so that ids are valid on every pod;
            // an id given here is not used.
            hub.queue(
                shared,
                last_call_store::Append {
                    channel: channel.to_owned(),
                    kind: kind_for_store(kind),
                    event: event.to_owned(),
                    data: data.to_owned(),
                    flag: last_call_store::Flag::Event,
                },
            )?;
            if let Some(local) = hub.channels.get(channel) {
                local.set_kind(kind);
            }
            return Ok(Published {
                id: None,
                number: None,
            });
        }
        let local = hub
            .channels
            .get_or_create(channel, kind)
            .map_err(|_| Error::HubFull)?;
        let (frame, number) = local
            .publish(&hub.channels.limits, kind, event, data, id)
            .map_err(|()| Error::InvalidArgument("the channel is closed"))?;
        hub.channels.wake(&local);
        Ok(Published {
            id: Some(frame.id().to_owned()),
            number,
        })
    }

    /// Closes `channel`: every subscriber gets the final event (`final_event`
    /// as `(event, data)`, else the one set with
    /// [`Runtime::hub_set_final_event`], else `event: close`) and its
    /// stream ends; a later subscriber gets the history, the final event and
    /// the end. Returns `false` if the channel was unknown.
    pub fn hub_close_channel(
        &self,
        channel: &str,
        final_event: Option<(&str, &str)>,
    ) -> Result<bool, Error> {
        check_channel(channel)?;
        if let Some((event, data)) = final_event {
            check_field(event, "an event name is not empty and has no line break")?;
            if data.contains('\0') {
                return Err(Error::InvalidArgument("event data must not contain NUL"));
            }
        }
        let hub = self.hub()?;
        hub.close_channel(channel, final_event)
    }

    /// Sets the final event `channel` is closed with at ClosingStreams (a
    /// pod-bound channel, such as a task's) or by
    /// [`Runtime::hub_close_channel`] without one, and the channel's kind.
    pub fn hub_set_final_event(
        &self,
        channel: &str,
        kind: StreamKind,
        event: &str,
        data: &str,
    ) -> Result<(), Error> {
        check_channel(channel)?;
        check_field(event, "an event name is not empty and has no line break")?;
        if data.contains('\0') {
            return Err(Error::InvalidArgument("event data must not contain NUL"));
        }
        let hub = self.hub()?;
        let local = hub
            .channels
            .get_or_create(channel, kind)
            .map_err(|_| Error::HubFull)?;
        local.set_final_event(kind, event, data);
        Ok(())
    }

    /// A subscription token for `channel`, valid for `ttl` on every pod
    /// that shares the hub's secret. The client passes it as `?token=` (an
    /// `EventSource` cannot set headers) or `Authorization: Bearer`.
    pub fn hub_subscribe_token(&self, channel: &str, ttl: Duration) -> Result<String, Error> {
        check_channel(channel)?;
        // Expiry is in whole seconds: under one, the token would be
        // expired when given.
        if ttl < Duration::from_secs(1) {
            return Err(Error::InvalidArgument(
                "a token needs a lifetime of at least 1 second",
            ));
        }
        let hub = self.hub()?;
        Ok(token::mint(&hub.options.secret, channel, ttl))
    }

    /// The hub's shared store: `None` without one (or before the hub
    /// starts), `Some(None)` while it answers, `Some(Some(d))` while it has
    /// been away for `d`.
    pub fn hub_store_health(&self) -> Option<Option<Duration>> {
        let hub = self.hub().ok()?;
        let shared = hub.shared.as_ref()?;
        Some(shared.health.degraded_for())
    }

    /// Channels the hub holds now (0 before it starts).
    pub fn hub_channel_count(&self) -> usize {
        self.hub().map_or(0, |hub| hub.channels.count())
    }

    /// Clients dropped for taking no bytes for the stall time while events
    /// waited for them.
    pub fn hub_slow_clients_disconnected(&self) -> u64 {
        self.http
            .slow_clients
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The connections each writer thread serves now (empty before the hub
    /// starts): for tests of how they are spread.
    #[doc(hidden)]
    pub fn hub_writer_loads(&self) -> Vec<usize> {
        self.hub()
            .map_or_else(|_| Vec::new(), |hub| hub.writers.loads())
    }
}

impl Hub {
    /// Closes `channel` with `final_event` (else the one set in advance,
    /// else `event: close`): through the shared store when there is one
    /// (every pod's subscribers get it), else here. `false` if the channel
    /// was unknown here.
    fn close_channel(
        &self,
        channel: &str,
        final_event: Option<(&str, &str)>,
    ) -> Result<bool, Error> {
        let local = self.channels.get(channel);
        if let Some(shared) = &self.shared {
            let (event, data) = match final_event {
                Some((event, data)) => (event.to_owned(), data.to_owned()),
                None => local
                    .as_ref()
                    .and_then(|local| local.final_event())
                    .unwrap_or_else(|| ("close".to_owned(), "{}".to_owned())),
            };
            self.queue(
                shared,
                last_call_store::Append {
                    channel: channel.to_owned(),
                    kind: kind_for_store(local.as_ref().map_or(StreamKind::PodBound, |l| l.kind())),
                    event,
                    data,
                    flag: last_call_store::Flag::Final,
                },
            )?;
            return Ok(local.is_some());
        }
        let known = local.is_some();
        let local = match local {
            Some(local) => local,
            None => self
                .channels
                .get_or_create(channel, StreamKind::PodBound)
                .map_err(|_| Error::HubFull)?,
        };
        if local.close(final_event) {
            self.channels.wake(&local);
        }
        Ok(known)
    }

    /// Closes every channel of `kind` this pod holds with its final event.
    fn close_all(&self, kind: StreamKind) {
        for channel in self.channels.all() {
            if channel.kind() == kind && !channel.is_closed() {
                // Through the store only the channels this pod publishes
                // (those with a final event set here) are closed: another
                // pod's channel is its publisher's to close.
                if self.shared.is_some() && channel.final_event().is_none() {
                    continue;
                }
                // Its subscribers here get their final event (for the
                // shutdown log's count).
                let subscribers = channel.subscriber_count();
                if self.close_channel(&channel.name, None).is_ok() {
                    for _ in 0..subscribers {
                        self.runtime.stream_ending_sent(kind);
                    }
                }
            }
        }
    }
}

impl Hub {
    /// How long the shared store has been unreachable (`None`: healthy, or
    /// no shared store).
    pub(crate) fn store_degraded_for(&self) -> Option<Duration> {
        self.shared
            .as_ref()
            .and_then(|shared| shared.health.degraded_for())
    }
}
