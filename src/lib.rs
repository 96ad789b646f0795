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
//! Stream accounting is the hot path: [`Runtime::begin_stream`] is two
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
//! // In each stream handler:
//! let _stream = runtime.begin_stream()?; // ends when dropped
//! // Main thread: wait for the sequence, then return from main (exit 0).
//! runtime.wait_for_phase(Phase::Stopped, None).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same runtime is exposed to C (`include/last_call.h`, all
//! symbols `gs_*`) and to Python (`bindings/python`).

mod callback_scope;
mod config;
mod env_text;
mod error;
pub mod ffi;
mod fork;
mod hooks;
mod host_calls;
pub mod hub;
mod listener;
mod listeners;
mod log;
pub mod metrics;
pub mod probes;
mod reconnect_spread;
mod runtime;
mod seconds;
mod sequence;
mod signals;
mod watchdog;

// The core crate's modules under their old paths.
#[doc(hidden)]
pub use last_call_core::delivery;
pub use last_call_core::stream_counter;
use last_call_core::{clock, phase, wait_word};

pub use clock::monotonic_ns;
pub use config::{env, Config, ConfigError, SecondSignal, DEFAULT_EXIT_WATCHDOG_STATUS};
pub use error::{timeout_from_secs, Error};
pub use hooks::{HookOrder, HookOutcome, HookReport};
pub use hub::HubOptions;
pub use phase::{Phase, PhaseChange};
pub use probes::{ProbeOptions, ReadinessReport};
pub use reconnect_spread::{
    nudge_margin, NoticeWindow, ReconnectSpread, StreamKind, NUDGE_MARGIN_MAX,
};
pub use runtime::{RegistrationId, Runtime, StreamGuard};
pub use signals::{install_signal_handlers, signal_handlers_installed};
pub use stream_counter::{CountError, StreamCounter, MAX_ACTIVE_STREAMS};
