//! The runtime of last-call, on the lock-free core (`last-call-core`): the
//! [`Runtime`] facade with its shutdown sequence, phase listeners, shutdown
//! hooks, exit watchdog, signal handling, fork handling, configuration,
//! metrics, reconnect spread and host-call gate.
//!
//! It starts threads of its own but runs no async runtime and serves no
//! HTTP. The listeners above it (`last-call-http`) keep their own state and
//! plug in through generic hooks: [`fork::join`], [`Runtime::add_metrics_source`],
//! [`Runtime::enter_host_call`], [`Runtime::next_registration_id`].
//!
//! An internal building block (`publish = false`): use the `last-call`
//! crate, which re-exports what is public.

mod callback_scope;
pub mod config;
pub mod error;
pub mod fork;
pub mod hooks;
mod host_calls;
mod listeners;
pub mod log;
pub mod metrics;
pub mod pod_figures;
pub mod reconnect_spread;
mod runtime;
pub mod seconds;
mod sequence;
pub mod settings;
mod shutdown_log;
mod signal_relay;
mod signals;
mod watchdog;
mod work;

// The core crate's modules under their paths before the split.
use last_call_core::{clock, delivery, phase, stream_counter, wait_word};

pub use clock::monotonic_ns;
pub use config::{env, Config, ConfigError, SecondSignal, DEFAULT_EXIT_WATCHDOG_STATUS};
pub use error::{timeout_from_secs, Error};
pub use hooks::{HookOrder, HookOutcome, HookReport};
pub use host_calls::HostCall;
pub use phase::{Phase, PhaseChange};
pub use reconnect_spread::{
    nudge_margin, NoticeWindow, ReconnectSpread, StreamKind, NUDGE_MARGIN_MAX,
};
pub use runtime::{RegistrationId, Runtime, StreamGuard};
pub use signals::{install_signal_handlers, signal_handlers_installed, spawn_without_signals};
pub use stream_counter::{CountError, StreamCounter, MAX_ACTIVE_STREAMS};
pub use work::WorkGuard;
