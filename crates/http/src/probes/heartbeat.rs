//! Liveness that means something: a native thread that always answers 200
//! would hide a wedged host. The host calls [`Heartbeat::beat`] from the
//! loop that matters (Waitress's main loop, the Rust server's runtime, the
//! C host's loop); `/healthz` fails once the last beat is older than the
//! configured staleness. A host that never beats is always alive, as before.

use crate::clock::Mono;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The time of the host's last heartbeat.
#[derive(Debug, Default)]
pub struct Heartbeat {
    /// Monotonic nanoseconds of the last beat; 0: never.
    last_ns: AtomicU64,
}

/// What `/healthz` makes of the heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// No heartbeat was ever sent: alive by default.
    NeverBeat,
    /// The last beat is recent enough.
    Fresh,
    /// The last beat is this old, older than the staleness.
    Stale(Duration),
}

impl Heartbeat {
    /// Records a beat now: one atomic store, no lock, callable from any
    /// thread as often as wanted.
    #[inline]
    pub fn beat(&self) {
        self.last_ns
            .store(crate::monotonic_ns().max(1), Ordering::Relaxed);
    }

    /// How old the last beat is (`None`: never beat).
    pub fn age(&self) -> Option<Duration> {
        match self.last_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Mono::from_ns(ns).until(Mono::now())),
        }
    }

    pub(crate) fn liveness(&self, stale_after: Duration) -> Liveness {
        match self.age() {
            None => Liveness::NeverBeat,
            Some(age) if age > stale_after => Liveness::Stale(age),
            Some(_) => Liveness::Fresh,
        }
    }

    /// Forgets every beat (the testing reset, a forked child).
    pub(crate) fn clear(&self) {
        self.last_ns.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_fresh_then_stale() {
        let heartbeat = Heartbeat::default();
        assert_eq!(
            heartbeat.liveness(Duration::from_secs(1)),
            Liveness::NeverBeat
        );
        heartbeat.beat();
        assert_eq!(heartbeat.liveness(Duration::from_secs(60)), Liveness::Fresh);
        std::thread::sleep(Duration::from_millis(20));
        assert!(matches!(
            heartbeat.liveness(Duration::from_millis(5)),
            Liveness::Stale(_)
        ));
        heartbeat.clear();
        assert_eq!(heartbeat.age(), None);
    }
}
