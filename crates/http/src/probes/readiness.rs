//! Host readiness checks that the native `/readyz` consults while the
//! process is serving (the legacy app's readiness also asks its task
//! service). Each check runs on a blocking thread of the probe runtime,
//! inside a panic boundary, and is waited for at most its timeout, so a
//! slow check cannot hang the probe. A check still running from an earlier
//! probe is not started again (a hung check cannot pile up threads); it
//! counts as failing until it returns.
//!
//! "Running" is held by a guard that the check's closure owns, so it ends
//! however the closure ends: run, or dropped without running (the blocking
//! thread could not start: tokio panics "OS can't spawn worker thread"
//! under RLIMIT_NPROC). It also names the process image that runs it (the
//! fork generation): in a forked child a check the parent was running is
//! not running, since the parent's thread is not in the child.

use crate::runtime::Runtime;
use last_call_runtime::RegistrationId;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) type CheckFn = Box<dyn Fn() -> bool + Send + Sync>;

pub(crate) struct ReadinessCheck {
    pub(crate) id: RegistrationId,
    pub(crate) name: String,
    pub(crate) timeout: Duration,
    pub(crate) call: CheckFn,
    /// 0, or 1 + the fork generation of the process whose thread runs it.
    running: AtomicU64,
}

impl ReadinessCheck {
    pub(crate) fn new(
        id: RegistrationId,
        name: String,
        timeout: Duration,
        call: CheckFn,
    ) -> ReadinessCheck {
        ReadinessCheck {
            id,
            name,
            timeout,
            call,
            running: AtomicU64::new(0),
        }
    }

    /// Marks the check running in this process, unless it already is.
    fn start(self: &Arc<Self>) -> Option<Running> {
        let mine = crate::fork::generation() + 1;
        let mut current = self.running.load(Ordering::Acquire);
        loop {
            if current == mine {
                return None;
            }
            // Not running, or running in the process this one was forked
            // from (whose thread is not here).
            match self
                .running
                .compare_exchange(current, mine, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Some(Running {
                        check: Arc::clone(self),
                        mine,
                    })
                }
                Err(actual) => current = actual,
            }
        }
    }
}

/// "This check is running": ends when dropped.
struct Running {
    check: Arc<ReadinessCheck>,
    mine: u64,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Only ours: a forked child's own run is not ended by a stale one.
        let _ =
            self.check
                .running
                .compare_exchange(self.mine, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// What the readiness checks said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadinessReport {
    /// One entry per failing check: its name, and why when it did not
    /// simply return false (`"tasks (timed out after 1 s)"`).
    pub failures: Vec<String>,
}

impl ReadinessReport {
    /// `true` when every check passed.
    pub fn ready(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs every check at once, each bounded by its timeout. Once the host is
/// exiting (`Runtime::host_exiting`) a check is not called and fails.
pub(crate) async fn run_all(
    runtime: &Runtime,
    checks: Vec<Arc<ReadinessCheck>>,
) -> ReadinessReport {
    let mut pending = Vec::with_capacity(checks.len());
    let mut failures = Vec::new();
    for check in checks {
        let Some(running) = check.start() else {
            failures.push(format!("{} (still running)", check.name));
            continue;
        };
        let runtime = runtime.clone();
        // The closure owns `running`: dropped when it returns, or with the
        // closure if it never runs.
        let handle = tokio::task::spawn_blocking(move || {
            let worker = &running.check;
            match runtime.enter_host_call() {
                Some(_call) => catch_unwind(AssertUnwindSafe(|| (worker.call)())),
                None => Ok(false),
            }
        });
        pending.push((check, handle));
    }
    for (check, handle) in pending {
        match tokio::time::timeout(check.timeout, handle).await {
            Ok(Ok(Ok(true))) => {}
            Ok(Ok(Ok(false))) => failures.push(check.name.clone()),
            Ok(Ok(Err(_))) | Ok(Err(_)) => failures.push(format!("{} (panicked)", check.name)),
            Err(_) => failures.push(format!(
                "{} (timed out after {} s)",
                check.name,
                check.timeout.as_secs_f64()
            )),
        }
    }
    ReadinessReport { failures }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> Arc<ReadinessCheck> {
        Arc::new(ReadinessCheck::new(
            RegistrationId(1),
            "check".into(),
            Duration::from_secs(1),
            Box::new(|| true),
        ))
    }

    #[test]
    fn a_check_whose_closure_is_dropped_unrun_is_not_left_running() {
        // Before: a flag set before spawn_blocking and cleared only inside
        // the closure stayed set for ever when the thread never started,
        // and every later /readyz said "(still running)".
        let check = check();
        let running = check.start().expect("not running yet");
        assert!(check.start().is_none(), "running");
        let closure = move || drop(running);
        drop(closure); // never run, as when the blocking thread cannot start
        assert!(check.start().is_some(), "left running");
    }

    #[test]
    fn a_check_running_in_the_parent_process_is_not_running_in_a_forked_child() {
        // The mark names the process image: one left by another
        // generation (the parent's, whose thread is not in the child) does
        // not hold the check.
        let check = check();
        check
            .running
            .store(crate::fork::generation() + 2, Ordering::Release);
        assert!(check.start().is_some(), "stuck at the parent's mark");
    }
}
