//! The hot path: one stream's begin + end.
//!
//! * through the Rust API (`increment`/`decrement`, and the guard);
//! * through the C ABI (`gs_increment_active_streams` and
//!   `gs_decrement_active_streams`, the functions the cdylib exports);
//! * from 1 thread and from 2 threads at once (both cores of this machine
//!   hammering one counter), with a sharded counter as the reference for
//!   "would sharding help?" (measured, not built into the library).
//!
//! `cargo bench --bench hot_path` (`make bench` runs it).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_utils::CachePadded;
use last_call::ffi::{gs_decrement_active_streams, gs_increment_active_streams};
use last_call::Runtime;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `pair(thread index)` `iterations` times on each of `threads`
/// threads started together; returns the wall time (so per-pair time is per
/// thread).
fn on_threads(threads: usize, iterations: u64, pair: &(dyn Fn(usize) + Sync)) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|index| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    for _ in 0..iterations {
                        pair(index);
                    }
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        for worker in workers {
            worker.join().unwrap();
        }
        started.elapsed()
    })
}

fn pairs(c: &mut Criterion) {
    let runtime = Runtime::new();
    let mut group = c.benchmark_group("begin+end pair");
    group.throughput(Throughput::Elements(1));

    group.bench_function("rust api, 1 thread", |b| {
        b.iter(|| {
            runtime.increment_active_streams().unwrap();
            runtime.decrement_active_streams().unwrap();
        })
    });
    group.bench_function("rust guard, 1 thread", |b| {
        b.iter(|| drop(black_box(runtime.begin_stream().unwrap())))
    });
    group.bench_function("c abi, 1 thread", |b| {
        b.iter(|| {
            black_box(gs_increment_active_streams());
            black_box(gs_decrement_active_streams());
        })
    });
    let sharded: Vec<CachePadded<AtomicU64>> = (0..2)
        .map(|_| CachePadded::new(AtomicU64::new(0)))
        .collect();
    let concurrent: [(&str, &(dyn Fn(usize) + Sync)); 3] = [
        ("rust api, concurrent threads", &|_| {
            runtime.increment_active_streams().unwrap();
            runtime.decrement_active_streams().unwrap();
        }),
        ("c abi, concurrent threads", &|_| {
            black_box(gs_increment_active_streams());
            black_box(gs_decrement_active_streams());
        }),
        // What "sharding" would cost: each thread its own padded counter
        // (no waiter bit, no underflow check, no wake: a lower bound).
        ("sharded reference, concurrent threads", &|thread| {
            let shard = &sharded[thread];
            shard.fetch_add(1, Ordering::Relaxed);
            black_box(shard.fetch_sub(1, Ordering::Release));
        }),
    ];
    for (name, pair) in concurrent {
        for threads in [1usize, 2] {
            group.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &threads| {
                b.iter_custom(|iterations| on_threads(threads, iterations, pair))
            });
        }
    }
    group.finish();
    assert_eq!(runtime.active_streams(), 0);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = pairs
}
criterion_main!(benches);
