//! The stream hub: Server-Sent Events held by the runtime itself, so that a
//! host (a Python app on a small thread pool) publishes to channels and
//! never holds a connection.
//!
//! * `options.rs`: where it listens and its bounds (`GS_STREAM_*`);
//! * `token.rs`: signed, expiring subscription tokens;
//! * `store.rs`: channels, histories and subscribers behind a small trait;
//! * `frame.rs`: the SSE bytes, serialized once per event;
//! * `server.rs`: the listener and each connection's body;
//! * `drain.rs`: the shutdown sequence applied to the hub's connections.

mod drain;
mod frame;
mod options;
mod server;
mod store;
mod token;

pub use options::HubOptions;
pub use options::{
    STREAM_ADDR, STREAM_CORS_ORIGINS, STREAM_HEARTBEAT, STREAM_HISTORY, STREAM_HISTORY_AGE,
    STREAM_IDLE, STREAM_MAX_CHANNELS, STREAM_MAX_CHANNEL_BYTES, STREAM_QUEUE, STREAM_SECRET,
};
#[doc(hidden)]
pub use store::Published;

use crate::error::Error;
use crate::listener::Started;
use crate::reconnect_spread::StreamKind;
use crate::runtime::{lock, Runtime};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::{ChannelStore, StoreError};

/// A running hub, held by its runtime.
pub(crate) struct Hub {
    runtime: Runtime,
    options: HubOptions,
    store: Box<dyn ChannelStore>,
    /// Where it listens, and in which process image: a forked child does
    /// not have it.
    started: Started,
    /// The hub's event loop, for timers started from other threads.
    handle: tokio::runtime::Handle,
    /// The accept loop, aborted at Stopping.
    accepting: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
}

/// Checks a channel name: 1 to 200 characters of `A-Z a-z 0-9 - _ . ~ :`,
/// so that it is one path segment as it stands.
fn check_channel(channel: &str) -> Result<(), Error> {
    let ok = !channel.is_empty()
        && channel.len() <= 200
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

fn store_error(error: StoreError) -> Error {
    match error {
        StoreError::TooManyChannels => Error::HubFull,
        StoreError::Closed => Error::InvalidArgument("the channel is closed"),
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
    /// appended to the channel's history and queued to every subscriber (a
    /// subscriber whose queue is full is disconnected as too slow). Returns
    /// the event's id: `id`, or the channel's next number. `kind` is the
    /// channel's from now on. [`Error::InvalidArgument`] for a bad channel
    /// name, an event name or id with a line break, or a closed channel;
    /// [`Error::HubFull`] when `max_channels` channels are held;
    /// [`Error::HubNotStarted`] before [`Runtime::start_hub`].
    pub fn hub_publish(
        &self,
        channel: &str,
        event: &str,
        data: &str,
        id: Option<&str>,
        kind: StreamKind,
    ) -> Result<String, Error> {
        self.hub_publish_event(channel, event, data, id, kind)
            .map(|published| published.frame.id().to_owned())
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
    ) -> Result<store::Published, Error> {
        check_channel(channel)?;
        check_field(event, "an event name is not empty and has no line break")?;
        if let Some(id) = id {
            check_field(id, "an event id is not empty and has no line break")?;
        }
        if data.contains('\0') {
            return Err(Error::InvalidArgument("event data must not contain NUL"));
        }
        let hub = self.hub()?;
        let published = hub
            .store
            .publish(channel, kind, event, data, id)
            .map_err(store_error)?;
        if published.too_slow > 0 {
            self.http
                .slow_clients
                .fetch_add(published.too_slow, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(published)
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
        self.hub()?
            .store
            .close(channel, final_event)
            .map_err(store_error)
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
        self.hub()?
            .store
            .set_final_event(channel, kind, event, data)
            .map_err(store_error)
    }

    /// A subscription token for `channel`, valid for `ttl` on every pod
    /// that shares the hub's secret. The client passes it as `?token=` (an
    /// `EventSource` cannot set headers) or `Authorization: Bearer`.
    pub fn hub_subscribe_token(&self, channel: &str, ttl: Duration) -> Result<String, Error> {
        check_channel(channel)?;
        if ttl.is_zero() {
            return Err(Error::InvalidArgument("a token needs a lifetime above 0"));
        }
        let hub = self.hub()?;
        Ok(token::mint(&hub.options.secret, channel, ttl))
    }

    /// Channels the hub holds now (0 before it starts).
    pub fn hub_channel_count(&self) -> usize {
        self.hub().map_or(0, |hub| hub.store.channel_count())
    }

    /// Clients disconnected for falling `queue_capacity` events behind.
    pub fn hub_slow_clients_disconnected(&self) -> u64 {
        self.http
            .slow_clients
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}
