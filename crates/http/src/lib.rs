//! The HTTP listeners of last-call, on its runtime: the probe listener
//! (`/readyz`, `/healthz`, `/metrics`, `/drain`) and the stream hub
//! (Server-Sent Events held by the runtime), both on one listener skeleton
//! (`listener.rs`). [`Runtime`] is the runtime with its listeners.
//!
//! An internal building block (`publish = false`): use the `last-call`
//! crate, which re-exports what is public; its `http` feature (on by
//! default) brings this crate, and with it tokio and hyper.

mod env_text;
pub mod hub;
mod listener;
pub mod probes;
mod runtime;
mod workers;

// The lower crates' modules under their paths before the split.
use last_call_core::{clock, monotonic_ns, phase};
use last_call_runtime::{config, error, fork, log, metrics, reconnect_spread, seconds};

pub use hub::HubOptions;
pub use last_call_store::{StoreTls, StoreUrl};
pub use probes::{ProbeOptions, ReadinessReport};
pub use runtime::{Listeners, Runtime};
