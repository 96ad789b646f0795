//! Demo tasks: each runs on the tokio runtime, publishing its events to a
//! history that any number of SSE streams read (from the start, or after a
//! `Last-Event-ID`), and to this pod's feed (`GET /api/events`).
//!
//! Tasks are pod-bound: they live in this process's memory. So their ids are
//! 128 random bits from the OS (never the same on two pods or two restarts),
//! finished tasks are forgotten after `TASK_KEEP_SECONDS`, at most
//! `MAX_TASKS` are held (running or finished), and a task still running when
//! ClosingStreams begins is cancelled and ends with `task_failed`, reason
//! `shutdown`.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const FINAL_EVENTS: [&str; 2] = ["task_completed", "task_failed"];
/// Events the feed keeps for a subscriber that falls behind; older ones are
/// skipped for it (the feed is a live view, not a log).
const FEED_BACKLOG: usize = 1024;

/// One event as sent: its SSE id (1, 2, ... within a task or the feed), its
/// type and the JSON text of `{"event_type", "task_id", "data"}`.
#[derive(Clone, Debug)]
pub struct Published {
    pub id: u64,
    pub final_event: bool,
    /// The `task_failed` of a task the shutdown cancelled.
    pub by_shutdown: bool,
    pub json: Arc<str>,
}

/// One task's events so far; `published` ticks with every new one.
pub struct Task {
    pub id: String,
    /// Kept as JSON text: a few hundred bytes per event, not a tree of
    /// allocations.
    history: Mutex<Vec<Published>>,
    published: watch::Sender<usize>,
    finished_at: Mutex<Option<Instant>>,
}

impl Task {
    /// Event number `id` (1-based, the SSE id), if it has been published.
    pub fn event(&self, id: u64) -> Option<Published> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        lock(&self.history).get(index).cloned()
    }

    /// A receiver that wakes whenever an event is published.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.published.subscribe()
    }

    fn finished_before(&self, cutoff: Instant) -> bool {
        lock(&self.finished_at).is_some_and(|at| at < cutoff)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// How many tasks are held, and for how long finished ones are kept.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_tasks: usize,
    pub keep_finished: Duration,
}

/// Why a task was not started.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// `max_tasks` are held; retry once finished ones have been forgotten.
    Full,
    /// The shutdown hook has run: no task may start any more.
    ShutDown,
}

/// All tasks, the tracker of the running ones, the token that cancels them
/// and this pod's feed of every task event.
#[derive(Clone)]
pub struct Tasks {
    tasks: Arc<Mutex<HashMap<String, Arc<Task>>>>,
    running: TaskTracker,
    stop: CancellationToken,
    feed: broadcast::Sender<Published>,
    feed_ids: Arc<AtomicU64>,
    limits: Limits,
}

/// 128 random bits from the OS's generator, as 32 hex digits.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // The OS generator does not fail once the process runs on Linux >= 3.17;
    // if it ever did, refusing to serve beats a guessable id.
    getrandom::fill(&mut bytes).expect("the OS random generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Tasks {
    pub fn new(limits: Limits) -> Tasks {
        Tasks {
            tasks: Arc::default(),
            running: TaskTracker::new(),
            stop: CancellationToken::new(),
            feed: broadcast::channel(FEED_BACKLOG).0,
            feed_ids: Arc::new(AtomicU64::new(1)),
            limits,
        }
    }

    pub fn start(&self, steps: u64, step: Duration) -> Result<Arc<Task>, Refused> {
        if self.running.is_closed() {
            return Err(Refused::ShutDown);
        }
        let task = Arc::new(Task {
            id: random_id(),
            history: Mutex::new(Vec::new()),
            published: watch::channel(0).0,
            finished_at: Mutex::new(None),
        });
        {
            let mut tasks = lock(&self.tasks);
            if tasks.len() >= self.limits.max_tasks {
                let cutoff = Instant::now().checked_sub(self.limits.keep_finished);
                if let Some(cutoff) = cutoff {
                    tasks.retain(|_, task| !task.finished_before(cutoff));
                }
                if tasks.len() >= self.limits.max_tasks {
                    return Err(Refused::Full);
                }
            }
            tasks.insert(task.id.clone(), Arc::clone(&task));
        }
        let running = Arc::clone(&task);
        let this = self.clone();
        self.running.spawn(async move {
            this.publish(&running, "task_started", json!({"steps": steps}));
            for index in 1..=steps {
                tokio::select! {
                    _ = tokio::time::sleep(step) => {}
                    _ = this.stop.cancelled() => {
                        this.publish(&running, "task_failed", json!({
                            "reason": "shutdown",
                            "error": "the server shut down before the task finished",
                        }));
                        return;
                    }
                }
                let percent = (100 * index).checked_div(steps).unwrap_or(100);
                this.publish(
                    &running,
                    "progress_update",
                    json!({"step": index, "steps": steps, "percent": percent}),
                );
            }
            this.publish(&running, "task_completed", json!({"steps": steps}));
        });
        Ok(task)
    }

    fn publish(&self, task: &Task, event_type: &str, data: Value) {
        let json: Arc<str> = json!({"event_type": event_type, "task_id": task.id, "data": data})
            .to_string()
            .into();
        let final_event = FINAL_EVENTS.contains(&event_type);
        let by_shutdown = event_type == "task_failed" && data["reason"] == "shutdown";
        let count = {
            let mut history = lock(&task.history);
            let id = history.len() as u64 + 1;
            history.push(Published {
                id,
                final_event,
                by_shutdown,
                json: Arc::clone(&json),
            });
            history.len()
        };
        if final_event {
            *lock(&task.finished_at) = Some(Instant::now());
        }
        task.published.send_replace(count);
        // No subscriber is fine: nobody follows the feed.
        let _ = self.feed.send(Published {
            id: self.feed_ids.fetch_add(1, Ordering::Relaxed),
            final_event,
            by_shutdown,
            json,
        });
    }

    pub fn get(&self, id: &str) -> Option<Arc<Task>> {
        lock(&self.tasks).get(id).cloned()
    }

    /// Every task event of this pod from now on.
    pub fn feed(&self) -> broadcast::Receiver<Published> {
        self.feed.subscribe()
    }

    /// Tasks held now (running or finished and not yet forgotten).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        lock(&self.tasks).len()
    }

    /// ClosingStreams: the running tasks cannot be guaranteed to finish, so
    /// they are cancelled now; each ends with `task_failed`, reason
    /// `shutdown`, which its stream delivers before it ends.
    pub fn cancel_running(&self) {
        self.running.close();
        self.stop.cancel();
    }

    /// The shutdown hook: no new tasks, wait for the running ones within
    /// `time_left`, then cancel the rest (they end as `task_failed`).
    pub async fn shutdown(&self, time_left: Duration) -> bool {
        self.running.close();
        let finished = tokio::time::timeout(time_left, self.running.wait())
            .await
            .is_ok();
        self.stop.cancel();
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(max_tasks: usize, keep_ms: u64) -> Tasks {
        Tasks::new(Limits {
            max_tasks,
            keep_finished: Duration::from_millis(keep_ms),
        })
    }

    #[test]
    fn ids_are_128_random_bits() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.len() == 32));
    }

    #[tokio::test]
    async fn the_cap_refuses_until_finished_tasks_expire() {
        let tasks = tasks(2, 100);
        tasks.start(1, Duration::ZERO).unwrap();
        tasks.start(1, Duration::ZERO).unwrap();
        assert_eq!(tasks.start(1, Duration::ZERO).err(), Some(Refused::Full));
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Both finished more than 100 ms ago: forgotten to make room.
        tasks.start(1, Duration::ZERO).unwrap();
        assert_eq!(tasks.held(), 1);
    }

    #[tokio::test]
    async fn a_cancelled_task_ends_with_reason_shutdown() {
        let tasks = tasks(10, 1000);
        let task = tasks.start(100, Duration::from_secs(5)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        tasks.cancel_running();
        tokio::time::timeout(Duration::from_secs(10), tasks.running.wait())
            .await
            .unwrap();
        let last = task.event(2).unwrap();
        assert!(last.final_event);
        let value: Value = serde_json::from_str(&last.json).unwrap();
        assert_eq!(value["data"]["reason"], "shutdown");
        assert_eq!(
            tasks.start(1, Duration::ZERO).err(),
            Some(Refused::ShutDown)
        );
    }
}
