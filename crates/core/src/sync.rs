//! The one place that picks the synchronisation primitives: std's, or
//! loom's under `cfg(loom)` (the models in `tests/loom_*.rs`), so that the
//! code loom checks is the code that ships. Everything in this crate that
//! loom should see takes its atomics, `Mutex` and `Condvar` from here.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
// Used where the portable wait word is built (off Linux, the
// `portable-wait` feature, the tests).
#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::{Condvar, Mutex};
