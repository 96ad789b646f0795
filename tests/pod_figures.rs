//! One pod's figures across forked workers (`gs_pod_figures_*`), as
//! gunicorn's master and workers use them: real `fork()`, real counts in
//! the children, the parent's rendering of the pod.

mod common;

use last_call::ffi::{
    gs_pod_figures_join, gs_pod_figures_release, gs_pod_figures_share, gs_status,
};
use last_call::metrics::render_json;
use last_call::Runtime;
use std::time::Duration;

fn figure(json: &str, key: &str) -> f64 {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no {key} in {json}"))
}

/// Forks a child that joins `slot`, opens `streams` streams and ends
/// `ended` of them, begins `work` pieces of work, then exits 0 (holding
/// the rest, as a worker killed mid-stream does).
fn worker(slot: u32, streams: u32, ended: u32, work: u32) {
    let code = common::in_forked_child(Duration::from_secs(30), || {
        let runtime = Runtime::global();
        let mut code = 0;
        if gs_pod_figures_join(slot) != gs_status::GS_OK {
            code = 10;
        }
        for _ in 0..streams {
            if runtime.increment_active_streams().is_err() {
                code = 11;
            }
        }
        for _ in 0..ended {
            if runtime.decrement_active_streams().is_err() {
                code = 12;
            }
        }
        for _ in 0..work {
            if runtime.increment_active_work().is_err() {
                code = 13;
            }
        }
        code
    });
    assert_eq!(code, 0, "10: join, 11: begin, 12: end, 13: work refused");
}

#[test]
fn every_process_of_the_pod_reports_the_workers_streams_and_never_the_masters_own() {
    common::require_process_per_test();
    let runtime = Runtime::global();
    // The master's own hold: not a stream of the pod.
    runtime.increment_active_streams().unwrap();
    assert_eq!(gs_pod_figures_share(0), gs_status::GS_ERR_INVALID_ARGUMENT);
    assert_eq!(gs_pod_figures_share(8), gs_status::GS_OK);
    assert_eq!(gs_pod_figures_share(8), gs_status::GS_ERR_ALREADY_INSTALLED);
    let json = render_json(runtime);
    assert_eq!(figure(&json, "active_streams"), 0.0, "{json}");
    assert_eq!(figure(&json, "pod_workers"), 0.0, "{json}");

    worker(0, 3, 1, 2);
    worker(5, 4, 0, 0);
    let json = render_json(runtime);
    assert_eq!(figure(&json, "active_streams"), 6.0, "{json}");
    assert_eq!(figure(&json, "streams_started_total"), 7.0, "{json}");
    assert_eq!(figure(&json, "streams_finished_total"), 1.0, "{json}");
    assert_eq!(figure(&json, "active_work"), 2.0, "{json}");
    assert_eq!(figure(&json, "pod_workers"), 2.0, "{json}");
    // The master's own count is still its own (its sequence waits on it).
    assert_eq!(runtime.active_streams(), 1);

    // The first worker has gone: its open streams ended with it.
    assert_eq!(gs_pod_figures_release(0), gs_status::GS_OK);
    assert_eq!(
        gs_pod_figures_release(8),
        gs_status::GS_ERR_INVALID_ARGUMENT
    );
    let json = render_json(runtime);
    assert_eq!(figure(&json, "active_streams"), 4.0, "{json}");
    assert_eq!(figure(&json, "streams_finished_total"), 3.0, "{json}");
    assert_eq!(figure(&json, "active_work"), 0.0, "{json}");
    assert_eq!(figure(&json, "pod_workers"), 1.0, "{json}");
    // A new worker in the freed slot adds to its totals: they never go down.
    worker(0, 1, 1, 0);
    let json = render_json(runtime);
    assert_eq!(figure(&json, "streams_started_total"), 8.0, "{json}");
    assert_eq!(figure(&json, "streams_finished_total"), 4.0, "{json}");
    assert!(render_json(runtime).contains("\"pod_workers\":2"));
}

#[test]
fn a_worker_cannot_join_without_a_shared_region() {
    common::require_process_per_test();
    assert_eq!(gs_pod_figures_join(0), gs_status::GS_ERR_INVALID_ARGUMENT);
    // Nothing shared: this process's own figures.
    let runtime = Runtime::global();
    runtime.increment_active_streams().unwrap();
    let json = render_json(runtime);
    assert_eq!(figure(&json, "active_streams"), 1.0, "{json}");
    assert!(!json.contains("pod_workers"), "{json}");
}
