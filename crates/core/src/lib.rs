//! The lock-free core of last-call, below everything else: the stream
//! counter (the hot path), the wait word it sleeps on (a futex, or std's
//! `Mutex` and `Condvar` where there is none), the phase word, the delivery
//! slot of phase listeners and the clock.
//!
//! It starts no thread and knows no runtime: the runtime crate builds the
//! shutdown sequence on it. It is the only crate the loom models
//! (`tests/loom_*.rs`, `make loom`) compile, with `--cfg loom`, which
//! `sync` turns into loom's atomics, `Mutex` and `Condvar`.
//!
//! An internal building block (`publish = false`): use the `last-call`
//! crate, which re-exports what is public.

pub mod clock;
pub mod delivery;
pub mod phase;
pub mod stream_counter;
mod sync;
pub mod wait_word;

pub use clock::monotonic_ns;
pub use phase::{Phase, PhaseChange};
pub use stream_counter::{CountError, StreamCounter, MAX_ACTIVE_STREAMS};
