//! The runtime's figures, with the same names in every host: Prometheus
//! text exposition (format 0.0.4) and JSON. Layers above the runtime add
//! figures of their own after these ([`crate::Runtime::add_metrics_source`]).

use crate::phase::Phase;
use crate::runtime::Runtime;
use std::fmt::Write;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// One figure: name, Prometheus type, help text, value.
#[derive(Debug, Clone, Copy)]
pub struct Figure {
    /// `gs_...`: the Prometheus name (the JSON key drops the `gs_`).
    pub name: &'static str,
    /// `gauge` or `counter`.
    pub kind: &'static str,
    /// The Prometheus help text.
    pub help: &'static str,
    /// The value now.
    pub value: f64,
}

/// Figures a layer above adds (see [`Runtime::add_metrics_source`]).
pub(crate) type Source = Arc<dyn Fn(&mut Vec<Figure>) + Send + Sync>;

/// The figures at one moment. The phase is read first: entry times are
/// written before a phase is published, so every time that goes with the
/// phase read here is visible, and the JSON's `phase_name` is the name of
/// the `phase` it sits beside.
struct Snapshot {
    phase: Phase,
    active: u32,
    work: u32,
    started_total: u64,
    finished_total: u64,
    shutdown_started: f64,
    shutdown_duration: f64,
    closed_by_deadline: u64,
    log_lines_dropped: u64,
    /// Worker processes whose figures these are (`None`: this process's
    /// own).
    workers: Option<u64>,
    /// The layers' figures, read after the runtime's.
    added: Vec<Figure>,
}

impl Snapshot {
    fn take(runtime: &Runtime) -> Snapshot {
        let phase = runtime.phase();
        // A pre-fork host's pod (`pod_figures.rs`): every process of it
        // reports the workers' streams and work, not its own part.
        let pod = crate::pod_figures::totals().filter(|_| runtime.is_global());
        let (active, work, started_total, finished_total) = match pod {
            Some(pod) => (
                u32::try_from(pod.active_streams).unwrap_or(u32::MAX),
                u32::try_from(pod.active_work).unwrap_or(u32::MAX),
                pod.streams_started,
                pod.streams_finished,
            ),
            None => (
                runtime.active_streams(),
                runtime.active_work(),
                runtime.streams_started_total(),
                runtime.streams_finished_total(),
            ),
        };
        Snapshot {
            phase,
            active,
            work,
            started_total,
            finished_total,
            workers: pod.map(|pod| pod.workers),
            shutdown_started: runtime
                .shutdown_started_at()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64()),
            shutdown_duration: runtime.shutdown_duration().map_or(0.0, |d| d.as_secs_f64()),
            closed_by_deadline: runtime.streams_closed_by_deadline(),
            log_lines_dropped: crate::log::lines_dropped(),
            added: {
                let sources = crate::runtime::lock(&runtime.inner.shared)
                    .metrics_sources
                    .clone();
                let mut added = Vec::new();
                for source in &sources {
                    source(&mut added);
                }
                added
            },
        }
    }

    fn figures(&self) -> impl Iterator<Item = Figure> + '_ {
        [
            Figure {
                name: "gs_active_streams",
                kind: "gauge",
                help: "Streams open now.",
                value: f64::from(self.active),
            },
            Figure {
                name: "gs_active_work",
                kind: "gauge",
                help: "Work the shutdown waits for beside the streams (tasks), counted now.",
                value: f64::from(self.work),
            },
            Figure {
                name: "gs_phase",
                kind: "gauge",
                help: "Shutdown phase: 0 serving, 1 draining, 2 closing_streams, 3 stopping, 4 stopped.",
                value: f64::from(self.phase as u8),
            },
            Figure {
                name: "gs_draining",
                kind: "gauge",
                help: "1 when the process is not ready for new work (any phase but serving).",
                value: if self.phase == Phase::Serving { 0.0 } else { 1.0 },
            },
            Figure {
                name: "gs_streams_started_total",
                kind: "counter",
                help: "Streams begun since the process started.",
                value: self.started_total as f64,
            },
            Figure {
                name: "gs_streams_finished_total",
                kind: "counter",
                help: "Streams ended since the process started.",
                value: self.finished_total as f64,
            },
            Figure {
                name: "gs_shutdown_started_timestamp_seconds",
                kind: "gauge",
                help: "Unix time the shutdown sequence started (0: not started).",
                value: self.shutdown_started,
            },
            Figure {
                name: "gs_shutdown_duration_seconds",
                kind: "gauge",
                help: "Seconds from the start of the shutdown sequence to Stopped (0: not stopped).",
                value: self.shutdown_duration,
            },
            Figure {
                name: "gs_streams_closed_by_deadline_total",
                kind: "counter",
                help: "Streams still open when ClosingStreams began, asked to finish.",
                value: self.closed_by_deadline as f64,
            },
            Figure {
                name: "gs_log_lines_dropped_total",
                kind: "counter",
                help: "Diagnostic lines not written because stderr could not take them (full, closed, no reader).",
                value: self.log_lines_dropped as f64,
            },
        ]
        .into_iter()
        .chain(self.workers.map(|workers| Figure {
            name: "gs_pod_workers",
            kind: "gauge",
            help: "Worker processes whose streams and work the figures above sum (a pre-fork host's pod).",
            value: workers as f64,
        }))
        .chain(self.added.iter().copied())
    }
}

/// Prometheus text exposition of the runtime's figures.
pub fn render_prometheus(runtime: &Runtime) -> String {
    let mut out = String::with_capacity(1024);
    for figure in Snapshot::take(runtime).figures() {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {} {}", figure.name, figure.help);
        let _ = writeln!(out, "# TYPE {} {}", figure.name, figure.kind);
        let _ = writeln!(out, "{} {}", figure.name, figure.value);
    }
    out
}

/// The same figures as one JSON object (keys without the `gs_` prefix),
/// plus the phase's name under `phase_name`.
pub fn render_json(runtime: &Runtime) -> String {
    let snapshot = Snapshot::take(runtime);
    let mut out = String::with_capacity(512);
    out.push('{');
    let _ = write!(out, "\"phase_name\":\"{}\"", snapshot.phase.name());
    for figure in snapshot.figures() {
        let _ = write!(out, ",\"{}\":{}", &figure.name[3..], figure.value);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_carries_every_figure_with_its_type() {
        let runtime = Runtime::new();
        let _a = runtime.begin_stream().unwrap();
        let b = runtime.begin_stream().unwrap();
        drop(b);
        runtime.set_draining(true).unwrap();
        let text = render_prometheus(&runtime);
        assert!(
            text.contains("# TYPE gs_active_streams gauge\ngs_active_streams 1\n"),
            "{text}"
        );
        assert!(text.contains("gs_streams_started_total 2\n"));
        assert!(text.contains("gs_streams_finished_total 1\n"));
        assert!(text.contains("gs_phase 1\n"));
        assert!(text.contains("gs_draining 1\n"));
        assert!(text.contains("# TYPE gs_streams_started_total counter\n"));
        assert!(text.contains("gs_shutdown_started_timestamp_seconds 0\n"));
    }

    #[test]
    fn json_has_the_same_figures() {
        let runtime = Runtime::new();
        let _a = runtime.begin_stream().unwrap();
        let json = render_json(&runtime);
        assert!(json.starts_with("{\"phase_name\":\"serving\""), "{json}");
        assert!(json.contains("\"active_streams\":1"));
        assert!(json.contains("\"streams_started_total\":1"));
        assert!(json.contains("\"draining\":0"));
        assert!(json.ends_with('}'));
    }

    #[test]
    fn the_json_phase_name_always_matches_its_phase() {
        // Both come from one snapshot; before, each read the phase anew and
        // a flip between the two reads made them disagree.
        let runtime = std::sync::Arc::new(Runtime::new());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flipper = {
            let runtime = std::sync::Arc::clone(&runtime);
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    runtime.set_draining(true).unwrap();
                    runtime.set_draining(false).unwrap();
                }
            })
        };
        for _ in 0..20_000 {
            let json: serde_json::Value = serde_json::from_str(&render_json(&runtime)).unwrap();
            let expected = if json["phase"] == 0.0 {
                "serving"
            } else {
                "draining"
            };
            assert_eq!(json["phase_name"], expected, "{json}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        flipper.join().unwrap();
    }
}
