//! Timestamps that a signal handler may take and store.
//!
//! `std::time::Instant` cannot be stored in an atomic or rebuilt from raw
//! values, and `Instant::now()` is not documented as async-signal-safe.
//! `clock_gettime` is on POSIX's async-signal-safe list, so phase entry
//! times are taken with it, as nanoseconds on `CLOCK_MONOTONIC` (for
//! durations and deadlines) and `CLOCK_REALTIME` (for metrics), and kept in
//! atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time taken by [`now`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Nanoseconds on `CLOCK_MONOTONIC`.
    pub(crate) monotonic_ns: u64,
    /// Nanoseconds since the Unix epoch.
    pub(crate) unix_ns: u64,
}

impl Stamp {
    pub(crate) fn system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.unix_ns)
    }

    /// Time from `self` to `later`, zero if `later` is earlier.
    pub(crate) fn until(self, later: Stamp) -> Duration {
        Duration::from_nanos(later.monotonic_ns.saturating_sub(self.monotonic_ns))
    }
}

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks exist on every
    // Linux. clock_gettime is async-signal-safe (POSIX.1-2008, signal(7)).
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The current time on `CLOCK_MONOTONIC`, in nanoseconds: the clock the
/// runtime stamps phase changes with. One clock for every process on the
/// machine, so hosts and tests can compare times across processes with it.
/// Async-signal-safe.
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// The current time on both clocks. Async-signal-safe.
pub(crate) fn now() -> Stamp {
    Stamp {
        monotonic_ns: read(libc::CLOCK_MONOTONIC),
        unix_ns: read(libc::CLOCK_REALTIME),
    }
}

/// A [`Stamp`] in atomics, unset until first written. A reader racing a
/// writer may see the new monotonic part with the old wall-clock part; both
/// are only ever used for reporting and deadlines measured on one clock.
#[derive(Debug)]
pub(crate) struct AtomicStamp {
    monotonic_ns: AtomicU64,
    unix_ns: AtomicU64,
}

impl AtomicStamp {
    pub(crate) const fn unset() -> Self {
        Self {
            monotonic_ns: AtomicU64::new(0),
            unix_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn set(&self, stamp: Stamp) {
        self.unix_ns.store(stamp.unix_ns, Ordering::Relaxed);
        // Release: a reader that sees this monotonic part sees the unix part.
        self.monotonic_ns
            .store(stamp.monotonic_ns.max(1), Ordering::Release);
    }

    pub(crate) fn get(&self) -> Option<Stamp> {
        let monotonic_ns = self.monotonic_ns.load(Ordering::Acquire);
        (monotonic_ns != 0).then(|| Stamp {
            monotonic_ns,
            unix_ns: self.unix_ns.load(Ordering::Relaxed),
        })
    }

    pub(crate) fn clear(&self) {
        self.monotonic_ns.store(0, Ordering::Relaxed);
        self.unix_ns.store(0, Ordering::Relaxed);
    }
}
