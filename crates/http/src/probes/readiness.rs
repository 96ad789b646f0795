//! Host readiness checks that the native `/readyz` consults while the
//! process is serving (the legacy app's readiness also asks its task
//! service). Each check runs on a blocking thread of the probe runtime,
//! inside a panic boundary, and is waited for at most its timeout, so a
//! slow check cannot hang the probe. A check still running from an earlier
//! probe is not started again (a hung check cannot pile up threads); it
//! counts as failing until it returns.

use crate::runtime::Runtime;
use last_call_runtime::RegistrationId;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) type CheckFn = Box<dyn Fn() -> bool + Send + Sync>;

pub(crate) struct ReadinessCheck {
    pub(crate) id: RegistrationId,
    pub(crate) name: String,
    pub(crate) timeout: Duration,
    pub(crate) call: CheckFn,
    running: AtomicBool,
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
            running: AtomicBool::new(false),
        }
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
        if check.running.swap(true, Ordering::AcqRel) {
            failures.push(format!("{} (still running)", check.name));
            continue;
        }
        let worker = Arc::clone(&check);
        let runtime = runtime.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let passed = match runtime.enter_host_call() {
                Some(_call) => catch_unwind(AssertUnwindSafe(|| (worker.call)())),
                None => Ok(false),
            };
            worker.running.store(false, Ordering::Release);
            passed
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
