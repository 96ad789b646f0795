//! Shutdown hooks: their registrations, and how Stopping runs them.
//!
//! Hooks run in *groups*, in registration order. A hook registered with
//! [`HookOrder::AfterPrevious`] (the default) starts a new group; one
//! registered with [`HookOrder::WithPrevious`] joins the group of the hook
//! registered just before it, and runs at the same time as it. Each group
//! gets an equal share of the time left before the deadline when it starts
//! (the last group: all that is left), so a hook that overruns its share is
//! left running, reported as overrunning, and does not take the share of
//! the groups after it; time a group does not use passes on to the next.
//!
//! Every hook runs on a thread of its own (named `last-call-hook`, never
//! after the hook: a user string in a thread name can panic), inside a
//! panic boundary, marked as a hook for the re-entrancy check.

use crate::callback_scope::{self, Kind};
use crate::clock::Mono;
use crate::log::warn;
use crate::runtime::{lock, Inner, RegistrationId};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) type HookFn = Box<dyn FnOnce(Duration) -> bool + Send>;

/// Where a hook runs relative to the hook registered before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HookOrder {
    /// After every hook registered before it has finished or used up its
    /// share of the time.
    #[default]
    AfterPrevious,
    /// At the same time as the hook registered just before it (in its
    /// group, with the group's share of the time).
    WithPrevious,
}

/// The hooks' state: registered, running and reported. It lives under the
/// runtime's one lock (held across `fork()`), which the runtime takes
/// around each of these.
#[derive(Default)]
pub(crate) struct Hooks {
    registered: Vec<HookEntry>,
    /// Hooks running now (the watchdog names them).
    pub(crate) running: Vec<RunningHook>,
    reports: Vec<HookReport>,
    /// Stopping has taken the hooks to run: later ones would never run.
    taken: bool,
}

impl Hooks {
    /// `false` (and the hook dropped) once the hooks have been taken.
    pub(crate) fn register(&mut self, entry: HookEntry) -> bool {
        if self.taken {
            return false;
        }
        self.registered.push(entry);
        true
    }

    /// `false` if none had that id (or it already ran).
    pub(crate) fn remove(&mut self, id: RegistrationId) -> bool {
        let before = self.registered.len();
        self.registered.retain(|entry| entry.id != id);
        self.registered.len() != before
    }

    pub(crate) fn any_registered(&self) -> bool {
        !self.registered.is_empty()
    }

    pub(crate) fn registered_count(&self) -> usize {
        self.registered.len()
    }

    /// The registered hooks, for the sequence to run (once).
    pub(crate) fn take(&mut self) -> Vec<HookEntry> {
        self.taken = true;
        std::mem::take(&mut self.registered)
    }

    pub(crate) fn reports(&self) -> Vec<HookReport> {
        self.reports.clone()
    }

    /// The testing reset: no hook registered, running or reported.
    pub(crate) fn clear(&mut self) {
        *self = Hooks::default();
    }

    /// In a forked child: the parent's running hooks and reports are not
    /// the child's; the registered ones are the application's and stay.
    pub(crate) fn reset_after_fork(&mut self) {
        self.running.clear();
        self.reports.clear();
        self.taken = false; // the child's sequence has not run
    }
}

pub(crate) struct HookEntry {
    pub(crate) id: RegistrationId,
    pub(crate) name: String,
    pub(crate) order: HookOrder,
    pub(crate) hook: HookFn,
}

/// How one shutdown hook ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOutcome {
    /// It returned `true` within its share.
    Finished,
    /// It returned `false` within its share.
    ReturnedFalse,
    /// It panicked.
    Panicked,
    /// It was still running at the end of its share; it was left running.
    Overran,
    /// Its thread could not be started, or the host was already exiting
    /// ([`crate::Runtime::host_exiting`]): it was not called.
    NotStarted,
    /// Its share ended before it could be called: its turn came after the
    /// deadline (the process was stopped, by SIGSTOP or a suspended
    /// machine, or starved of the CPU), or its thread did not get to run
    /// within its share. It was not called: a hook is reported
    /// [`HookOutcome::Overran`] only if it ran past its share.
    NoTimeLeft,
}

/// What one shutdown hook did, recorded when Stopping runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct HookReport {
    /// The name it was registered with.
    pub name: String,
    /// Its share: the time it was given.
    pub given: Duration,
    /// How long it ran (or, if it overran, how long it was waited for).
    pub took: Duration,
    /// How it ended.
    pub outcome: HookOutcome,
    /// `outcome == HookOutcome::Finished`.
    pub finished: bool,
}

/// A hook's state, shared with its thread.
#[derive(Default)]
struct HookState {
    outcome: AtomicU8,
    ended_ns: AtomicU64,
}

/// Its thread has not called it yet.
const WAITING: u8 = 0;
const RETURNED_TRUE: u8 = 1;
const RETURNED_FALSE: u8 = 2;
const PANICKED: u8 = 3;
const NOT_CALLED: u8 = 4;
/// Called, not returned yet.
const CALLED: u8 = 5;
/// Its share ended while it was still [`WAITING`]: never to be called.
const NO_TIME: u8 = 6;

/// A hook started by [`run`], for the watchdog's report.
#[derive(Debug, Clone)]
pub(crate) struct RunningHook {
    pub(crate) id: RegistrationId,
    pub(crate) name: String,
    pub(crate) since: Mono,
}

fn groups(entries: Vec<HookEntry>) -> Vec<Vec<HookEntry>> {
    let mut groups: Vec<Vec<HookEntry>> = Vec::new();
    for entry in entries {
        match (entry.order, groups.last_mut()) {
            (HookOrder::WithPrevious, Some(group)) => group.push(entry),
            _ => groups.push(vec![entry]),
        }
    }
    groups
}

/// Runs every registered hook, group by group, until `deadline`. Returns
/// early (reporting what ran) if the testing reset ends this generation.
///
/// A group whose turn comes with no time left (the deadline has passed:
/// the process was stopped or starved past it) is not run: its hooks are
/// reported [`HookOutcome::NoTimeLeft`], never [`HookOutcome::Overran`],
/// and Stopped comes at once. So is a hook whose thread had not called it
/// yet when its share ended: a hook is called, or reported not called,
/// never both (its thread and the sequence settle it with one
/// compare-and-swap).
pub(crate) fn run(inner: &Arc<Inner>, deadline: Mono, generation: u64) {
    let groups = groups(inner.take_hooks());
    let count = groups.len();
    for (index, group) in groups.into_iter().enumerate() {
        if !inner.is_generation(generation) {
            return;
        }
        let start = Mono::now();
        let group_deadline = if deadline == Mono::NEVER || index + 1 == count {
            deadline
        } else {
            let left = start.until(deadline);
            start.after(left / u32::try_from(count - index).unwrap_or(u32::MAX))
        };
        let given = group_deadline.left().unwrap_or(Duration::MAX);
        if given.is_zero() {
            skip_group(inner, group, deadline.until(Mono::now()));
            continue;
        }
        run_group(inner, group, start, given, group_deadline, generation);
    }
}

/// Reports every hook of a group whose turn came with no time left, without
/// calling it.
fn skip_group(inner: &Inner, group: Vec<HookEntry>, late: Duration) {
    let reports: Vec<HookReport> = group
        .into_iter()
        .map(|entry| {
            warn!(
                "shutdown hook {:?} not run: no time left (its turn came {:.3} s after the deadline; was the process stopped?)",
                entry.name,
                late.as_secs_f64()
            );
            HookReport {
                name: entry.name,
                given: Duration::ZERO,
                took: Duration::ZERO,
                outcome: HookOutcome::NoTimeLeft,
                finished: false,
            }
        })
        .collect();
    lock(&inner.shared).hooks.reports.extend(reports);
}

fn run_group(
    inner: &Arc<Inner>,
    group: Vec<HookEntry>,
    start: Mono,
    given: Duration,
    group_deadline: Mono,
    generation: u64,
) {
    let mut started = Vec::with_capacity(group.len());
    for entry in group {
        let state = Arc::new(HookState::default());
        let spawned = {
            let state = Arc::clone(&state);
            let inner = Arc::clone(inner);
            let (id, hook) = (entry.id, entry.hook);
            lock(&inner.shared).hooks.running.push(RunningHook {
                id,
                name: entry.name.clone(),
                since: start,
            });
            crate::signals::spawn_without_signals(
                std::thread::Builder::new().name("last-call-hook".into()),
                move || {
                    let process = crate::fork::generation();
                    let call = inner.host_calls.enter();
                    // Called only if its share has not ended meanwhile.
                    let calling = call.is_some()
                        && state
                            .outcome
                            .compare_exchange(WAITING, CALLED, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok();
                    let ended = if let (true, Some(_call)) = (calling, call) {
                        let _scope = callback_scope::enter(inner.address(), Kind::Hook);
                        match catch_unwind(AssertUnwindSafe(|| hook(given))) {
                            Ok(true) => RETURNED_TRUE,
                            Ok(false) => RETURNED_FALSE,
                            Err(_) => PANICKED,
                        }
                    } else if !calling && state.outcome.load(Ordering::Acquire) == NO_TIME {
                        NO_TIME
                    } else {
                        // The host is exiting (`Runtime::host_exiting`).
                        NOT_CALLED
                    };
                    if crate::fork::generation() != process {
                        // The hook forked and this is the child: the
                        // sequence that waits for this hook is the
                        // parent's. The thread ends (and with it a child
                        // that has no other thread, status 0).
                        return;
                    }
                    state
                        .ended_ns
                        .store(crate::monotonic_ns(), Ordering::Relaxed);
                    state.outcome.store(ended, Ordering::Release);
                    lock(&inner.shared).hooks.running.retain(|h| h.id != id);
                    inner.ring_bell();
                },
            )
        };
        if let Err(error) = &spawned {
            warn!("could not start shutdown hook {:?}: {error}", entry.name);
            lock(&inner.shared)
                .hooks
                .running
                .retain(|h| h.id != entry.id);
        }
        started.push((entry.name, state, spawned.is_ok()));
    }
    // Sleep until every hook of the group has returned or its share is up.
    loop {
        let seen = inner.bell_value();
        let all_done = started.iter().all(|(_, state, spawned)| {
            !spawned || !matches!(state.outcome.load(Ordering::Acquire), WAITING | CALLED)
        });
        if all_done || group_deadline.has_passed() || !inner.is_generation(generation) {
            break;
        }
        inner.wait_for_bell(seen, group_deadline);
    }
    let waited = start.until(Mono::now());
    let mut reports = Vec::with_capacity(started.len());
    for (name, state, spawned) in started {
        // A hook its thread has not called yet is never called now.
        let _ =
            state
                .outcome
                .compare_exchange(WAITING, NO_TIME, Ordering::AcqRel, Ordering::Acquire);
        let outcome = match (spawned, state.outcome.load(Ordering::Acquire)) {
            (false, _) => HookOutcome::NotStarted,
            (true, RETURNED_TRUE) => HookOutcome::Finished,
            (true, RETURNED_FALSE) => HookOutcome::ReturnedFalse,
            (true, PANICKED) => HookOutcome::Panicked,
            (true, NOT_CALLED) => HookOutcome::NotStarted,
            (true, NO_TIME) => HookOutcome::NoTimeLeft,
            (true, _) => HookOutcome::Overran,
        };
        match outcome {
            HookOutcome::Overran => warn!(
                "shutdown hook {name:?} overran its share ({:.3} s); left running",
                given.as_secs_f64()
            ),
            HookOutcome::Panicked => warn!("shutdown hook {name:?} panicked"),
            HookOutcome::NoTimeLeft => warn!(
                "shutdown hook {name:?} not run: no time left (its share of {:.3} s ended before its thread could call it)",
                given.as_secs_f64()
            ),
            _ => {}
        }
        let took = match outcome {
            HookOutcome::Overran | HookOutcome::NotStarted => waited,
            HookOutcome::NoTimeLeft => Duration::ZERO,
            _ => start.until(Mono::from_ns(state.ended_ns.load(Ordering::Relaxed))),
        };
        reports.push(HookReport {
            name,
            given,
            took,
            outcome,
            finished: outcome == HookOutcome::Finished,
        });
    }
    lock(&inner.shared).hooks.reports.extend(reports);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Runtime};
    use std::sync::atomic::AtomicBool;

    #[test]
    fn a_group_whose_turn_comes_after_the_deadline_is_reported_no_time_left_not_called() {
        // As after SIGSTOP past the deadline: the hooks run with the
        // deadline already a second gone. Before, the instant hook was
        // started, not waited for (its share was zero) and reported
        // Overran.
        let runtime = Runtime::new();
        runtime.configure(Config::default()).unwrap();
        let called = Arc::new(AtomicBool::new(false));
        for name in ["first", "second"] {
            let called = Arc::clone(&called);
            runtime
                .register_shutdown_hook(name, move |_| {
                    called.store(true, Ordering::SeqCst);
                    true
                })
                .unwrap();
        }
        let inner = &runtime.inner;
        run(
            inner,
            Mono::now().before(Duration::from_secs(1)),
            inner.generation(),
        );
        let reports = runtime.hook_reports();
        let outcomes: Vec<_> = reports
            .iter()
            .map(|r| (r.name.as_str(), r.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("first", HookOutcome::NoTimeLeft),
                ("second", HookOutcome::NoTimeLeft)
            ]
        );
        assert!(reports.iter().all(|r| r.given.is_zero() && !r.finished));
        // Not even a moment later.
        std::thread::sleep(Duration::from_millis(100));
        assert!(!called.load(Ordering::SeqCst));
        assert!(lock(&inner.shared).hooks.running.is_empty());
    }
}
