//! What an idle subscriber costs the hub: `examples/hub_memory` (a hub under
//! a counting allocator) with 10,000 subscribers opened by `hub_load` in a
//! child process, each of which must get every event and the channel's end.
//!
//! The figure itself is a benchmark (BENCHMARKS.md, "The stream hub": 1.5 KB
//! of heap and 1.9-2.0 KiB of RSS per stream in a release build, and the
//! same in the debug build; issue 25's goal is at most 2.5 KiB). This test holds a generous bound on the debug
//! build that `cargo nextest` runs, so that a stream that grows its state
//! by a queue or a buffer (kilobytes) fails here, and not only in a bench
//! nobody ran.

mod common;

use std::process::Command;
use std::time::Duration;

const STREAMS: usize = 10_000;
/// Heap per stream: issue 25's goal (2.5 KiB). Measured 1.5 KB (debug and
/// release); the allocator's count does not depend on the machine's load.
/// Hyper's buffers kept would be 16 KiB.
const HEAP_BOUND: f64 = 2560.0;
/// RSS per stream (the kernel's socket buffers are not in it): measured
/// 1.9-2.0 KiB; the bound leaves room for the allocator's pages.
const RSS_BOUND_KIB: f64 = 4.0;

#[test]
fn ten_thousand_idle_subscribers_each_cost_the_hub_a_few_kib() {
    let mut command = Command::new(common::example("hub_memory"));
    common::clear_gs_environment(&mut command);
    command.args(["--streams", &STREAMS.to_string()]);
    let mut hub = common::ChildProcess::spawn(command);
    // Its report is one JSON line, after the line saying where it listens.
    let line = hub.wait_for_line("\"heap_bytes_per_stream\"", Duration::from_secs(240));
    let status = hub.wait_exit(Duration::from_secs(30));
    let report = common::json(&line);
    assert!(
        status.success(),
        "a stream missed an event or was cut: {report}"
    );
    assert_eq!(report["streams"].as_u64(), Some(STREAMS as u64), "{report}");
    let heap = report["heap_bytes_per_stream"].as_f64().unwrap();
    let rss = report["rss_kib_per_stream"].as_f64().unwrap();
    eprintln!("per idle stream at {STREAMS}: {heap:.0} B of heap, {rss:.2} KiB of RSS");
    assert!(
        heap > 0.0 && heap <= HEAP_BOUND,
        "{heap} B of heap per stream"
    );
    assert!(rss <= RSS_BOUND_KIB, "{rss} KiB of RSS per stream");
}
