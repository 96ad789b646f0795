//! Worker processes that share one pod's ports: gunicorn's `-w N`, uvicorn's
//! `--workers N`, any pre-fork host.
//!
//! **The topology: one hub per worker, on one port.** Each worker runs its
//! own listeners, bound with `SO_REUSEPORT`, so that the kernel spreads the
//! pod's connections over the workers; with a shared store
//! (`GS_STREAM_STORE=redis://...`) every worker's hub follows every
//! channel, so an event published by any worker reaches a subscriber held
//! by any other. Chosen over the hub in gunicorn's master because:
//!
//! * it is one mechanism for every host: uvicorn's `--workers` supervisor
//!   runs no code of the app, and a spawned (not forked) worker inherits
//!   nothing, so only the workers themselves can hold a hub there;
//! * the fan-out runs on every worker's core instead of one process's;
//! * a worker's publishes need no channel to another process: they go to
//!   the store, as every pod's do.
//!
//! What it costs: each worker reads every channel's events from the store
//! (N readers per pod instead of one), and a worker that is recycled ends
//! its subscribers' streams (they resume elsewhere with `Last-Event-ID`).
//!
//! What it refuses, by name, when a listener starts:
//!
//! * the in-process store (`GS_STREAM_STORE` unset or `memory:`) with more
//!   than one worker: each worker would hold its own channels, and a
//!   subscriber would never see the other workers' events;
//! * port 0 with more than one worker: each would pick a port of its own.
//!
//! `SO_REUSEPORT` lets any process of the same user bind the port too,
//! which is why it is set only when the host says it has sibling workers
//! (a second copy of a one-process server then fails loudly with "address
//! in use" instead of taking half the connections).

use crate::runtime::Runtime;
use last_call_runtime::Error;
use std::sync::atomic::Ordering;

impl Runtime {
    /// Says that this process is one of `workers` worker processes that
    /// serve one pod (set it in each worker before its listeners start;
    /// 1, the default, is a process of its own). With more than one, the
    /// probe listener and the hub bind their port with `SO_REUSEPORT`,
    /// refuse port 0, and the hub refuses the in-process store (see
    /// `workers.rs` for why). [`Error::InvalidArgument`] for 0.
    pub fn set_worker_processes(&self, workers: u32) -> Result<(), Error> {
        if workers == 0 {
            return Err(Error::InvalidArgument(
                "a pod has at least one worker process",
            ));
        }
        self.http.worker_processes.store(workers, Ordering::Relaxed);
        Ok(())
    }

    /// What [`Runtime::set_worker_processes`] said (1 unless told).
    pub fn worker_processes(&self) -> u32 {
        self.http.worker_processes.load(Ordering::Relaxed).max(1)
    }
}
