//! Wake latency: from the end of the last stream (on one thread) to the
//! return of the wait for zero streams (on another), over many trials.
//!
//! Side by side, in the same run, with two small reference implementations
//! of the designs this replaces:
//!
//! * the seed's design: check the count every 1 s;
//! * Go's `http.Server.Shutdown`: poll starting at 1 ms, doubling (with
//!   jitter, as Go does) up to 500 ms.
//!
//! Each trial: a stream begins, the waiter starts waiting, the stream is
//! held for `HOLD` and ended on another thread, which stamps the time just
//! before it ends the stream; the waiter stamps the time it returns.
//! Polling designs cannot be faster than their tick, so they run fewer
//! trials (each costs up to a tick); the runtime runs 10,000.
//!
//! `cargo bench --bench wake_latency` (`make bench` runs it).

use last_call::Runtime;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How long each trial holds its stream before ending it. Go's poll gets
/// slower the longer it has waited, so it is measured twice: after 2 ms
/// (its best case) and after 1 s (a short real drain).
const HOLD: Duration = Duration::from_millis(2);
const REALISTIC_HOLD: Duration = Duration::from_secs(1);

trait Waitable: Send + Sync {
    fn begin(&self);
    fn end(&self);
    fn wait_for_zero(&self);
}

impl Waitable for Runtime {
    fn begin(&self) {
        self.increment_active_streams().unwrap();
    }
    fn end(&self) {
        self.decrement_active_streams().unwrap();
    }
    fn wait_for_zero(&self) {
        assert!(matches!(self.wait_for_streams(None), Ok(true)));
    }
}

/// A count that the waiter polls, on one of two schedules.
struct Polled {
    count: AtomicU32,
    schedule: Schedule,
}

enum Schedule {
    /// The seed's design: check every `period`.
    Every(Duration),
    /// Go's net/http `Shutdown` loop: the first tick after 1 ms, each next
    /// one twice as long plus up to 10% jitter, capped at 500 ms.
    GoDoubling,
}

impl Polled {
    fn new(schedule: Schedule) -> Polled {
        Polled {
            count: AtomicU32::new(0),
            schedule,
        }
    }
}

impl Waitable for Polled {
    fn begin(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }
    fn end(&self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
    fn wait_for_zero(&self) {
        let mut interval = match self.schedule {
            Schedule::Every(period) => period,
            Schedule::GoDoubling => Duration::from_millis(1),
        };
        let mut jitter_seed = 0x9E37_79B9u32;
        while self.count.load(Ordering::Acquire) != 0 {
            match self.schedule {
                Schedule::Every(_) => std::thread::sleep(interval),
                Schedule::GoDoubling => {
                    // A cheap xorshift for the jitter; the distribution is
                    // not the point, the doubling is.
                    jitter_seed ^= jitter_seed << 13;
                    jitter_seed ^= jitter_seed >> 17;
                    jitter_seed ^= jitter_seed << 5;
                    let jitter = interval.mul_f64(f64::from(jitter_seed % 100) / 1000.0);
                    std::thread::sleep(interval + jitter);
                    interval = (interval * 2).min(Duration::from_millis(500));
                }
            }
        }
    }
}

/// Latencies, in microseconds, of `trials` trials.
fn measure(subject: Arc<dyn Waitable>, trials: usize, hold: Duration) -> Vec<f64> {
    let mut latencies = Vec::with_capacity(trials);
    for _ in 0..trials {
        subject.begin();
        let (stamp_sender, stamp) = mpsc::channel();
        let ender = {
            let subject = Arc::clone(&subject);
            std::thread::spawn(move || {
                std::thread::sleep(hold);
                let ended = Instant::now();
                subject.end();
                stamp_sender.send(ended).unwrap();
            })
        };
        subject.wait_for_zero();
        let returned = Instant::now();
        ender.join().unwrap();
        let ended = stamp.recv().unwrap();
        latencies.push(returned.saturating_duration_since(ended).as_secs_f64() * 1e6);
    }
    latencies
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

fn report(name: &str, hold: Duration, mut latencies: Vec<f64>) -> f64 {
    latencies.sort_by(f64::total_cmp);
    let p50 = percentile(&latencies, 50.0);
    let p99 = percentile(&latencies, 99.0);
    let max = latencies[latencies.len() - 1];
    println!(
        "| {name} | {hold:?} | {} | {:.1} µs | {:.1} µs | {:.1} µs |",
        latencies.len(),
        p50,
        p99,
        max
    );
    p50
}

fn main() {
    // cargo bench passes --bench; `cargo test --benches` passes nothing.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (ours, go, go_realistic, seed) = if quick {
        (200, 5, 2, 2)
    } else {
        (10_000, 200, 30, 20)
    };
    println!("wake latency: last stream's end -> wait returns\n");
    println!("| design | stream held | trials | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    let runtime_p50 = report(
        // `--features portable-wait` measures the portable wait primitive.
        if cfg!(feature = "portable-wait") {
            "last-call (portable wake: Mutex + Condvar)"
        } else {
            "last-call (futex wake)"
        },
        HOLD,
        measure(Arc::new(Runtime::new()), ours, HOLD),
    );
    let go_p50 = report(
        "Go Shutdown poll (1 ms doubling to 500 ms)",
        HOLD,
        measure(Arc::new(Polled::new(Schedule::GoDoubling)), go, HOLD),
    );
    let go_realistic_p50 = report(
        "Go Shutdown poll (1 ms doubling to 500 ms)",
        REALISTIC_HOLD,
        measure(
            Arc::new(Polled::new(Schedule::GoDoubling)),
            go_realistic,
            REALISTIC_HOLD,
        ),
    );
    let seed_p50 = report(
        "seed design (check every 1 s)",
        HOLD,
        measure(
            Arc::new(Polled::new(Schedule::Every(Duration::from_secs(1)))),
            seed,
            HOLD,
        ),
    );
    println!(
        "\nmedian ratios in this run: Go poll / ours = {:.0}x (2 ms hold), {:.0}x (1 s hold); 1 s poll / ours = {:.0}x",
        go_p50 / runtime_p50,
        go_realistic_p50 / runtime_p50,
        seed_p50 / runtime_p50
    );
}
