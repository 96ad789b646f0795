//! Work the pod waits for beside its streams: a task that publishes to a
//! hub channel, a job a stream reports on. It is counted apart from the
//! streams (`gs_active_work`, not `gs_active_streams`), and the shutdown
//! sequence waits for both: after a hand-off through the shared store a
//! pod may hold no stream at all while its tasks still publish, and it must
//! not run its hooks and exit under them.
//!
//! The count is a second [`StreamCounter`](crate::StreamCounter), so a
//! begin and an end are one atomic add each, as for streams, and the
//! sequence is woken by the last end, never by polling.

use crate::clock::Mono;
use crate::error::Error;
use crate::reconnect_spread::StreamKind;
use crate::runtime::{Inner, Runtime};

impl Runtime {
    /// Counts one piece of work until the returned guard is dropped: the
    /// shutdown sequence waits for it as for a stream (until the hooks'
    /// budget begins). [`WorkGuard::end_in`] says when work bound to this
    /// pod should stop: at the streams' last moment, when a pod-bound
    /// stream gets its final event.
    ///
    /// ```
    /// let runtime = last_call_runtime::Runtime::new();
    /// {
    ///     let _task = runtime.begin_work().unwrap();
    ///     assert_eq!(runtime.active_work(), 1);
    ///     assert_eq!(runtime.active_streams(), 0);
    /// }
    /// assert_eq!(runtime.active_work(), 0);
    /// ```
    #[inline]
    pub fn begin_work(&self) -> Result<WorkGuard<'_>, Error> {
        self.inner.work.begin()?;
        self.in_pod_figures(crate::pod_figures::work_began);
        Ok(WorkGuard { runtime: self })
    }

    /// Counts one more piece of work (pair it with [`Runtime::end_work`];
    /// prefer [`Runtime::begin_work`]).
    #[inline]
    pub fn increment_active_work(&self) -> Result<(), Error> {
        self.inner.work.begin()?;
        self.in_pod_figures(crate::pod_figures::work_began);
        Ok(())
    }

    /// Counts one piece of work as done. Without a matching increment this
    /// is an error and the count stays at zero.
    #[inline]
    pub fn end_work(&self) -> Result<(), Error> {
        self.inner.work.end()?;
        self.in_pod_figures(crate::pod_figures::work_ended);
        Ok(())
    }

    /// Work counted now.
    #[inline]
    pub fn active_work(&self) -> u32 {
        self.inner.work.active()
    }

    /// Work begun since start.
    pub fn work_started_total(&self) -> u64 {
        self.inner.work.started_total()
    }
}

impl Inner {
    /// Waits until no stream and no work is counted at one moment, or until
    /// `deadline`. Each turn blocks until a count reaches zero, so the loop
    /// turns only when a stream or a piece of work began meanwhile.
    pub(crate) fn wait_idle_until(&self, deadline: Mono) -> bool {
        loop {
            if !self.streams.wait_for_zero_until(deadline)
                || !self.work.wait_for_zero_until(deadline)
            {
                return false;
            }
            if self.streams.active() == 0 {
                return true;
            }
        }
    }
}

/// Counts one piece of work while it lives (see [`Runtime::begin_work`]).
#[must_use = "the work ends as soon as the guard is dropped"]
#[derive(Debug)]
pub struct WorkGuard<'a> {
    runtime: &'a Runtime,
}

impl WorkGuard<'_> {
    /// `None` while the work may go on; once ClosingStreams has begun, the
    /// time left until the streams' last moment, when work bound to this
    /// pod should stop and say so to its streams.
    pub fn end_in(&self) -> Option<std::time::Duration> {
        self.runtime.reconnect_delay(StreamKind::PodBound)
    }
}

impl Drop for WorkGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.runtime.inner.work.end().is_ok() {
            self.runtime.in_pod_figures(crate::pod_figures::work_ended);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Phase, Runtime};
    use std::time::Duration;

    #[test]
    fn work_is_counted_apart_from_streams() {
        let runtime = Runtime::new();
        let work = runtime.begin_work().unwrap();
        let stream = runtime.begin_stream().unwrap();
        assert_eq!((runtime.active_work(), runtime.active_streams()), (1, 1));
        drop(stream);
        assert_eq!((runtime.active_work(), runtime.active_streams()), (1, 0));
        drop(work);
        assert_eq!(runtime.active_work(), 0);
        assert_eq!(runtime.work_started_total(), 1);
        assert!(
            runtime.end_work().is_err(),
            "an end without a begin is refused"
        );
        assert_eq!(runtime.active_work(), 0);
    }

    #[test]
    fn the_sequence_waits_for_work_with_no_stream_open() {
        let runtime = Runtime::new();
        runtime
            .configure(Config::millis(0, 20_000, 5_000, 1_000))
            .unwrap();
        let work = runtime.begin_work().unwrap();
        runtime.begin_shutdown().unwrap();
        // No stream is open, yet the pod holds on while its work runs.
        assert!(runtime
            .wait_for_phase(Phase::Stopping, Some(Duration::from_millis(500)))
            .is_err());
        assert_eq!(runtime.phase(), Phase::Draining);
        drop(work);
        runtime
            .wait_for_phase(Phase::Stopped, Some(Duration::from_secs(10)))
            .unwrap();
    }
}
