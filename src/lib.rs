//! # last-call
//!
//! Keep long-lived HTTP streams (Server-Sent Events) alive through
//! Kubernetes pod terminations.
//!
//! When a pod is told to stop (SIGTERM, then SIGKILL a grace period later),
//! this runtime:
//!
//! 1. flips readiness at once ([`Phase::Draining`]: `/readyz` answers 503)
//!    while liveness stays 200, and keeps serving through a drain delay;
//! 2. refuses new tasks, and waits — sleeping, never polling — for the open
//!    streams to end;
//! 3. shortly before the deadline asks the last ones to reconnect elsewhere
//!    ([`Phase::ClosingStreams`]);
//! 4. runs the host's shutdown hooks ([`Phase::Stopping`]) and lets it exit 0
//!    ([`Phase::Stopped`]) before the SIGKILL.
//!
//! Stream accounting is the hot path: `Runtime::begin_stream` is two
//! relaxed atomic adds (the count, then the started total) on one
//! cache-padded line, its guard's drop one compare-and-swap and one add. See `stream_counter` for the layout and the no-lost-wake-up
//! argument (checked with loom in the core crate).
//!
//! ```no_run
//! use last_call::{install_signal_handlers, Config, Phase, Runtime};
//!
//! let runtime = Runtime::global();
//! install_signal_handlers(Config::from_env()?)?;
//! runtime.register_shutdown_hook("executor", |time_left| {
//!     // stop the task executor within `time_left`
//!     true
//! })?;
//! // In each stream, for as long as it runs (with axum, the `axum`
//! // feature's `Sse::new(events).tracked(kind)` holds it for you):
//! let _stream = runtime.begin_stream()?; // ends when dropped
//! // Main thread: wait for the sequence, then return from main (exit 0).
//! runtime.wait_for_phase(Phase::Stopped, None).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same runtime is exposed to C (`include/last_call.h`, all
//! symbols `gs_*`) and to Python (`bindings/python`).

//!
//! This crate is the public face of a workspace whose dependencies run one
//! way (docs/architecture.md): `last-call-core` (the counter, the wait
//! word, the phase word), `last-call-runtime` (the [`Runtime`] and its
//! shutdown sequence), `last-call-store` (the hub's shared store on
//! Redis), `last-call-http` (the probe listener and the stream hub; the
//! `http` feature, on by default) and `last-call-axum` (the tokio, tower
//! and axum faces, behind the features of those names). It holds the C ABI
//! ([`ffi`]) and re-exports the rest.

pub mod ffi;

/// The async face of the runtime for tokio hosts (the `tokio` feature):
/// [`RuntimeExt`](tokio::RuntimeExt) on [`Runtime`] gives
/// `runtime.reached(Phase::Draining).await`, `runtime.phase_watch()`,
/// `runtime.shutdown_signal()` for axum's and hyper's graceful shutdown,
/// and `runtime.start_probes(..)` (the probe listener with a heartbeat from
/// the tokio runtime).
#[cfg(feature = "tokio")]
pub mod tokio {
    pub use last_call_axum::{Reached, RuntimeExt, ShutdownSignal};
}

/// A tower layer (the `tower` feature) for plain hyper, tonic or any tower
/// stack: response bodies counted as streams, 503 + `Retry-After` while
/// draining.
#[cfg(feature = "tower")]
pub mod tower {
    pub use last_call_axum::layer::*;
}

/// axum's SSE response, counted for its life and ended by its kind at
/// shutdown (the `axum` feature).
#[cfg(feature = "axum")]
pub mod axum {
    #[doc(inline)]
    pub use last_call_axum::sse::*;
}

#[cfg(feature = "http")]
pub use last_call_http::{
    hub, probes, HubOptions, ProbeOptions, ReadinessReport, Runtime, StoreTls, StoreUrl,
};
#[cfg(not(feature = "http"))]
pub use last_call_runtime::Runtime;

#[doc(hidden)]
pub use last_call_core::delivery;
pub use last_call_core::stream_counter;
pub use last_call_core::{monotonic_ns, Phase, PhaseChange};
pub use last_call_core::{CountError, StreamCounter, MAX_ACTIVE_STREAMS};
pub use last_call_runtime::config::{
    Timings, DEFAULT_CLOSE_NOTICE, DEFAULT_DRAIN_DELAY, DEFAULT_HOOK_BUDGET,
};
pub use last_call_runtime::metrics;
/// `GS_*` settings given from code over the environment
/// ([`settings::set`]), read by every part of the runtime as the variable
/// would be.
pub use last_call_runtime::settings;
pub use last_call_runtime::{env, Config, ConfigError, SecondSignal, DEFAULT_EXIT_WATCHDOG_STATUS};
pub use last_call_runtime::{install_signal_handlers, signal_handlers_installed};
pub use last_call_runtime::{
    nudge_margin, NoticeWindow, ReconnectSpread, StreamKind, NUDGE_MARGIN_MAX,
};
pub use last_call_runtime::{timeout_from_secs, Error};
pub use last_call_runtime::{HookOrder, HookOutcome, HookReport};
pub use last_call_runtime::{RegistrationId, StreamGuard, WorkGuard};

// The lower crates' modules under their paths before the split, for ffi/.
use last_call_core::phase;
use last_call_runtime::{config, error, hooks, reconnect_spread, seconds};
