//! The runtime's phases as futures: [`RuntimeExt`], implemented for the
//! runtime with its listeners (`last_call::Runtime`).

use crate::bridge::bridge;
use last_call_core::Phase;
use last_call_http::{ProbeOptions, Runtime};
use last_call_runtime::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;

/// How often a future looks at the phase where the runtime could not start
/// the thread that reports changes (never in practice).
const FALLBACK_POLL: Duration = Duration::from_millis(50);

/// The async face of the runtime, for tokio hosts.
///
/// ```no_run
/// use last_call::tokio::RuntimeExt;
/// use last_call::{install_signal_handlers, Config, Runtime};
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     install_signal_handlers(Config::from_env()?)?;
///     let runtime = Runtime::global();
///     runtime.start_probes_from_env()?; // GS_PROBE_ADDR, with a heartbeat
///     let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
///     let app = axum::Router::new();
///     axum::serve(listener, app)
///         .with_graceful_shutdown(runtime.shutdown_signal())
///         .await?;
///     Ok(())
/// }
/// ```
pub trait RuntimeExt {
    /// Resolves once the phase is `phase` or later, with the phase then.
    /// `Send`, `'static`, and cancellation-safe: dropping it leaves nothing
    /// behind (one phase listener per runtime, registered on first use,
    /// wakes every waiter). Checked against the runtime itself, so it
    /// never resolves early and never misses a change.
    ///
    /// ```no_run
    /// # async fn f() {
    /// use last_call::tokio::RuntimeExt;
    /// use last_call::{Phase, Runtime};
    ///
    /// Runtime::global().reached(Phase::Draining).await;
    /// // stop taking new work
    /// # }
    /// ```
    fn reached(&self, phase: Phase) -> Reached;

    /// The phase as a [`watch`], updated from the runtime's phase listener
    /// (a moment after each change). For a wait, prefer
    /// [`RuntimeExt::reached`]. The testing reset closes it.
    ///
    /// ```no_run
    /// # async fn f() {
    /// use last_call::tokio::RuntimeExt;
    /// use last_call::Runtime;
    ///
    /// let mut phases = Runtime::global().phase_watch();
    /// while phases.changed().await.is_ok() {
    ///     let phase = *phases.borrow_and_update();
    ///     println!("phase {phase}");
    /// }
    /// # }
    /// ```
    fn phase_watch(&self) -> watch::Receiver<Phase>;

    /// Resolves at Stopping, when the streams are done and the shutdown
    /// hooks run: the moment a server stops accepting, meant for
    /// `axum::serve(..).with_graceful_shutdown(runtime.shutdown_signal())`
    /// (or hyper's `GracefulShutdown`). The server then returns and `main`
    /// with it: the process exits 0. A host with shutdown hooks of its own
    /// awaits `reached(Phase::Stopped)` before it returns.
    fn shutdown_signal(&self) -> ShutdownSignal;

    /// Starts the probe listener ([`Runtime::start_probe_listener`]) and a
    /// task on the current tokio runtime that sends the liveness heartbeat
    /// ([`Runtime::heartbeat`]) a few times per staleness period: a tokio
    /// runtime that stops scheduling tasks goes stale and `/healthz`
    /// answers 503. [`Error::InvalidArgument`] outside a tokio runtime.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), last_call::Error> {
    /// use last_call::tokio::RuntimeExt;
    /// use last_call::{ProbeOptions, Runtime};
    ///
    /// let addr = Runtime::global().start_probes(ProbeOptions::new("0.0.0.0:9090"))?;
    /// # Ok(()) }
    /// ```
    fn start_probes(&self, options: ProbeOptions) -> Result<SocketAddr, Error>;

    /// [`RuntimeExt::start_probes`] as [`ProbeOptions::from_env`] says, if
    /// `GS_PROBE_ADDR` is set (`Ok(None)`, nothing started, otherwise).
    fn start_probes_from_env(&self) -> Result<Option<SocketAddr>, Error>;
}

impl RuntimeExt for Runtime {
    fn reached(&self, phase: Phase) -> Reached {
        Reached::new(self.core(), phase)
    }

    fn phase_watch(&self) -> watch::Receiver<Phase> {
        bridge(self.core()).sender.subscribe()
    }

    fn shutdown_signal(&self) -> ShutdownSignal {
        ShutdownSignal(self.reached(Phase::Stopping))
    }

    fn start_probes(&self, options: ProbeOptions) -> Result<SocketAddr, Error> {
        crate::probes::start(self, options)
    }

    fn start_probes_from_env(&self) -> Result<Option<SocketAddr>, Error> {
        match ProbeOptions::from_env()? {
            Some(options) => self.start_probes(options).map(Some),
            None => Ok(None),
        }
    }
}

/// The future of [`RuntimeExt::reached`]: resolves with the phase once it
/// is the target or later.
#[must_use = "futures do nothing unless polled"]
pub struct Reached {
    wait: Pin<Box<dyn Future<Output = Phase> + Send>>,
}

impl Reached {
    pub(crate) fn new(runtime: &last_call_runtime::Runtime, target: Phase) -> Reached {
        let runtime = runtime.clone();
        // Subscribed before the first look at the phase: a change after
        // that look is sent after it, and wakes this receiver.
        let bridge = bridge(&runtime);
        let mut changes = bridge.sender.subscribe();
        let registered = bridge.registered;
        // The future keeps the receiver only: the bridge itself lives with
        // the runtime, so that a testing reset closes the channel.
        drop(bridge);
        Reached {
            wait: Box::pin(async move {
                loop {
                    let now = runtime.phase();
                    if now >= target {
                        return now;
                    }
                    if !registered {
                        tokio::time::sleep(FALLBACK_POLL).await;
                    } else if changes.changed().await.is_err() {
                        // The testing reset dropped the bridge: the new one.
                        changes = crate::bridge::bridge(&runtime).sender.subscribe();
                    }
                }
            }),
        }
    }
}

impl Future for Reached {
    type Output = Phase;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Phase> {
        self.wait.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for Reached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reached").finish_non_exhaustive()
    }
}

/// The future of [`RuntimeExt::shutdown_signal`]: resolves at Stopping.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct ShutdownSignal(Reached);

impl Future for ShutdownSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use last_call_runtime::Config;
    use std::sync::Arc;
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(10);

    fn short_sequence(runtime: &Runtime) {
        runtime
            .configure(Config {
                drain_delay: Some(Duration::from_millis(100)),
                shutdown_timeout: Duration::from_secs(2),
                close_notice: Some(Duration::from_millis(500)),
                hook_budget: Some(Duration::from_millis(500)),
                ..Config::default()
            })
            .unwrap();
    }

    fn receivers(runtime: &Runtime) -> usize {
        bridge(runtime.core()).sender.receiver_count()
    }

    #[test]
    fn the_futures_are_send_and_static() {
        fn send_static<T: Send + Unpin + 'static>(_: &T) {}
        let runtime = Runtime::new();
        send_static(&runtime.reached(Phase::Draining));
        send_static(&runtime.shutdown_signal());
        send_static(&runtime.phase_watch());
    }

    #[test]
    fn reached_on_a_current_thread_runtime_wakes_at_the_change() {
        let runtime = Runtime::new();
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let waiting = runtime.reached(Phase::Draining);
        let other = runtime.clone();
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            other.set_draining(true).unwrap();
        });
        let phase = tokio
            .block_on(async { tokio::time::timeout(WAIT, waiting).await })
            .expect("reached within the bound");
        assert_eq!(phase, Phase::Draining);
        setter.join().unwrap();
        // Already reached: at once.
        let again = tokio.block_on(runtime.reached(Phase::Draining));
        assert_eq!(again, Phase::Draining);
    }

    #[test]
    fn the_whole_sequence_on_a_multi_thread_runtime() {
        let runtime = Runtime::new();
        short_sequence(&runtime);
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let closing = tokio.spawn(runtime.reached(Phase::ClosingStreams));
        let stopping = tokio.spawn(runtime.shutdown_signal());
        let stopped = tokio.spawn(runtime.reached(Phase::Stopped));
        let mut watch = runtime.phase_watch();
        assert!(runtime.begin_shutdown().unwrap());
        tokio.block_on(async {
            let reached = tokio::time::timeout(WAIT, closing).await.unwrap().unwrap();
            assert!(reached >= Phase::ClosingStreams);
            tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
            assert!(runtime.phase() >= Phase::Stopping);
            let end = tokio::time::timeout(WAIT, stopped).await.unwrap().unwrap();
            assert_eq!(end, Phase::Stopped);
            // The watch follows, a moment later.
            tokio::time::timeout(WAIT, watch.wait_for(|p| *p == Phase::Stopped))
                .await
                .unwrap()
                .unwrap();
        });
    }

    #[test]
    fn dropped_futures_leave_nothing_behind() {
        let runtime = Runtime::new();
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let before = receivers(&runtime);
        tokio.block_on(async {
            for _ in 0..1000 {
                // Polled once (registered with the watch), then dropped.
                let waiting = runtime.reached(Phase::Stopped);
                assert!(tokio::time::timeout(Duration::ZERO, waiting).await.is_err());
            }
            let signals: Vec<_> = (0..100).map(|_| runtime.shutdown_signal()).collect();
            assert_eq!(receivers(&runtime), before + 100);
            drop(signals);
        });
        assert_eq!(receivers(&runtime), before);
        // One bridge, however many futures were made.
        assert!(Arc::ptr_eq(
            &bridge(runtime.core()),
            &bridge(runtime.core())
        ));
        // And the ones left still work.
        let waiting = runtime.reached(Phase::Draining);
        runtime.set_draining(true).unwrap();
        assert_eq!(tokio.block_on(waiting), Phase::Draining);
    }

    #[test]
    fn a_wait_outlives_the_testing_reset() {
        let runtime = Runtime::new();
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut watch = runtime.phase_watch();
        let waiting = tokio.spawn(runtime.reached(Phase::Draining));
        tokio.block_on(tokio::task::yield_now());
        runtime.reset_for_testing().unwrap();
        // The reset closed the old bridge; the wait moved to the new one.
        assert!(tokio.block_on(watch.changed()).is_err());
        runtime.set_draining(true).unwrap();
        let phase = tokio
            .block_on(async { tokio::time::timeout(WAIT, waiting).await })
            .unwrap()
            .unwrap();
        assert_eq!(phase, Phase::Draining);
    }

    #[test]
    fn probes_need_a_tokio_runtime_and_start_nothing_without_one() {
        let runtime = Runtime::new();
        let refused = runtime.start_probes(ProbeOptions::new("127.0.0.1:0"));
        assert!(
            matches!(refused, Err(Error::InvalidArgument(_))),
            "{refused:?}"
        );
        // Nothing was started: inside a runtime, the listener starts.
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let addr = tokio
            .block_on(async { runtime.start_probes(ProbeOptions::new("127.0.0.1:0")) })
            .unwrap();
        assert_ne!(addr.port(), 0);
        // The heartbeat task beats while the runtime runs.
        tokio.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
        let age = runtime.heartbeat_age().expect("a heartbeat was sent");
        assert!(age < Duration::from_secs(2), "{age:?}");
    }
}
