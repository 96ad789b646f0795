//! The tokio, tower and axum face of last-call, on its runtime with its
//! HTTP listeners ([`last_call_http::Runtime`]):
//!
//! * [`RuntimeExt`] (the `tokio` feature of the `last-call` crate): the
//!   phases as `Send`, cancellation-safe futures ([`RuntimeExt::reached`],
//!   [`RuntimeExt::shutdown_signal`]) and a watch, and the probe listener
//!   with a heartbeat task in one call;
//! * [`layer`] (its `tower` feature): a tower [`Layer`](tower_layer::Layer)
//!   that counts response bodies as streams and answers 503 while draining;
//! * [`sse`] (its `axum` feature): axum's `Sse` response, counted for its
//!   life and ended by its kind at shutdown.
//!
//! An internal building block (`publish = false`): use the `last-call`
//! crate, which re-exports it as `last_call::tokio`, `last_call::tower` and
//! `last_call::axum`.

mod bridge;
mod count;
mod probes;
mod runtime_ext;

#[cfg(feature = "tower")]
pub mod layer;
#[cfg(feature = "axum")]
pub mod sse;
#[cfg(feature = "axum")]
mod sse_bytes;

pub use runtime_ext::{Reached, RuntimeExt, ShutdownSignal};
