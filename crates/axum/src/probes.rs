//! The probe listener and the heartbeat from the host's tokio runtime, in
//! one call: the heartbeat is a task, so it stops when the runtime stops
//! scheduling tasks, and `/healthz` goes stale.

use last_call_http::{ProbeOptions, Runtime};
use last_call_runtime::Error;
use std::net::SocketAddr;
use std::time::Duration;

/// Beats per staleness period: a late tick or two never reads as stale.
const BEATS_PER_PERIOD: u32 = 4;
/// The most time between beats, however long the staleness.
const MAX_BEAT_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) fn start(runtime: &Runtime, options: ProbeOptions) -> Result<SocketAddr, Error> {
    // Checked first: nothing is started outside a tokio runtime.
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        Error::InvalidArgument("start_probes needs a tokio runtime (call it from async code)")
    })?;
    let every = (options.heartbeat_stale_after / BEATS_PER_PERIOD)
        .min(MAX_BEAT_INTERVAL)
        .max(Duration::from_millis(1));
    let addr = runtime.start_probe_listener(options)?;
    let runtime = runtime.clone();
    // A first beat now: `/healthz` is live from the start.
    runtime.heartbeat();
    handle.spawn(async move {
        let mut ticks = tokio::time::interval(every);
        // A late runtime beats once when it is back, not in a burst.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            runtime.heartbeat();
        }
    });
    Ok(addr)
}
