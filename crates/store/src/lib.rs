//! The stream hub's shared store on Redis: channel histories that every pod
//! and worker of a deployment reads and writes, so that an event published
//! anywhere reaches every subscriber, a subscriber resumes on any pod, and
//! a loss is always told, never a silent hole.
//!
//! This crate is the store's Redis side, with no knowledge of HTTP: the
//! data layout ([`keys`]), the ids ([`ids`]), the scripts that append and
//! resume atomically, and the readers that follow every channel
//! ([`LogReader`]). The hub (in the `http` layer) builds its channels,
//! subscribers and hand-off on it.
//!
//! # What it guarantees, and what it loses
//!
//! * **Order, once.** A channel's events are appended by one script call
//!   at a time: every pod sees them in that order, through its bucket's log
//!   ([`LogReader`]), each once.
//! * **Ids valid everywhere.** An event's id is `<epoch>-<ms>-<seq>`
//!   ([`ids::EventId`]): its position in the channel's history, and the
//!   history's incarnation. [`RedisStore::resume`] from an id gives exactly
//!   the events after it when the id is in the history, and
//!   [`ResumeStatus::Gap`] otherwise (trimmed by the bounds, another
//!   epoch, malformed): the subscriber is told `gap` first.
//! * **Restarts and failovers.** The epoch ends with the server's
//!   replication id, which Redis changes on every restart and on every
//!   promotion of a replica. Any restart or failover therefore makes every
//!   earlier id "another epoch": a resume gets `gap` (even when nothing was
//!   lost, for example after a clean restart with `appendfsync always`:
//!   it cannot be told apart from a restart that lost the last second of
//!   writes), and a log reader that reconnects to a new generation reports
//!   its buckets [`LogItem::Lost`].
//! * **Bounded.** A channel's history is trimmed by count, bytes and age on
//!   every append; its keys expire once idle for the history's age plus the
//!   idle time; each bucket log keeps about `log_len` entries. Redis must
//!   run with `maxmemory` and `maxmemory-policy noeviction`: an eviction
//!   would drop histories silently, where a refused write is reported.
//! * **TLS.** `rediss://` verifies the server's certificate (chain, name,
//!   validity) against the system's roots or [`StoreTls::ca_file`], with a
//!   client certificate for mutual TLS ([`tls`]); a certificate that does
//!   not verify makes the store unreachable, never plaintext.

mod connection;
pub mod ids;
pub mod keys;
mod log_reader;
mod store;
pub mod tls;
pub mod url;
mod values;

pub use log_reader::{LogEntry, LogItem, LogReader};
pub use store::{Append, Appended, Kind, Limits, RedisStore, Resume, ResumeStatus};
pub use tls::{
    StoreTls, STREAM_STORE_CA_FILE, STREAM_STORE_CLIENT_CERT_FILE, STREAM_STORE_CLIENT_KEY_FILE,
};
pub use url::{StoreConfigError, StoreUrl, STREAM_STORE};
pub use values::{Entry, Flag};
