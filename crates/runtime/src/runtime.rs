//! The runtime's facade: stream accounting, the phase, phase listeners,
//! shutdown hooks and the exit watchdog of one runtime, and the state they
//! share. The threads live elsewhere: `sequence.rs` (the shutdown
//! sequence), `listeners.rs` (delivery of phase changes), `watchdog.rs` and
//! `hooks.rs`.
//!
//! The listeners above this crate (the probe listener, the stream hub) keep
//! their own state; the runtime offers them generic hooks only: figures of
//! their own in the metrics ([`Runtime::add_metrics_source`]), a place in
//! the fork handlers (`fork.rs`), the host-call gate
//! ([`Runtime::enter_host_call`]) and registration ids.

use crate::callback_scope;
use crate::clock::{Mono, Stamp};
use crate::config::Config;
use crate::delivery::{DeliverySlot, RemovedFlag};
use crate::error::Error;
use crate::hooks::{HookEntry, HookOrder, HookReport, Hooks};
use crate::host_calls::{HostCall, HostCalls};
use crate::listeners::{self, Listener};
use crate::log::warn;
use crate::metrics::Figure;
use crate::phase::{Phase, PhaseCell, PhaseChange, PhaseWord};
use crate::reconnect_spread::StreamKind;
use crate::stream_counter::StreamCounter;
use crate::wait_word::WaitWord;
use crate::watchdog::{self, Arming};
use std::any::{Any, TypeId};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

/// Identifies a registered phase listener or shutdown hook, for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegistrationId(pub u64);

/// Everything behind the runtime's one lock. It is held only for short,
/// non-blocking bookkeeping, never while user code runs, and the
/// process-wide runtime's is taken around `fork()` (see `fork.rs`), so a
/// child never inherits it held.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) config: Option<Config>,
    pub(crate) listeners: Vec<Arc<Listener>>,
    pub(crate) hooks: Hooks,
    pub(crate) watchdog: Option<Arming>,
    /// Figures that layers above add to the metrics (see `metrics.rs`).
    pub(crate) metrics_sources: Vec<crate::metrics::Source>,
    /// The running sequence's timeline, fixed by the first to ask once it
    /// started (see [`Inner::timeline`]).
    pub(crate) timeline: Option<crate::sequence::Timeline>,
    /// State the layers above keep per runtime, one slot per type (see
    /// [`Runtime::extension`]).
    pub(crate) extensions: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

pub(crate) struct Inner {
    pub(crate) streams: StreamCounter,
    /// Work the sequence waits for beside the streams (see `work.rs`).
    pub(crate) work: StreamCounter,
    pub(crate) phase: PhaseCell,
    pub(crate) shared: Mutex<Shared>,
    pub(crate) delivery: DeliverySlot,
    /// Every call into host code passes it; shut by [`Runtime::host_exiting`].
    pub(crate) host_calls: HostCalls,
    /// Rung when a hook returns and by the testing reset: the sequence's
    /// timed sleeps wake on it.
    bell: WaitWord,
    /// Bumped by the testing reset; threads working for an older
    /// generation stand down.
    generation: AtomicU64,
    /// The phase word the last testing reset left, written before the
    /// generation moves: where the delivery thread resumes.
    reset_word: AtomicU32,
    /// 1 while the sequence thread runs a sequence.
    sequence_running: WaitWord,
    next_id: AtomicU64,
    /// The process that owns each thread (0: none). After `fork()` the
    /// child's copy names the parent, which tells the child it has none.
    sequence_pid: AtomicI32,
    delivery_pid: AtomicI32,
    watchdog_pid: AtomicI32,
    /// The [`crate::ReconnectSpread`] in force (see `reconnect_spread.rs`).
    pub(crate) reconnect_spread: AtomicU8,
    /// The shutdown log's switch and counts (see `shutdown_log.rs`).
    pub(crate) shutdown_log: crate::shutdown_log::ShutdownLog,
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
    /// tests and for hosts that run several independent servers. Its
    /// threads, once started, live as long as the process.
    pub fn new() -> Runtime {
        Runtime {
            inner: Arc::new(Inner {
                streams: StreamCounter::new(),
                work: StreamCounter::new(),
                phase: PhaseCell::new(),
                shared: Mutex::new(Shared::default()),
                delivery: DeliverySlot::new(),
                host_calls: HostCalls::new(),
                bell: WaitWord::new(0),
                generation: AtomicU64::new(0),
                reset_word: AtomicU32::new(0),
                sequence_running: WaitWord::new(0),
                next_id: AtomicU64::new(1),
                sequence_pid: AtomicI32::new(0),
                delivery_pid: AtomicI32::new(0),
                watchdog_pid: AtomicI32::new(0),
                reconnect_spread: AtomicU8::new(0),
                shutdown_log: crate::shutdown_log::ShutdownLog::default(),
            }),
        }
    }

    /// The process-wide runtime, used by the C ABI, the Python package and
    /// signal handling.
    pub fn global() -> &'static Runtime {
        GLOBAL.get_or_init(|| {
            crate::fork::register_fork_handlers();
            Runtime::new()
        })
    }

    /// The process-wide runtime if it exists yet. Async-signal-safe.
    #[doc(hidden)]
    pub fn global_if_created() -> Option<&'static Runtime> {
        GLOBAL.get()
    }

    /// Whether this is the process-wide runtime.
    #[doc(hidden)]
    pub fn is_global(&self) -> bool {
        GLOBAL
            .get()
            .is_some_and(|global| Arc::ptr_eq(&global.inner, &self.inner))
    }

    // ----- stream accounting (the hot path) -----

    /// Counts a [resumable](StreamKind::Resumable) stream until the
    /// returned guard is dropped.
    #[inline]
    pub fn begin_stream(&self) -> Result<StreamGuard<'_>, Error> {
        self.begin_stream_of(StreamKind::Resumable)
    }

    /// Counts a stream of `kind` until the returned guard is dropped; the
    /// guard tells the stream when to end ([`StreamGuard::end_in`]).
    #[inline]
    pub fn begin_stream_of(&self, kind: StreamKind) -> Result<StreamGuard<'_>, Error> {
        self.inner.streams.begin()?;
        self.in_pod_figures(crate::pod_figures::stream_began);
        Ok(StreamGuard {
            runtime: self,
            kind,
            moment: None,
        })
    }

    /// Counts one more active stream (pair it with
    /// [`Runtime::decrement_active_streams`]; prefer [`Runtime::begin_stream`]).
    #[inline]
    pub fn increment_active_streams(&self) -> Result<(), Error> {
        self.inner.streams.begin()?;
        self.in_pod_figures(crate::pod_figures::stream_began);
        Ok(())
    }

    /// Counts one stream as ended. Without a matching increment this is an
    /// error and the count stays at zero.
    #[inline]
    pub fn decrement_active_streams(&self) -> Result<(), Error> {
        self.inner.streams.end()?;
        self.in_pod_figures(crate::pod_figures::stream_ended);
        Ok(())
    }

    /// Adds a count to this worker's slot of the pod's figures
    /// (`pod_figures.rs`): the process-wide runtime's only, and only in a
    /// worker that joined them (one load of a null pointer otherwise).
    #[inline]
    pub(crate) fn in_pod_figures(&self, note: fn()) {
        if crate::pod_figures::joined() && self.is_global() {
            note();
        }
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
    /// limit): `Ok(true)` if the count was zero at some moment, `Ok(false)`
    /// at the timeout. Woken by the last stream's end, never by polling.
    /// [`Error::Reentrant`] at once when called from a phase listener or a
    /// shutdown hook.
    pub fn wait_for_streams(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        if callback_scope::inside_any() {
            return Err(Error::Reentrant("wait_for_streams"));
        }
        Ok(self.inner.streams.wait_for_zero(timeout))
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
        Some(started.mono.until(stopped.mono))
    }

    /// Streams that were still open when ClosingStreams began (0 if it never
    /// did): the streams the deadline, not their own end, closed.
    pub fn streams_closed_by_deadline(&self) -> u64 {
        self.inner
            .phase
            .streams_asked_to_close
            .load(Ordering::Relaxed)
    }

    /// Blocks until the phase is at least `target` or `timeout` passes:
    /// `Ok(phase reached)`, or [`Error::TimedOut`] with the phase at the
    /// timeout. Returns as soon as the phase is entered; listeners are told
    /// of the change on the delivery thread, possibly a moment later.
    /// [`Error::Reentrant`] at once when called from a phase listener or a
    /// shutdown hook (where waiting could wait for itself).
    pub fn wait_for_phase(&self, target: Phase, timeout: Option<Duration>) -> Result<Phase, Error> {
        if callback_scope::inside_any() {
            return Err(Error::Reentrant("wait_for_phase"));
        }
        self.inner
            .phase
            .wait_for(target, Mono::deadline(timeout))
            .map_err(Error::TimedOut)
    }

    // ----- the shutdown sequence -----

    /// Sets the timings the shutdown sequence will use. Without it, the
    /// sequence reads them from the environment when it starts.
    pub fn configure(&self, config: Config) -> Result<(), Error> {
        config.validate()?;
        let shutdown_log = crate::config::shutdown_log_from_env()?;
        self.inner.shutdown_log.note_env(shutdown_log);
        lock(&self.inner.shared).config = Some(config);
        Ok(())
    }

    /// The timings in force: as configured, else from the environment.
    pub fn config(&self) -> Result<Config, Error> {
        if let Some(config) = lock(&self.inner.shared).config.clone() {
            return Ok(config);
        }
        let config = Config::from_env()?;
        // Valid: `from_env` checked it.
        self.inner
            .shutdown_log
            .note_env(crate::config::shutdown_log_from_env().ok().flatten());
        Ok(lock(&self.inner.shared)
            .config
            .get_or_insert(config)
            .clone())
    }

    /// Starts the shutdown sequence, as SIGTERM does: Draining at once, then
    /// the rest on the sequence thread. Returns `Ok(true)` for the call that
    /// started it, `Ok(false)` if it had already started (it never runs
    /// twice). Does not count as a signal: the first signal received
    /// afterwards is still a first signal.
    ///
    /// It never fails on the configuration: if none was set and the
    /// environment's is invalid (a host that validates at start-up never
    /// gets here), the sequence runs with the defaults and one line on
    /// stderr says why. A shutdown must not be refused at the one moment
    /// it is needed.
    pub fn begin_shutdown(&self) -> Result<bool, Error> {
        if let Err(error) = self.config() {
            warn!("{error}; the shutdown sequence runs with the default timings");
            lock(&self.inner.shared)
                .config
                .get_or_insert_with(Config::default);
        }
        self.ensure_threads()?;
        Ok(self.inner.phase.begin_sequence())
    }

    /// Calls `listener` on the runtime's delivery thread at every phase
    /// change from now on, in order, one call at a time, with no lock held.
    /// A listener that blocks delays the listeners after it, never the
    /// sequence or the watchdog.
    pub fn on_phase(
        &self,
        listener: impl Fn(PhaseChange) + Send + Sync + 'static,
    ) -> Result<RegistrationId, Error> {
        self.ensure_threads()?;
        let id = self.next_id();
        let mut shared = lock(&self.inner.shared);
        // Read under the lock: the delivery thread skips, for this
        // listener, every change made before this word.
        let since = self.inner.phase.load();
        shared.listeners.push(Arc::new(Listener {
            id,
            removed: RemovedFlag::new(),
            call: Box::new(listener),
            since,
        }));
        Ok(id)
    }

    /// Removes a phase listener; `false` if no listener had that id.
    ///
    /// * A listener removed before its delivery starts is never called.
    /// * Called outside any listener, this returns once the listener is not
    ///   running, and it is never called again.
    /// * Called from inside a listener (to remove itself or another), it
    ///   returns at once and never deadlocks; the removed listener is not
    ///   called again after the call in flight, if any, returns.
    pub fn remove_phase_listener(&self, id: RegistrationId) -> bool {
        listeners::remove(&self.inner, id)
    }

    /// Runs `hook` in Stopping, after the hooks registered before it, with
    /// its share of the time left; it returns whether it finished its work.
    /// See [`Runtime::register_shutdown_hook_with`].
    pub fn register_shutdown_hook(
        &self,
        name: impl Into<String>,
        hook: impl FnOnce(Duration) -> bool + Send + 'static,
    ) -> Result<RegistrationId, Error> {
        self.register_shutdown_hook_with(name, HookOrder::AfterPrevious, hook)
    }

    /// Runs `hook` in Stopping, on a thread of its own: after the hooks
    /// registered before it ([`HookOrder::AfterPrevious`]) or at the same
    /// time as the one registered just before it
    /// ([`HookOrder::WithPrevious`]). Each group of hooks gets an equal
    /// share of the time left when it starts (at least the hooks' budget in
    /// total); a hook that overruns is left running and reported. The name
    /// is used in logs and reports; [`Error::InvalidArgument`] if it
    /// contains a NUL. [`Error::TooLate`] once Stopping has taken the hooks
    /// to run: a hook registered then would never run.
    pub fn register_shutdown_hook_with(
        &self,
        name: impl Into<String>,
        order: HookOrder,
        hook: impl FnOnce(Duration) -> bool + Send + 'static,
    ) -> Result<RegistrationId, Error> {
        let name = name.into();
        if name.contains('\0') {
            return Err(Error::InvalidArgument("a hook name must not contain NUL"));
        }
        let id = self.next_id();
        let registered = lock(&self.inner.shared).hooks.register(HookEntry {
            id,
            name,
            order,
            hook: Box::new(hook),
        });
        if !registered {
            return Err(Error::TooLate(
                "the shutdown hooks have already been run (Stopping has begun): a hook registered now would never run",
            ));
        }
        Ok(id)
    }

    /// Removes a shutdown hook that has not run yet; `false` if none had
    /// that id (or it already ran).
    pub fn remove_shutdown_hook(&self, id: RegistrationId) -> bool {
        lock(&self.inner.shared).hooks.remove(id)
    }

    /// What each shutdown hook did, once Stopping has run them.
    pub fn hook_reports(&self) -> Vec<HookReport> {
        lock(&self.inner.shared).hooks.reports()
    }

    /// Arms the exit watchdog with the configuration in force (see
    /// `watchdog.rs`): once the sequence has started, the process is ended
    /// with `exit_watchdog_status` if it is still running `exit_watchdog`
    /// after Stopped, or after the deadline. Installing the signal handlers
    /// arms it; hosts that drive the sequence themselves call this. A
    /// configuration with the watchdog disabled disarms it.
    pub fn arm_exit_watchdog(&self) -> Result<(), Error> {
        let config = self.config()?;
        lock(&self.inner.shared).watchdog = Arming::from_config(&config);
        self.ensure_thread(&self.inner.watchdog_pid, watchdog::watchdog_thread)?;
        // Wake the watchdog thread so that it sees the arming at once, even
        // if the sequence has already started.
        self.inner.phase.wake_sleepers();
        Ok(())
    }

    /// The host is exiting: from now on the runtime calls none of its code
    /// (phase listeners, shutdown hooks not started yet, readiness checks,
    /// which then fail), for good. Then waits, at most `timeout` (`None`:
    /// no limit), for the calls already in flight to return: `Ok(())` when
    /// none is left (the caller's own call, if it is inside one, aside),
    /// [`Error::TimedOut`] when one is, such as a hook left running past its
    /// share. An interpreter calls it before it finalizes (see
    /// `host_calls.rs`); on `TimedOut` it must end the process without
    /// finalizing, since a thread is still inside it.
    pub fn host_exiting(&self, timeout: Option<Duration>) -> Result<(), Error> {
        if self
            .inner
            .host_calls
            .close_and_wait(Mono::deadline(timeout))
        {
            Ok(())
        } else {
            Err(Error::TimedOut(self.phase()))
        }
    }

    /// **For tests only.** Returns the runtime to a fresh state: Serving, no
    /// active streams (streams still held end later with
    /// [`Error::NoActiveStream`]), no sequence running (a running one is
    /// abandoned: its hooks that already started keep running, unreported),
    /// every listener and hook removed, reports cleared, the configuration
    /// forgotten and the exit watchdog disarmed. The totals are kept.
    ///
    /// Refused with [`Error::AlreadyInstalled`] on the process-wide runtime
    /// while signal handlers are installed in this process: a reset must
    /// never undo a real shutdown. [`Error::Reentrant`] from a listener or
    /// hook.
    pub fn reset_for_testing(&self) -> Result<(), Error> {
        if self.is_global() && crate::signals::signal_handlers_installed() {
            return Err(Error::AlreadyInstalled);
        }
        if callback_scope::inside_any() {
            return Err(Error::Reentrant("reset_for_testing"));
        }
        let removed: Vec<Arc<Listener>> = {
            let mut shared = lock(&self.inner.shared);
            shared.config = None;
            self.inner.shutdown_log.forget_env();
            shared.hooks.clear();
            shared.watchdog = None;
            shared.extensions.clear();
            self.set_reconnect_spread(crate::ReconnectSpread::Spread);
            std::mem::take(&mut shared.listeners)
        };
        self.inner.host_calls.reopen();
        for listener in &removed {
            listener.removed.set();
        }
        // The fresh word first, then the generation: a thread that sees the
        // new generation also sees where the reset left the phase.
        let fresh = self.inner.phase.reset();
        self.inner.reset_word.store(fresh.bits(), Ordering::SeqCst);
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.streams.reset_active();
        self.inner.work.reset_active();
        self.inner.ring_bell();
        crate::signals::reset_signal_count();
        // Listener calls in flight and the abandoned sequence end promptly
        // (neither waits for anything the reset has not just woken).
        for listener in &removed {
            self.inner.delivery.wait_until_idle(listener.id.0);
        }
        if !self
            .inner
            .wait_sequence_idle(Mono::deadline(Some(Duration::from_secs(10))))
        {
            warn!("testing reset: the abandoned shutdown sequence did not stop within 10 s");
        }
        Ok(())
    }

    // ----- hooks for the layers above (the http crate) -----

    /// Adds figures to this runtime's metrics: `source` appends its own
    /// after the runtime's, each time the metrics are rendered. The layers
    /// above plug in here (the stream hub's slow clients) without the
    /// runtime knowing them.
    #[doc(hidden)]
    pub fn add_metrics_source(&self, source: impl Fn(&mut Vec<Figure>) + Send + Sync + 'static) {
        lock(&self.inner.shared)
            .metrics_sources
            .push(Arc::new(source));
    }

    /// This runtime's one value of type `T`, made by `init` on first use
    /// (outside the runtime's lock: `init` may register listeners). The
    /// layers above keep per-runtime state here without the runtime knowing
    /// them (the tokio crate's phase bridge). Concurrent first calls wait
    /// for the one `init`; the testing reset forgets every value.
    #[doc(hidden)]
    pub fn extension<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Arc<T> {
        let slot = {
            let mut shared = lock(&self.inner.shared);
            let key = TypeId::of::<T>();
            match shared.extensions.iter().find(|(id, _)| *id == key) {
                Some((_, slot)) => Arc::clone(slot),
                None => {
                    let slot: Arc<dyn Any + Send + Sync> = Arc::new(OnceLock::<Arc<T>>::new());
                    shared.extensions.push((key, Arc::clone(&slot)));
                    slot
                }
            }
        };
        let slot = slot
            .downcast::<OnceLock<Arc<T>>>()
            .unwrap_or_else(|_| unreachable!("each slot is keyed by its own type"));
        Arc::clone(slot.get_or_init(|| Arc::new(init())))
    }

    /// Enters a call into host code (a readiness check): `None` once the
    /// host is exiting ([`Runtime::host_exiting`]), when it must not be
    /// called. The call counts as in flight until the guard drops.
    #[doc(hidden)]
    pub fn enter_host_call(&self) -> Option<HostCall<'_>> {
        self.inner.host_calls.enter()
    }

    /// A fresh id, from the one sequence phase listeners, shutdown hooks
    /// and the layers' registrations (readiness checks) share.
    #[doc(hidden)]
    pub fn next_registration_id(&self) -> RegistrationId {
        self.next_id()
    }

    fn next_id(&self) -> RegistrationId {
        RegistrationId(self.inner.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Starts the sequence and delivery threads unless this process has
    /// them.
    pub(crate) fn ensure_threads(&self) -> Result<(), Error> {
        // The threads tell a forked child by the fork generation, which
        // the handlers move (a private runtime registers them here).
        crate::fork::register_fork_handlers();
        self.ensure_thread(&self.inner.sequence_pid, crate::sequence::sequence_thread)?;
        // Read before the thread starts, so that no change made after this
        // call is missed.
        let seen = self.inner.phase.load();
        self.ensure_thread(&self.inner.delivery_pid, move |inner| {
            listeners::delivery_thread(inner, seen)
        })
    }

    fn ensure_thread(
        &self,
        owner: &AtomicI32,
        body: impl FnOnce(Arc<Inner>) + Send + 'static,
    ) -> Result<(), Error> {
        let pid = current_pid();
        let seen = owner.load(Ordering::Acquire);
        if seen == pid {
            return Ok(());
        }
        if owner
            .compare_exchange(seen, pid, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Ok(()); // another thread of this process just started it
        }
        let inner = Arc::clone(&self.inner);
        let spawned = crate::signals::spawn_without_signals(
            std::thread::Builder::new().name("last-call".into()),
            move || {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(inner))).is_err() {
                    warn!("a runtime thread failed; please report this");
                }
            },
        );
        match spawned {
            Ok(_) => Ok(()),
            Err(error) => {
                owner.store(0, Ordering::Release);
                Err(Error::Os(error))
            }
        }
    }

    /// Back to a fresh state in a forked child: Serving, no streams, no
    /// threads, no call in flight. Only plain stores: this runs in the child
    /// right after fork (`fork.rs` holds the lock).
    pub(crate) fn reset_after_fork(&self, shared: &mut Shared) {
        self.inner.streams.reset_after_fork();
        self.inner.work.reset_after_fork();
        self.inner.phase.reset();
        self.inner.delivery.reset_after_fork();
        self.inner.host_calls.reset_after_fork();
        self.inner
            .sequence_running
            .atomic()
            .store(0, Ordering::Relaxed);
        shared.hooks.reset_after_fork();
        shared.watchdog = None;
    }
}

impl Inner {
    /// The locks of the wait words (the portable wait's; none with the
    /// futex), in one order, for `fork.rs`: taken after the runtime's own
    /// lock. No code holds one of them while it takes another lock.
    pub(crate) fn hold_wait_words_across_fork(&self) -> Vec<std::sync::MutexGuard<'_, ()>> {
        [
            self.phase.hold_across_fork(),
            self.streams.hold_across_fork(),
            self.work.hold_across_fork(),
            self.delivery.hold_across_fork(),
            self.bell.hold_across_fork(),
            self.sequence_running.hold_across_fork(),
            self.host_calls.hold_across_fork(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// This runtime's address, to tell its callbacks from others'.
    pub(crate) fn address(&self) -> usize {
        self as *const Inner as usize
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The phase word the last testing reset left.
    pub(crate) fn reset_word(&self) -> PhaseWord {
        PhaseWord::from_bits(self.reset_word.load(Ordering::SeqCst))
    }

    pub(crate) fn is_generation(&self, generation: u64) -> bool {
        self.generation() == generation
    }

    pub(crate) fn take_hooks(&self) -> Vec<HookEntry> {
        lock(&self.shared).hooks.take()
    }

    pub(crate) fn sequence_config(&self) -> Config {
        lock(&self.shared).config.clone().unwrap_or_default()
    }

    /// The running sequence's timeline: `None` before it starts. The first
    /// call after the start fixes it, from the configuration in force and
    /// whether a shutdown hook is registered at that moment (none: no
    /// budget is kept for hooks; a hook registered later gets what is
    /// left), so that the sequence thread and every stream drawing its
    /// moment see the same one, whoever asks first.
    pub(crate) fn timeline(&self) -> Option<crate::sequence::Timeline> {
        let started = self.phase.sequence_started_at()?.mono;
        let mut shared = lock(&self.shared);
        match shared.timeline {
            Some(timeline) if timeline.started == started => Some(timeline),
            _ => {
                let config = shared.config.clone().unwrap_or_default();
                let hooks = shared.hooks.any_registered();
                let timeline = crate::sequence::Timeline::new(started, &config, hooks);
                shared.timeline = Some(timeline);
                Some(timeline)
            }
        }
    }

    pub(crate) fn watchdog_arming(&self) -> Option<Arming> {
        lock(&self.shared).watchdog
    }

    pub(crate) fn bell_value(&self) -> u32 {
        self.bell.atomic().load(Ordering::Acquire)
    }

    pub(crate) fn ring_bell(&self) {
        self.bell.atomic().fetch_add(1, Ordering::Release);
        self.bell.wake_all();
    }

    /// Sleeps until the bell rings after `seen` was read, or `deadline`.
    pub(crate) fn wait_for_bell(&self, seen: u32, deadline: Mono) {
        self.bell.wait(seen, deadline.left());
    }

    /// Sleeps until `at`, or until the testing reset ends `generation`.
    pub(crate) fn sleep_until(&self, at: Mono, generation: u64) {
        loop {
            let seen = self.bell_value();
            if at.has_passed() || !self.is_generation(generation) {
                return;
            }
            self.wait_for_bell(seen, at);
        }
    }

    pub(crate) fn sequence_busy(&self, busy: bool) {
        self.sequence_running
            .atomic()
            .store(u32::from(busy), Ordering::SeqCst);
        if !busy {
            self.sequence_running.wake_all();
        }
    }

    fn wait_sequence_idle(&self, deadline: Mono) -> bool {
        loop {
            if self.sequence_running.atomic().load(Ordering::SeqCst) == 0 {
                return true;
            }
            let left = deadline.left();
            if left == Some(Duration::ZERO) {
                return false;
            }
            self.sequence_running.wait(1, left);
        }
    }
}

/// Counts one stream while it lives: created by [`Runtime::begin_stream`],
/// the stream ends when it is dropped, however the holder exits.
#[must_use = "the stream ends as soon as the guard is dropped"]
#[derive(Debug)]
pub struct StreamGuard<'a> {
    runtime: &'a Runtime,
    kind: StreamKind,
    /// This stream's moment to end, drawn at the first
    /// [`StreamGuard::end_in`] in ClosingStreams.
    moment: Option<Mono>,
}

impl StreamGuard<'_> {
    /// The kind the stream was opened as.
    pub fn kind(&self) -> StreamKind {
        self.kind
    }

    /// `None` while the stream should go on; once ClosingStreams has begun,
    /// how long it may still run: for a pod-bound stream, the time left
    /// until the streams' last moment (then send the host's final event and
    /// end); for a resumable one, the time left until its own moment of the
    /// nudge window (then send the reconnect hint and end). The moment is drawn once per stream (see
    /// `reconnect_spread.rs`); later calls count down to it.
    pub fn end_in(&mut self) -> Option<Duration> {
        if self.moment.is_none() {
            self.moment = self.runtime.draw_moment(self.kind);
        }
        self.moment.map(|at| Mono::now().until(at))
    }
}

impl Drop for StreamGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // Cannot fail unless someone else decremented without a begin; the
        // counter then stays at zero, which is the most that can be done.
        if self.runtime.inner.streams.end().is_ok() {
            self.runtime
                .in_pod_figures(crate::pod_figures::stream_ended);
        }
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
    fn an_extension_is_made_once_per_runtime_and_forgotten_by_the_reset() {
        let runtime = Runtime::new();
        let made = AtomicU32::new(0);
        let make = || made.fetch_add(1, Ordering::SeqCst) + 10;
        let first = runtime.extension(make);
        let again = runtime.extension::<u32>(|| unreachable!("made once"));
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(*first, 10);
        // Another type has a slot of its own; another runtime too.
        assert_eq!(*runtime.extension(|| "other"), "other");
        assert_eq!(*Runtime::new().extension(|| 7u32), 7);
        runtime.reset_for_testing().unwrap();
        assert_eq!(*runtime.extension(make), 11);
    }

    #[test]
    fn a_hook_registered_once_stopping_began_is_refused_saying_why() {
        // Before: GS_OK and an id, and the hook never ran nor appeared in
        // any report.
        let runtime = Runtime::new();
        runtime
            .configure(Config::millis(0, 5_000, 1_000, 1_000))
            .unwrap();
        runtime.register_shutdown_hook("early", |_| true).unwrap();
        runtime.begin_shutdown().unwrap();
        runtime
            .wait_for_phase(Phase::Stopped, Some(Duration::from_secs(10)))
            .unwrap();
        let late = runtime.register_shutdown_hook("late", |_| true);
        match late {
            Err(Error::TooLate(why)) => assert!(why.contains("never run"), "{why}"),
            other => panic!("{other:?}"),
        }
        let reports = runtime.hook_reports();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].name, "early");
    }

    #[test]
    fn a_listener_is_told_only_of_changes_after_its_registration() {
        // Before: a listener registered after Stopped was told of the
        // earlier changes by a delivery thread still catching up.
        use std::sync::mpsc;
        let runtime = Runtime::new();
        runtime
            .configure(Config::millis(0, 5_000, 1_000, 1_000))
            .unwrap();
        let (release, released) = mpsc::channel::<()>();
        let released = std::sync::Mutex::new(released);
        let (seen_tx, seen) = mpsc::channel::<PhaseChange>();
        let seen_tx = std::sync::Mutex::new(seen_tx);
        // Holds the delivery thread on the first change until released.
        runtime
            .on_phase(move |change| {
                if change.to == Phase::Draining {
                    let _ = released
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(20));
                }
                let _ = seen_tx.lock().unwrap().send(change);
            })
            .unwrap();
        runtime.begin_shutdown().unwrap();
        runtime
            .wait_for_phase(Phase::Stopped, Some(Duration::from_secs(10)))
            .unwrap();
        let told = Arc::new(std::sync::Mutex::new(Vec::new()));
        let late = {
            let told = Arc::clone(&told);
            runtime
                .on_phase(move |change| told.lock().unwrap().push(change))
                .unwrap()
        };
        release.send(()).unwrap();
        // The first listener has been told of Stopped: delivery caught up.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let change = seen.recv_timeout(left).expect("delivery caught up");
            if change.to == Phase::Stopped {
                break;
            }
        }
        // Returns once the late listener is not running.
        assert!(runtime.remove_phase_listener(late));
        assert_eq!(*told.lock().unwrap(), Vec::<PhaseChange>::new());
    }

    #[test]
    fn begin_shutdown_never_fails_on_a_bad_environment() {
        // nextest runs each test in a process of its own.
        std::env::set_var(crate::config::env::SHUTDOWN_TIMEOUT, "soon");
        let runtime = Runtime::new();
        assert!(matches!(runtime.config(), Err(Error::Config(_))));
        // The moment it is needed, a shutdown is not refused: it runs with
        // the defaults (and says so on stderr).
        assert!(runtime.begin_shutdown().unwrap());
        std::env::remove_var(crate::config::env::SHUTDOWN_TIMEOUT);
        assert_eq!(runtime.config().unwrap(), Config::default());
        assert_eq!(
            runtime.notice_window().unwrap().hooks_at,
            Duration::from_secs(25)
        );
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
                drain_delay: Some(Duration::ZERO),
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

    #[test]
    fn a_hook_name_with_a_nul_is_an_error_not_a_panic() {
        let runtime = Runtime::new();
        assert!(matches!(
            runtime.register_shutdown_hook("bad\0name", |_| true),
            Err(Error::InvalidArgument(_))
        ));
        assert!(runtime
            .register_shutdown_hook("good name", |_| true)
            .is_ok());
    }

    #[test]
    fn a_listener_removed_by_an_earlier_one_is_not_called_even_for_the_same_change() {
        let runtime = Runtime::new();
        let b_id = Arc::new(std::sync::OnceLock::new());
        let (sender, receiver) = std::sync::mpsc::channel();
        {
            let runtime = runtime.clone();
            let b_id = Arc::clone(&b_id);
            let sender = sender.clone();
            runtime
                .clone()
                .on_phase(move |_| {
                    if let Some(id) = b_id.get() {
                        sender
                            .send(("a removed b", runtime.remove_phase_listener(*id)))
                            .unwrap();
                    }
                })
                .unwrap();
        }
        let id = runtime
            .on_phase(move |_| sender.send(("b called", true)).unwrap())
            .unwrap();
        b_id.set(id).unwrap();
        runtime.set_draining(true).unwrap();
        assert_eq!(
            receiver.recv_timeout(Duration::from_secs(10)).unwrap(),
            ("a removed b", true)
        );
        runtime.set_draining(false).unwrap();
        runtime.set_draining(true).unwrap();
        // A is called twice more (removing nothing); B never.
        for _ in 0..2 {
            assert_eq!(
                receiver.recv_timeout(Duration::from_secs(10)).unwrap(),
                ("a removed b", false)
            );
        }
        assert!(receiver.recv_timeout(Duration::from_millis(200)).is_err());
    }

    #[test]
    fn a_blocking_wait_from_a_listener_is_refused_at_once() {
        let runtime = Runtime::new();
        let (sender, receiver) = std::sync::mpsc::channel();
        let inner = runtime.clone();
        runtime
            .on_phase(move |_| {
                let phase = inner.wait_for_phase(Phase::Stopped, None);
                let streams = inner.wait_for_streams(None);
                sender
                    .send((
                        matches!(phase, Err(Error::Reentrant(_))),
                        matches!(streams, Err(Error::Reentrant(_))),
                    ))
                    .unwrap();
            })
            .unwrap();
        runtime.set_draining(true).unwrap();
        assert_eq!(
            receiver.recv_timeout(Duration::from_secs(10)).unwrap(),
            (true, true)
        );
    }
}
