//! The crate's one notion of time: [`Mono`], nanoseconds on
//! `CLOCK_MONOTONIC`, plus [`Stamp`] (a `Mono` and the wall clock, for
//! metrics) and [`AtomicStamp`] to keep one in atomics.
//!
//! `std::time::Instant` cannot be stored in an atomic or rebuilt from raw
//! values, and `Instant::now()` is not documented as async-signal-safe.
//! `clock_gettime` is on POSIX's async-signal-safe list, so the signal
//! handler can stamp the start of the sequence, and every deadline in the
//! crate (waits, the sequence, the hooks' shares, the watchdog) is a `Mono`
//! measured from such stamps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The current time on `CLOCK_MONOTONIC`, in nanoseconds: the clock the
/// runtime stamps phase changes with. One clock for every process on the
/// machine, so hosts and tests can compare times across processes with it.
/// Async-signal-safe.
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// A point on `CLOCK_MONOTONIC`. [`Mono::NEVER`] is the deadline of a wait
/// with no limit; arithmetic saturates, so a huge timeout is simply never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mono(u64);

impl Mono {
    /// A deadline that never comes.
    /// cbindgen:ignore
    pub const NEVER: Mono = Mono(u64::MAX);

    /// Now. Async-signal-safe.
    pub fn now() -> Mono {
        Mono(monotonic_ns())
    }

    pub const fn from_ns(ns: u64) -> Mono {
        Mono(ns)
    }

    /// The deadline of a wait that starts now (`None`: no limit).
    pub fn deadline(timeout: Option<Duration>) -> Mono {
        timeout.map_or(Mono::NEVER, |t| Mono::now().after(t))
    }

    pub fn after(self, delay: Duration) -> Mono {
        Mono(self.0.saturating_add(nanos(delay)))
    }

    pub fn before(self, delay: Duration) -> Mono {
        if self == Mono::NEVER {
            return self;
        }
        Mono(self.0.saturating_sub(nanos(delay)))
    }

    /// Time from `self` to `later` (zero if `later` is earlier).
    pub fn until(self, later: Mono) -> Duration {
        Duration::from_nanos(later.0.saturating_sub(self.0))
    }

    /// Time from now until `self`: `Some(zero)` once passed, `None` for
    /// [`Mono::NEVER`].
    pub fn left(self) -> Option<Duration> {
        (self != Mono::NEVER).then(|| Mono::now().until(self))
    }

    pub fn has_passed(self) -> bool {
        self != Mono::NEVER && Mono::now() >= self
    }
}

/// A point in time taken by [`Stamp::now`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub mono: Mono,
    /// Nanoseconds since the Unix epoch.
    pub unix_ns: u64,
}

impl Stamp {
    /// The current time on both clocks. Async-signal-safe.
    pub fn now() -> Stamp {
        Stamp {
            mono: Mono::now(),
            unix_ns: read(libc::CLOCK_REALTIME),
        }
    }

    pub fn system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.unix_ns)
    }
}

/// A [`Stamp`] in atomics, unset until first written. A reader racing a
/// writer may see the new monotonic part with the old wall-clock part; the
/// wall clock is only ever used for reporting.
#[derive(Debug)]
pub struct AtomicStamp {
    monotonic_ns: AtomicU64,
    unix_ns: AtomicU64,
}

impl AtomicStamp {
    pub const fn unset() -> Self {
        Self {
            monotonic_ns: AtomicU64::new(0),
            unix_ns: AtomicU64::new(0),
        }
    }

    pub fn set(&self, stamp: Stamp) {
        self.unix_ns.store(stamp.unix_ns, Ordering::Relaxed);
        // Release: a reader that sees this monotonic part sees the unix part.
        self.monotonic_ns
            .store(stamp.mono.0.max(1), Ordering::Release);
    }

    /// Sets the stamp unless it is set already (the first writer wins).
    /// Async-signal-safe.
    pub fn set_if_unset(&self, stamp: Stamp) {
        if self
            .monotonic_ns
            .compare_exchange(0, stamp.mono.0.max(1), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.unix_ns.store(stamp.unix_ns, Ordering::Release);
        }
    }

    pub fn get(&self) -> Option<Stamp> {
        let monotonic_ns = self.monotonic_ns.load(Ordering::Acquire);
        (monotonic_ns != 0).then(|| Stamp {
            mono: Mono(monotonic_ns),
            unix_ns: self.unix_ns.load(Ordering::Acquire),
        })
    }

    pub fn clear(&self) {
        self.monotonic_ns.store(0, Ordering::Relaxed);
        self.unix_ns.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_stays_never_and_arithmetic_saturates() {
        assert_eq!(Mono::NEVER.before(Duration::from_secs(5)), Mono::NEVER);
        assert_eq!(Mono::now().after(Duration::MAX), Mono::NEVER);
        assert_eq!(Mono::deadline(None), Mono::NEVER);
        assert_eq!(Mono::NEVER.left(), None);
        assert!(!Mono::NEVER.has_passed());
        assert_eq!(
            Mono::from_ns(5).before(Duration::from_nanos(9)),
            Mono::from_ns(0)
        );
        assert!(Mono::from_ns(1).has_passed());
        assert_eq!(Mono::from_ns(1).left(), Some(Duration::ZERO));
    }

    #[test]
    fn the_first_stamp_wins() {
        let stamp = AtomicStamp::unset();
        let first = Stamp::now();
        stamp.set_if_unset(first);
        stamp.set_if_unset(Stamp {
            mono: Mono(first.mono.0 + 10),
            unix_ns: 1,
        });
        assert_eq!(stamp.get(), Some(first));
        stamp.clear();
        assert_eq!(stamp.get(), None);
    }
}
