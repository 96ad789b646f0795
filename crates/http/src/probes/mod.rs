//! The probe listener: `/readyz`, `/healthz`, `/metrics` and `/drain`,
//! answered from the runtime's own thread, so that probes never share the
//! host's fate (its thread pool, its GIL, its listener that closes at
//! SIGTERM).
//!
//! * `options.rs`: where it listens and what it needs (`GS_PROBE_ADDR`,
//!   `GS_DRAIN_TOKEN`, `GS_HEARTBEAT_STALE_SECONDS`);
//! * `server.rs`: one thread running a single-threaded tokio runtime with
//!   hyper's HTTP/1 server, bounded in connections and time;
//! * `routes.rs`: the answers, the same bodies and status codes as the
//!   example servers' contract;
//! * `heartbeat.rs`: liveness that follows a heartbeat the host sends from
//!   the loop that matters;
//! * `readiness.rs`: host readiness checks, each bounded in time.
//!
//! A forked child has no probe listener (the listening socket is closed in
//! the child right after `fork()`); it may start its own.

mod heartbeat;
mod options;
mod readiness;
mod routes;
mod server;

/// Read by every listener (the hub's too) when it starts.
pub use crate::listener::LISTEN_BACKLOG;
pub use heartbeat::Heartbeat;
pub use options::ProbeOptions;
pub use options::{DRAIN_TOKEN, HEARTBEAT_STALE, PROBE_ADDR};
pub(crate) use readiness::ReadinessCheck;
pub use readiness::ReadinessReport;
pub(crate) use routes::bearer;
pub(crate) use server::start;
