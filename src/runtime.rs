//! The runtime: stream accounting, the phase, phase listeners and shutdown
//! hooks, and the core thread that delivers phase changes and runs the
//! shutdown sequence.

use crate::clock::Stamp;
use crate::config::Config;
use crate::error::Error;
use crate::phase::{Phase, PhaseCell, PhaseChange, PhaseWord};
use crate::stream_counter::StreamCounter;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, SystemTime};

type Listener = Arc<dyn Fn(PhaseChange) + Send + Sync>;
type Hook = Box<dyn FnOnce(Duration) -> bool + Send>;

/// Identifies a registered phase listener or shutdown hook, for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegistrationId(pub u64);

/// What one shutdown hook did, recorded when Stopping runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct HookReport {
    /// The name it was registered with.
    pub name: String,
    /// Time left before the deadline when it started.
    pub given: Duration,
    /// How long it ran (or, if it overran, how long it was waited for).
    pub took: Duration,
    /// `true` if it returned `true` in time; `false` if it returned `false`,
    /// panicked, or overran the deadline.
    pub finished: bool,
}

pub(crate) struct Inner {
    pub(crate) streams: StreamCounter,
    pub(crate) phase: PhaseCell,
    config: Mutex<Option<Config>>,
    listeners: Mutex<Vec<(RegistrationId, Listener)>>,
    hooks: Mutex<Vec<(RegistrationId, String, Hook)>>,
    pub(crate) hook_reports: Mutex<Vec<HookReport>>,
    /// Held by the core thread while it calls listeners, so that removing a
    /// listener can wait until no call to it is in flight.
    delivering: Mutex<()>,
    next_id: AtomicU64,
    /// Process that owns the running core thread (0: none). After `fork()`
    /// the child's copy names the parent, which tells the child it has no
    /// core thread of its own.
    core_pid: AtomicI32,
    core_thread: Mutex<Option<ThreadId>>,
    /// Armed by installed signal handlers: end the process this long after
    /// Stopped if the host has not exited.
    pub(crate) exit_watchdog: Mutex<Option<Duration>>,
}

/// The process-wide (or, for tests, a private) last-call runtime.
///
/// Cloning is cheap and yields a handle to the same runtime.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("phase", &self.phase())
            .field("active_streams", &self.active_streams())
            .finish()
    }
}

static GLOBAL: OnceLock<Runtime> = OnceLock::new();

/// Locks a mutex even if a panicking thread poisoned it: every value kept
/// behind these mutexes is valid at all times.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn current_pid() -> i32 {
    std::process::id() as i32
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// A private runtime, independent of the process-wide one. Signal
    /// handling always drives the process-wide one; private runtimes are for
    /// tests and for hosts that run several independent servers.
    pub fn new() -> Runtime {
        Runtime {
            inner: Arc::new(Inner {
                streams: StreamCounter::new(),
                phase: PhaseCell::new(),
                config: Mutex::new(None),
                listeners: Mutex::new(Vec::new()),
                hooks: Mutex::new(Vec::new()),
                hook_reports: Mutex::new(Vec::new()),
                delivering: Mutex::new(()),
                next_id: AtomicU64::new(1),
                core_pid: AtomicI32::new(0),
                core_thread: Mutex::new(None),
                exit_watchdog: Mutex::new(None),
            }),
        }
    }

    /// The process-wide runtime, used by the C ABI, the Python package and
    /// signal handling.
    pub fn global() -> &'static Runtime {
        GLOBAL.get_or_init(|| {
            crate::fork::reset_global_in_forked_children();
            Runtime::new()
        })
    }

    /// The process-wide runtime if it exists yet. Async-signal-safe.
    pub(crate) fn global_if_created() -> Option<&'static Runtime> {
        GLOBAL.get()
    }

    // ----- stream accounting (the hot path) -----

    /// Counts a stream until the returned guard is dropped.
    #[inline]
    pub fn begin_stream(&self) -> Result<StreamGuard<'_>, Error> {
        self.inner.streams.begin()?;
        Ok(StreamGuard { runtime: self })
    }

    /// Counts one more active stream (pair it with
    /// [`Runtime::decrement_active_streams`]; prefer [`Runtime::begin_stream`]).
    #[inline]
    pub fn increment_active_streams(&self) -> Result<(), Error> {
        Ok(self.inner.streams.begin()?)
    }

    /// Counts one stream as ended. Without a matching increment this is an
    /// error and the count stays at zero.
    #[inline]
    pub fn decrement_active_streams(&self) -> Result<(), Error> {
        Ok(self.inner.streams.end()?)
    }

    /// Streams active now.
    #[inline]
    pub fn active_streams(&self) -> u32 {
        self.inner.streams.active()
    }

    /// Streams begun since start.
    pub fn streams_started_total(&self) -> u64 {
        self.inner.streams.started_total()
    }

    /// Streams ended since start.
    pub fn streams_finished_total(&self) -> u64 {
        self.inner.streams.finished_total()
    }

    /// Blocks until no stream is active or `timeout` passes (`None`: no
    /// limit); `true` if none is active. Woken by the last stream's end,
    /// never by polling.
    pub fn wait_for_streams(&self, timeout: Option<Duration>) -> bool {
        self.inner.streams.wait_for_zero(timeout)
    }

    // ----- the phase -----

    /// The current phase.
    #[inline]
    pub fn phase(&self) -> Phase {
        self.inner.phase.phase()
    }

    /// `true` in every phase but Serving: not ready, no new tasks.
    #[inline]
    pub fn is_draining(&self) -> bool {
        self.phase() != Phase::Serving
    }

    /// `true`: leave rotation (Serving -> Draining) without starting the
    /// shutdown sequence. `false`: back to Serving, refused with
    /// [`Error::SequenceStarted`] once the sequence has started.
    pub fn set_draining(&self, draining: bool) -> Result<(), Error> {
        if draining {
            self.inner.phase.enter_draining();
            Ok(())
        } else {
            self.inner
                .phase
                .leave_draining()
                .map_err(|_| Error::SequenceStarted)
        }
    }

    /// When `phase` was last entered, if ever.
    pub fn phase_entered_at(&self, phase: Phase) -> Option<SystemTime> {
        self.inner.phase.entered_at(phase).map(Stamp::system_time)
    }

    /// When the shutdown sequence started, if it has.
    pub fn shutdown_started_at(&self) -> Option<SystemTime> {
        self.inner
            .phase
            .sequence_started_at()
            .map(Stamp::system_time)
    }

    /// From the start of the sequence to Stopped, once Stopped.
    pub fn shutdown_duration(&self) -> Option<Duration> {
        let started = self.inner.phase.sequence_started_at()?;
        let stopped = self.inner.phase.entered_at(Phase::Stopped)?;
        Some(started.until(stopped))
    }

    /// Streams that were still open when ClosingStreams began (0 if it never
    /// did): the streams the deadline, not their own end, closed.
    pub fn streams_closed_by_deadline(&self) -> u64 {
        self.inner
            .phase
            .streams_asked_to_close
            .load(Ordering::Relaxed)
    }

    /// Blocks until the phase is at least `target` or `timeout` passes.
    /// `Ok(phase reached)` or `Err(phase at the timeout)`. Returns as soon as
    /// the phase is entered; phase listeners are told of the change on the
    /// core thread, possibly a moment later.
    pub fn wait_for_phase(&self, target: Phase, timeout: Option<Duration>) -> Result<Phase, Phase> {
        self.inner.phase.wait_for(target, timeout)
    }

    // ----- the shutdown sequence -----

    /// Sets the timings the shutdown sequence will use. Without it, the
    /// sequence reads them from the environment when it starts.
    pub fn configure(&self, config: Config) -> Result<(), Error> {
        config.validate()?;
        *lock(&self.inner.config) = Some(config);
        Ok(())
    }

    /// The timings in force: as configured, else from the environment.
    pub fn config(&self) -> Result<Config, Error> {
        let mut configured = lock(&self.inner.config);
        if let Some(config) = configured.as_ref() {
            return Ok(config.clone());
        }
        let config = Config::from_env()?;
        *configured = Some(config.clone());
        Ok(config)
    }

    /// Starts the shutdown sequence, as SIGTERM does: Draining at once, then
    /// the rest on the core thread. Returns `Ok(true)` for the call that
    /// started it, `Ok(false)` if it had already started (it never runs
    /// twice).
    pub fn begin_shutdown(&self) -> Result<bool, Error> {
        self.config()?;
        self.ensure_core_thread()?;
        Ok(self.inner.phase.begin_sequence())
    }

    /// Calls `listener` on the core thread at every phase change from now
    /// on, in order, never concurrently with another listener call.
    pub fn on_phase(
        &self,
        listener: impl Fn(PhaseChange) + Send + Sync + 'static,
    ) -> Result<RegistrationId, Error> {
        let id = self.next_id();
        lock(&self.inner.listeners).push((id, Arc::new(listener)));
        self.ensure_core_thread()?;
        Ok(id)
    }

    /// Removes a phase listener. When this returns, the listener is not
    /// being called and will not be called again (unless this is called
    /// from a listener, which may of course finish its own call).
    /// Returns `false` if no listener had that id.
    pub fn remove_phase_listener(&self, id: RegistrationId) -> bool {
        let removed = {
            let mut listeners = lock(&self.inner.listeners);
            let before = listeners.len();
            listeners.retain(|(each, _)| *each != id);
            listeners.len() != before
        };
        let on_core_thread = *lock(&self.inner.core_thread) == Some(std::thread::current().id());
        if removed && !on_core_thread {
            drop(lock(&self.inner.delivering));
        }
        removed
    }

    /// Runs `hook` in Stopping, after earlier-registered hooks, with the time
    /// left before the deadline; it returns whether it finished its work.
    /// Each hook runs on a thread of its own, started by the core thread; a
    /// hook that overruns the deadline is left running and the sequence goes
    /// on without it.
    pub fn register_shutdown_hook(
        &self,
        name: impl Into<String>,
        hook: impl FnOnce(Duration) -> bool + Send + 'static,
    ) -> RegistrationId {
        let id = self.next_id();
        lock(&self.inner.hooks).push((id, name.into(), Box::new(hook)));
        id
    }

    /// Removes a shutdown hook that has not run yet; `false` if none had
    /// that id (or it already ran).
    pub fn remove_shutdown_hook(&self, id: RegistrationId) -> bool {
        let mut hooks = lock(&self.inner.hooks);
        let before = hooks.len();
        hooks.retain(|(each, _, _)| *each != id);
        hooks.len() != before
    }

    /// What each shutdown hook did, once Stopping has run them.
    pub fn hook_reports(&self) -> Vec<HookReport> {
        lock(&self.inner.hook_reports).clone()
    }

    fn next_id(&self) -> RegistrationId {
        RegistrationId(self.inner.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Starts the core thread unless this process already has one.
    pub(crate) fn ensure_core_thread(&self) -> Result<(), Error> {
        let pid = current_pid();
        let owner = self.inner.core_pid.load(Ordering::Acquire);
        if owner == pid {
            return Ok(());
        }
        if self
            .inner
            .core_pid
            .compare_exchange(owner, pid, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Ok(()); // another thread of this process just started it
        }
        // Taken before the thread starts, so that no change made after this
        // call is missed.
        let seen = self.inner.phase.load();
        let inner = Arc::clone(&self.inner);
        match std::thread::Builder::new()
            .name("last-call".into())
            .spawn(move || core_thread(inner, seen))
        {
            Ok(handle) => {
                *lock(&self.inner.core_thread) = Some(handle.thread().id());
                Ok(())
            }
            Err(error) => {
                self.inner.core_pid.store(0, Ordering::Release);
                Err(Error::Os(error))
            }
        }
    }

    /// Back to a fresh state in a forked child: Serving, no streams, no core
    /// thread. Only atomic stores: this runs in the child right after fork.
    pub(crate) fn reset_after_fork(&self) {
        self.inner.streams.reset_after_fork();
        self.inner.phase.reset_after_fork();
    }
}

impl Inner {
    /// Delivers every change between `seen` and `now` to the listeners.
    fn deliver(&self, seen: &mut PhaseWord, now: PhaseWord) {
        let changes = seen.changes_until(now);
        *seen = now;
        if changes.is_empty() {
            return;
        }
        let _delivering = lock(&self.delivering);
        let listeners: Vec<Listener> = lock(&self.listeners)
            .iter()
            .map(|(_, listener)| Arc::clone(listener))
            .collect();
        for change in changes {
            for listener in &listeners {
                if catch_unwind(AssertUnwindSafe(|| listener(change))).is_err() {
                    eprintln!("last-call: a phase listener panicked on {change:?}");
                }
            }
        }
    }

    /// A forward move by the sequence, delivered before returning.
    pub(crate) fn advance(&self, to: Phase, seen: &mut PhaseWord) {
        let (_, now) = self.phase.advance(to);
        self.deliver(seen, now);
    }

    pub(crate) fn take_hooks(&self) -> Vec<(String, Hook)> {
        lock(&self.hooks)
            .drain(..)
            .map(|(_, name, hook)| (name, hook))
            .collect()
    }

    pub(crate) fn sequence_config(&self) -> Config {
        lock(&self.config).clone().unwrap_or_default()
    }
}

/// The core thread: delivers phase changes as they happen; when the
/// shutdown sequence starts, runs it; then, if armed, the exit watchdog.
fn core_thread(inner: Arc<Inner>, mut seen: PhaseWord) {
    loop {
        let now = inner.phase.load();
        inner.deliver(&mut seen, now);
        if now.sequence_started() {
            crate::sequence::run(&inner, &mut seen);
            break;
        }
        inner.phase.wait_for_change(now, None);
    }
    let watchdog = *lock(&inner.exit_watchdog);
    if let Some(watchdog) = watchdog {
        std::thread::sleep(watchdog);
        eprintln!(
            "last-call: the host had not exited {:.1} s after Stopped; exiting now",
            watchdog.as_secs_f64()
        );
        // SAFETY: _exit ends the process without running atexit handlers or
        // destructors, which is the point: something in the host is stuck.
        unsafe { libc::_exit(0) };
    }
}

/// Counts one stream while it lives: created by [`Runtime::begin_stream`],
/// the stream ends when it is dropped, however the holder exits.
#[must_use = "the stream ends as soon as the guard is dropped"]
#[derive(Debug)]
pub struct StreamGuard<'a> {
    runtime: &'a Runtime,
}

impl Drop for StreamGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // Cannot fail unless someone else decremented without a begin; the
        // counter then stays at zero, which is the most that can be done.
        let _ = self.runtime.inner.streams.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_ends_its_stream_on_drop() {
        let runtime = Runtime::new();
        let guard = runtime.begin_stream().unwrap();
        assert_eq!(runtime.active_streams(), 1);
        drop(guard);
        assert_eq!(runtime.active_streams(), 0);
        assert_eq!(runtime.streams_finished_total(), 1);
    }

    #[test]
    fn set_draining_is_refused_after_the_sequence_starts() {
        let runtime = Runtime::new();
        runtime.set_draining(true).unwrap();
        assert!(runtime.is_draining());
        runtime.set_draining(false).unwrap();
        assert!(!runtime.is_draining());
        runtime
            .configure(Config {
                drain_delay: Duration::ZERO,
                ..Config::default()
            })
            .unwrap();
        let _guard = runtime.begin_stream().unwrap();
        assert!(runtime.begin_shutdown().unwrap());
        assert!(!runtime.begin_shutdown().unwrap());
        assert!(matches!(
            runtime.set_draining(false),
            Err(Error::SequenceStarted)
        ));
        assert!(runtime.is_draining());
    }

    #[test]
    fn listeners_see_every_change_in_order_and_can_be_removed() {
        let runtime = Runtime::new();
        let (sender, receiver) = std::sync::mpsc::channel();
        let id = runtime
            .on_phase(move |change| sender.send(change).unwrap())
            .unwrap();
        runtime.set_draining(true).unwrap();
        runtime.set_draining(false).unwrap();
        runtime.set_draining(true).unwrap();
        let timeout = Duration::from_secs(10);
        let got: Vec<_> = (0..3)
            .map(|_| receiver.recv_timeout(timeout).unwrap())
            .collect();
        assert_eq!(
            got,
            vec![
                PhaseChange {
                    from: Phase::Serving,
                    to: Phase::Draining
                },
                PhaseChange {
                    from: Phase::Draining,
                    to: Phase::Serving
                },
                PhaseChange {
                    from: Phase::Serving,
                    to: Phase::Draining
                },
            ]
        );
        assert!(runtime.remove_phase_listener(id));
        assert!(!runtime.remove_phase_listener(id));
        runtime.set_draining(false).unwrap();
        assert!(receiver.recv_timeout(Duration::from_millis(200)).is_err());
    }
}
