//! The runtime with its HTTP listeners: [`Runtime`] is the runtime crate's
//! runtime (every method of it, through `Deref`) and the listeners' own
//! state beside it ([`Listeners`]): the probe listener, its readiness
//! checks and heartbeat, the stream hub and its slow-client count. The
//! runtime underneath does not know them: they plug in through its hooks
//! (a metrics source, the fork handlers, the host-call gate).

use crate::hub::Hub;
use crate::listener::{self, Started};
use crate::probes::{Heartbeat, ProbeOptions, ReadinessCheck};
use last_call_runtime::fork::{self, ForkHandlers};
use last_call_runtime::metrics::Figure;
use last_call_runtime::{Error, RegistrationId};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Locks a mutex even if a panicking thread poisoned it: every value kept
/// behind these mutexes is valid at all times.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the listeners keep behind their one lock. Held only for short
/// bookkeeping (and a listener's start), never while host code runs; the
/// process-wide runtime's is taken around `fork()` (see [`fork_handlers`]).
#[derive(Default)]
pub(crate) struct State {
    pub(crate) readiness_checks: Vec<Arc<ReadinessCheck>>,
    pub(crate) probe_listener: Option<Started>,
    /// The stream hub, once started; a forked child's copy is not its own.
    pub(crate) hub: Option<Arc<Hub>>,
}

/// The listeners' state of one runtime.
#[derive(Default)]
pub struct Listeners {
    pub(crate) state: Mutex<State>,
    pub(crate) heartbeat: Heartbeat,
    /// Hub clients disconnected for being too slow (a figure of the
    /// metrics).
    pub(crate) slow_clients: Arc<AtomicU64>,
    /// Events hub subscribers skipped, told `gap`, for falling behind their
    /// channel's ring (a figure of the metrics: the publishers' pace is
    /// more than some readers take).
    pub(crate) skipped_events: Arc<AtomicU64>,
    /// Worker processes sharing this pod's ports (0 or 1: this one alone;
    /// see `workers.rs`).
    pub(crate) worker_processes: AtomicU32,
}

/// The process-wide (or, for tests, a private) last-call runtime, with its
/// HTTP listeners. Every method of the runtime underneath
/// ([`last_call_runtime::Runtime`]) is reached through `Deref`.
///
/// Cloning is cheap and yields a handle to the same runtime.
#[derive(Clone)]
pub struct Runtime {
    core: last_call_runtime::Runtime,
    pub(crate) http: Arc<Listeners>,
}

impl std::ops::Deref for Runtime {
    type Target = last_call_runtime::Runtime;

    fn deref(&self) -> &last_call_runtime::Runtime {
        &self.core
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.fmt(f)
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

static GLOBAL: OnceLock<Runtime> = OnceLock::new();

thread_local! {
    /// The global listeners' lock, held across `fork()` by the forking
    /// thread, as the runtime's own is.
    static HELD: RefCell<Option<MutexGuard<'static, State>>> = const { RefCell::new(None) };
}

/// The listeners' part of the fork handlers: their lock is never inherited
/// held, and a child forgets the parent's heartbeat and closes the parent's
/// listening sockets (its listener records name the parent's process image
/// and are not its own).
fn fork_handlers() -> ForkHandlers {
    fn before() {
        if let Some(global) = GLOBAL.get() {
            let guard = lock(&global.http.state);
            HELD.with(|held| *held.borrow_mut() = Some(guard));
        }
    }
    fn parent() {
        HELD.with(|held| drop(held.borrow_mut().take()));
    }
    fn child() {
        if let Some(global) = GLOBAL.get() {
            global.http.heartbeat.clear();
        }
        listener::close_after_fork();
        HELD.with(|held| drop(held.borrow_mut().take()));
    }
    ForkHandlers {
        before,
        parent,
        child,
    }
}

impl Runtime {
    /// A private runtime, independent of the process-wide one (see
    /// [`last_call_runtime::Runtime::new`]).
    pub fn new() -> Runtime {
        Runtime::with_listeners(last_call_runtime::Runtime::new())
    }

    /// The process-wide runtime, used by the C ABI, the Python package and
    /// signal handling.
    pub fn global() -> &'static Runtime {
        GLOBAL.get_or_init(|| {
            fork::join(fork_handlers());
            Runtime::with_listeners(last_call_runtime::Runtime::global().clone())
        })
    }

    fn with_listeners(core: last_call_runtime::Runtime) -> Runtime {
        let http = Arc::new(Listeners::default());
        let slow_clients = Arc::clone(&http.slow_clients);
        let skipped = Arc::clone(&http.skipped_events);
        let listeners = Arc::downgrade(&http);
        core.add_metrics_source(move |figures| {
            figures.push(Figure {
                name: "gs_hub_slow_clients_disconnected_total",
                kind: "counter",
                help: "Stream hub clients dropped for taking no bytes for the stall time.",
                value: slow_clients.load(Ordering::Relaxed) as f64,
            });
            figures.push(Figure {
                name: "gs_hub_events_skipped_total",
                kind: "counter",
                help: "Events stream hub subscribers skipped (told gap) for falling behind their channel.",
                value: skipped.load(Ordering::Relaxed) as f64,
            });
            if let Some(listeners) = listeners.upgrade() {
                let degraded = lock(&listeners.state)
                    .hub
                    .as_ref()
                    .and_then(|hub| hub.store_degraded_for());
                figures.push(Figure {
                    name: "gs_hub_store_degraded",
                    kind: "gauge",
                    help: "1 while the stream hub's shared store is unreachable (streams degraded to this pod).",
                    value: if degraded.is_some() { 1.0 } else { 0.0 },
                });
                figures.push(Figure {
                    name: "gs_hub_store_degraded_seconds",
                    kind: "gauge",
                    help: "How long the stream hub's shared store has been unreachable (0: healthy).",
                    value: degraded.map_or(0.0, |d| d.as_secs_f64()),
                });
            }
        });
        Runtime { core, http }
    }

    /// The runtime underneath, without the listeners.
    pub fn core(&self) -> &last_call_runtime::Runtime {
        &self.core
    }

    /// **For tests only.** The runtime's testing reset
    /// ([`last_call_runtime::Runtime::reset_for_testing`]), and the
    /// readiness checks removed and the heartbeat forgotten.
    pub fn reset_for_testing(&self) -> Result<(), Error> {
        self.core.reset_for_testing()?;
        lock(&self.http.state).readiness_checks.clear();
        self.http.heartbeat.clear();
        Ok(())
    }

    /// Starts the probe listener: `/readyz`, `/healthz`, `/metrics` and
    /// `/drain` answered from a thread of the runtime's own, so that probes
    /// never wait for the host's threads, its GIL or its listener. Prints
    /// `probes on http://ADDR` on stdout and returns the address (port 0
    /// picks a free one). Once per process: again gives
    /// [`Error::AlreadyStarted`]. A malformed address or a port in use is
    /// [`Error::Config`] naming `GS_PROBE_ADDR`. The listener lives as long
    /// as the process.
    pub fn start_probe_listener(&self, options: ProbeOptions) -> Result<SocketAddr, Error> {
        crate::probes::start(self, options)
    }

    /// Starts the probe listener as [`ProbeOptions::from_env`] says, if
    /// `GS_PROBE_ADDR` is set (`Ok(None)` otherwise).
    pub fn start_probe_listener_from_env(&self) -> Result<Option<SocketAddr>, Error> {
        match ProbeOptions::from_env()? {
            Some(options) => self.start_probe_listener(options).map(Some),
            None => Ok(None),
        }
    }

    /// The host's liveness heartbeat: call it from the loop that matters
    /// (one atomic store). Once a host has sent one, the probe listener's
    /// `/healthz` answers 503 when the last is older than the staleness.
    #[inline]
    pub fn heartbeat(&self) {
        self.http.heartbeat.beat();
    }

    /// How old the last heartbeat is (`None`: never sent).
    pub fn heartbeat_age(&self) -> Option<Duration> {
        self.http.heartbeat.age()
    }

    /// Adds a readiness check that the probe listener's `/readyz` consults
    /// while serving: `check` returns whether the host is ready; one that
    /// returns false, panics, or takes longer than `timeout` makes `/readyz`
    /// answer 503 naming it. [`Error::InvalidArgument`] for a name with a
    /// NUL or a zero timeout.
    pub fn add_readiness_check(
        &self,
        name: impl Into<String>,
        timeout: Duration,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Result<RegistrationId, Error> {
        let name = name.into();
        if name.contains('\0') {
            return Err(Error::InvalidArgument("a check name must not contain NUL"));
        }
        if timeout.is_zero() {
            return Err(Error::InvalidArgument("a check needs a timeout above 0"));
        }
        let id = self.core.next_registration_id();
        lock(&self.http.state)
            .readiness_checks
            .push(Arc::new(ReadinessCheck::new(
                id,
                name,
                timeout,
                Box::new(check),
            )));
        Ok(id)
    }

    /// Removes a readiness check; `false` if none had that id.
    pub fn remove_readiness_check(&self, id: RegistrationId) -> bool {
        let mut state = lock(&self.http.state);
        let before = state.readiness_checks.len();
        state.readiness_checks.retain(|check| check.id != id);
        state.readiness_checks.len() != before
    }
}
