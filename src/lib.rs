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
//! argument (checked with loom).
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

#![cfg_attr(gs_loom, allow(dead_code))]

#[cfg(not(gs_loom))]
mod callback_scope;
mod clock;
#[cfg(not(gs_loom))]
mod config;
#[doc(hidden)]
pub mod delivery;
#[cfg(not(gs_loom))]
mod env_text;
#[cfg(not(gs_loom))]
mod error;
#[cfg(not(gs_loom))]
pub mod ffi;
#[cfg(not(gs_loom))]
mod fork;
#[cfg(not(gs_loom))]
mod hooks;
#[cfg(not(gs_loom))]
mod host_calls;
#[cfg(not(gs_loom))]
pub mod hub;
#[cfg(not(gs_loom))]
mod listeners;
#[cfg(not(gs_loom))]
mod log;
#[cfg(not(gs_loom))]
pub mod metrics;
#[cfg(not(gs_loom))]
mod phase;
#[cfg(not(gs_loom))]
pub mod probes;
#[cfg(not(gs_loom))]
mod reconnect_spread;
#[cfg(not(gs_loom))]
mod runtime;
#[cfg(not(gs_loom))]
mod seconds;
#[cfg(not(gs_loom))]
mod sequence;
#[cfg(not(gs_loom))]
mod signals;
pub mod stream_counter;
mod wait_word;
#[cfg(not(gs_loom))]
mod watchdog;

#[cfg(not(gs_loom))]
pub use clock::monotonic_ns;
#[cfg(not(gs_loom))]
pub use config::{
    env, Config, ConfigError, SecondSignal, Timings, DEFAULT_CLOSE_NOTICE, DEFAULT_DRAIN_DELAY,
    DEFAULT_EXIT_WATCHDOG_STATUS, DEFAULT_HOOK_BUDGET,
};
#[cfg(not(gs_loom))]
pub use error::{timeout_from_secs, Error};
#[cfg(not(gs_loom))]
pub use hooks::{HookOrder, HookOutcome, HookReport};
#[cfg(not(gs_loom))]
pub use hub::HubOptions;
#[cfg(not(gs_loom))]
pub use phase::{Phase, PhaseChange};
#[cfg(not(gs_loom))]
pub use probes::{ProbeOptions, ReadinessReport};
#[cfg(not(gs_loom))]
pub use reconnect_spread::{
    nudge_margin, NoticeWindow, ReconnectSpread, StreamKind, NUDGE_MARGIN_MAX,
};
#[cfg(not(gs_loom))]
pub use runtime::{RegistrationId, Runtime, StreamGuard};
#[cfg(not(gs_loom))]
pub use signals::{install_signal_handlers, signal_handlers_installed};
pub use stream_counter::{CountError, StreamCounter, MAX_ACTIVE_STREAMS};
