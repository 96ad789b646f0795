//! Demo tasks: each runs on the tokio runtime, publishing its events to a
//! history that any number of SSE streams read from the start.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const FINAL_EVENTS: [&str; 2] = ["task_completed", "task_failed"];

/// One task's events so far; `published` ticks with every new one.
pub struct Task {
    pub id: String,
    history: Mutex<Vec<Value>>,
    published: watch::Sender<usize>,
}

impl Task {
    fn publish(&self, event_type: &str, data: Value) {
        let event = json!({"event_type": event_type, "task_id": self.id, "data": data});
        let count = {
            let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
            history.push(event);
            history.len()
        };
        self.published.send_replace(count);
    }

    /// Event `index`, if it has been published.
    pub fn event(&self, index: usize) -> Option<Value> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(index)
            .cloned()
    }

    /// A receiver that wakes whenever an event is published.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.published.subscribe()
    }
}

/// All tasks, the tracker of the running ones, and the token that stops them.
#[derive(Clone, Default)]
pub struct Tasks {
    tasks: Arc<Mutex<HashMap<String, Arc<Task>>>>,
    running: TaskTracker,
    stop: CancellationToken,
    next_id: Arc<AtomicU64>,
}

impl Tasks {
    pub fn start(&self, steps: u64, step: Duration) -> Arc<Task> {
        let number = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:08x}{:08x}", std::process::id(), number);
        let task = Arc::new(Task {
            id: id.clone(),
            history: Mutex::new(Vec::new()),
            published: watch::channel(0).0,
        });
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::clone(&task));
        let running = Arc::clone(&task);
        let stop = self.stop.clone();
        self.running.spawn(async move {
            running.publish("task_started", json!({"steps": steps}));
            for index in 1..=steps {
                tokio::select! {
                    _ = tokio::time::sleep(step) => {}
                    _ = stop.cancelled() => {
                        running.publish("task_failed", json!({"error": "the server shut down before the task finished"}));
                        return;
                    }
                }
                let percent = (100 * index).checked_div(steps).unwrap_or(100);
                running.publish(
                    "progress_update",
                    json!({"step": index, "steps": steps, "percent": percent}),
                );
            }
            running.publish("task_completed", json!({"steps": steps}));
        });
        task
    }

    pub fn get(&self, id: &str) -> Option<Arc<Task>> {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// The shutdown hook: no new tasks, wait for the running ones within
    /// `time_left`, then stop the rest (they end as `task_failed`).
    pub async fn shutdown(&self, time_left: Duration) -> bool {
        self.running.close();
        let finished = tokio::time::timeout(time_left, self.running.wait())
            .await
            .is_ok();
        self.stop.cancel();
        finished
    }
}
