//! The exit watchdog: the last line of defence against a host that cannot
//! exit.
//!
//! Armed by installing the signal handlers (or `Runtime::arm_exit_watchdog`),
//! it runs on a thread of its own that does nothing but wait on the phase
//! word with a timeout, so no listener, hook or stuck sequence can delay it.
//! Once the shutdown sequence has started it fires at
//!
//! * `Stopped + exit_watchdog`, if Stopped came (the host did not exit);
//! * `start + shutdown_timeout + exit_watchdog` otherwise (something
//!   stalled the sequence itself),
//!
//! whichever is earlier, and then prints one line to stderr saying what was
//! still running (the phase, the active streams, the hooks still running,
//! the listener being called) and ends the process with `_exit` and the
//! configured status (`GS_EXIT_WATCHDOG_STATUS`, default 70): not 0, so that
//! the pod's last state shows that the process did not end by itself.
//! The line is written without waiting ([`crate::log`]): a stderr that
//! cannot take it at once loses it, and the process ends all the same.

use crate::clock::Mono;
use crate::config::Config;
use crate::phase::Phase;
use crate::runtime::Inner;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

/// What an armed watchdog needs, recorded when it is armed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arming {
    pub(crate) pid: i32,
    pub(crate) after: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) status: u8,
}

impl Arming {
    /// `None` when the configuration disables the watchdog.
    pub(crate) fn from_config(config: &Config) -> Option<Arming> {
        Some(Arming {
            pid: std::process::id() as i32,
            after: config.exit_watchdog?,
            shutdown_timeout: config.shutdown_timeout,
            status: config.exit_watchdog_status,
        })
    }
}

/// The watchdog thread's body.
pub(crate) fn watchdog_thread(inner: Arc<Inner>) {
    loop {
        let word = inner.phase.load();
        let arming = inner.watchdog_arming();
        let Some(arming) = arming.filter(|a| a.pid == std::process::id() as i32) else {
            inner.phase.wait_for_change(word, None);
            continue;
        };
        let Some(started) = inner
            .phase
            .sequence_started_at()
            .filter(|_| word.sequence_started())
        else {
            inner.phase.wait_for_change(word, None);
            continue;
        };
        watch(&inner, arming, started.mono);
    }
}

/// Waits for the fire time of the sequence that started at `started`;
/// returns if the testing reset ends it first.
fn watch(inner: &Inner, arming: Arming, started: Mono) {
    let generation = inner.generation();
    let latest = started.after(arming.shutdown_timeout).after(arming.after);
    loop {
        let word = inner.phase.load();
        if !inner.is_generation(generation) || !word.sequence_started() {
            return;
        }
        let fire_at = match inner.phase.entered_at(Phase::Stopped) {
            Some(stopped) if word.phase() == Phase::Stopped => {
                latest.min(stopped.mono.after(arming.after))
            }
            _ => latest,
        };
        if fire_at.has_passed() {
            fire(inner, arming, started);
        }
        inner.phase.wait_for_change(word, fire_at.left());
    }
}

fn fire(inner: &Inner, arming: Arming, started: Mono) -> ! {
    let mut line = String::with_capacity(256);
    let _ = write!(
        line,
        "exit watchdog: the process is still running {:.1} s after the shutdown began; \
         phase {}, {} active stream(s)",
        started.until(Mono::now()).as_secs_f64(),
        inner.phase.phase(),
        inner.streams.active(),
    );
    // try_lock: the watchdog never waits for anything.
    match inner.shared.try_lock() {
        Ok(shared) => {
            for hook in &shared.hooks.running {
                let _ = write!(
                    line,
                    ", hook {:?} running for {:.1} s",
                    hook.name,
                    hook.since.until(Mono::now()).as_secs_f64()
                );
            }
        }
        Err(_) => line.push_str(", hooks unknown (registry busy)"),
    }
    let in_flight = inner.delivery.in_flight();
    if in_flight != 0 {
        let _ = write!(line, ", phase callback #{in_flight} still running");
    }
    let _ = write!(line, "; exiting with status {}", arming.status);
    // One non-blocking attempt: a stderr that nobody reads (or that has no
    // reader) must not keep the process from ending.
    crate::log::write_line_now(format_args!("{line}"));
    // SAFETY: _exit ends the process at once, without atexit handlers or
    // destructors: something in the host is stuck, and those could be too.
    unsafe { libc::_exit(i32::from(arming.status)) }
}
