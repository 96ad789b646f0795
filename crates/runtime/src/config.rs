//! Shutdown timings, set from code or defaulted from `GS_*` environment
//! variables so that operators tune them from the Deployment manifest.
//!
//! A malformed value is an error that names the variable, never a silent
//! default: a typo in a manifest should stop the pod at start-up, not cut
//! streams at the next rollout.

use crate::seconds;
use std::time::Duration;

/// What a second SIGTERM/SIGINT does once the shutdown sequence has started.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecondSignal {
    /// A second SIGINT (Ctrl-C) exits at once; a second SIGTERM is ignored
    /// (the kubelet does not send one, but tools that retry might).
    #[default]
    SigintExits = 0,
    /// Both are ignored: only the sequence (or SIGKILL) ends the process.
    Ignore = 1,
    /// Both exit at once, with status 128 + the signal number.
    Exit = 2,
}

/// The shutdown timings. See the tables of `docs/configuration.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Keep serving this long after the signal before streams may be
    /// declared done (`GS_DRAIN_DELAY_SECONDS`): endpoint removal is
    /// asynchronous, so load balancers still send requests. `None`: the
    /// default, [`DEFAULT_DRAIN_DELAY`] at most a fifth of the timeout.
    pub drain_delay: Option<Duration>,
    /// From the signal to Stopped, at most (`GS_SHUTDOWN_TIMEOUT_SECONDS`,
    /// default 25 s, inside Kubernetes' default 30 s grace period).
    pub shutdown_timeout: Duration,
    /// Streams still open this long before the hooks' budget begins are
    /// asked to finish (`GS_CLOSE_NOTICE_SECONDS`). `None`: the default,
    /// [`DEFAULT_CLOSE_NOTICE`] at most a fifth of the timeout (and at most
    /// what an explicit hook budget leaves).
    pub close_notice: Option<Duration>,
    /// The last part of the shutdown timeout, kept for the shutdown hooks
    /// when at least one is registered: the sequence stops waiting for
    /// streams this long before the deadline (`GS_HOOK_BUDGET_SECONDS`).
    /// `None`: the default, [`DEFAULT_HOOK_BUDGET`] at most a quarter of the
    /// timeout (and at most what the close notice leaves).
    pub hook_budget: Option<Duration>,
    /// What a second signal does (`GS_SECOND_SIGNAL`: `ignore` or `exit`).
    pub second_signal: SecondSignal,
    /// End the process if it is still running this long after Stopped, or
    /// this long after the deadline if Stopped never came
    /// (`GS_EXIT_WATCHDOG_SECONDS`, default 3 s; `None`/0 disables). Armed
    /// by installing the signal handlers or by `Runtime::arm_exit_watchdog`.
    pub exit_watchdog: Option<Duration>,
    /// The exit status the watchdog ends the process with
    /// (`GS_EXIT_WATCHDOG_STATUS`, default 70, 1 to 255): not 0, so that a
    /// wedged host never looks like a clean exit.
    pub exit_watchdog_status: u8,
    /// Whether SIGINT starts the sequence too (default true).
    pub handle_sigint: bool,
}

/// Environment variable names.
pub mod env {
    /// Drain delay, in seconds.
    pub const DRAIN_DELAY: &str = "GS_DRAIN_DELAY_SECONDS";
    /// Total shutdown budget, in seconds.
    pub const SHUTDOWN_TIMEOUT: &str = "GS_SHUTDOWN_TIMEOUT_SECONDS";
    /// Close notice, in seconds.
    pub const CLOSE_NOTICE: &str = "GS_CLOSE_NOTICE_SECONDS";
    /// Second-signal policy: `ignore` or `exit`.
    pub const SECOND_SIGNAL: &str = "GS_SECOND_SIGNAL";
    /// Exit watchdog, in seconds (0 disables).
    pub const EXIT_WATCHDOG: &str = "GS_EXIT_WATCHDOG_SECONDS";
    /// The watchdog's exit status, 1 to 255.
    pub const EXIT_WATCHDOG_STATUS: &str = "GS_EXIT_WATCHDOG_STATUS";
    /// The shutdown hooks' budget, in seconds.
    pub const HOOK_BUDGET: &str = "GS_HOOK_BUDGET_SECONDS";
    /// The shutdown log on stderr: `1`/`0` (also `true`/`false`,
    /// `on`/`off`, `yes`/`no`); when set, it wins over the host's default
    /// (see `shutdown_log.rs`).
    pub const SHUTDOWN_LOG: &str = "GS_SHUTDOWN_LOG";
    /// Every variable the sequence's configuration reads.
    pub const ALL: [&str; 8] = [
        DRAIN_DELAY,
        SHUTDOWN_TIMEOUT,
        CLOSE_NOTICE,
        HOOK_BUDGET,
        SECOND_SIGNAL,
        EXIT_WATCHDOG,
        EXIT_WATCHDOG_STATUS,
        SHUTDOWN_LOG,
    ];
}

/// The drain delay when none is set, for a timeout of 25 s or more.
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::from_secs(5);
/// The close notice when none is set, for a timeout of 25 s or more.
pub const DEFAULT_CLOSE_NOTICE: Duration = Duration::from_secs(5);
/// The hooks' budget when none is set, for a timeout of 12 s or more.
pub const DEFAULT_HOOK_BUDGET: Duration = Duration::from_secs(3);

/// The durations of a [`Config`] with every default resolved against its
/// timeout: what the shutdown sequence runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// The drain delay.
    pub drain_delay: Duration,
    /// The shutdown timeout.
    pub shutdown_timeout: Duration,
    /// The close notice.
    pub close_notice: Duration,
    /// The hooks' budget (used only when a hook is registered).
    pub hook_budget: Duration,
}

/// The watchdog's default exit status: `EX_SOFTWARE` from sysexits.h
/// ("internal software error"), distinct from 0 and from 128 + a signal.
pub const DEFAULT_EXIT_WATCHDOG_STATUS: u8 = 70;

impl Default for Config {
    fn default() -> Self {
        Self {
            drain_delay: None,
            shutdown_timeout: Duration::from_secs(25),
            close_notice: None,
            hook_budget: None,
            second_signal: SecondSignal::SigintExits,
            exit_watchdog: Some(Duration::from_secs(3)),
            exit_watchdog_status: DEFAULT_EXIT_WATCHDOG_STATUS,
            handle_sigint: true,
        }
    }
}

/// A malformed configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable (or, for values set from code, the
    /// variable that would have set it).
    pub variable: &'static str,
    /// The value as given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid {}={:?}: {}",
            self.variable, self.value, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

fn seconds(variable: &'static str, text: &str) -> Result<Duration, ConfigError> {
    let error = |reason: &str| ConfigError {
        variable,
        value: text.to_owned(),
        reason: reason.to_owned(),
    };
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| error("expected a number of seconds, such as 5 or 0.5"))?;
    duration_from_secs(variable, value).map_err(|mut e| {
        e.value = text.to_owned();
        e
    })
}

/// Checks one configuration duration given in seconds, by the crate's one
/// rule (`seconds.rs`): NaN and negative values are errors, infinity means
/// no limit.
pub fn duration_from_secs(variable: &'static str, value: f64) -> Result<Duration, ConfigError> {
    seconds::config_from_secs(value).map_err(|bad| ConfigError {
        variable,
        value: value.to_string(),
        reason: bad.reason().to_owned(),
    })
}

/// An on/off setting: `1`, `true`, `on`, `yes` or `0`, `false`, `off`, `no`
/// (any case, spaces around ignored).
pub fn switch(variable: &'static str, text: &str) -> Result<bool, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(ConfigError {
            variable,
            value: text.to_owned(),
            reason: "expected 1 or 0 (or true/false, on/off, yes/no)".to_owned(),
        }),
    }
}

/// `GS_SHUTDOWN_LOG` as the environment sets it: `None` when unset (the
/// host's default applies), an error naming it when malformed.
pub fn shutdown_log_from_env() -> Result<Option<bool>, ConfigError> {
    match crate::settings::var_os(env::SHUTDOWN_LOG) {
        None => Ok(None),
        Some(raw) => match raw.to_str() {
            Some(text) => switch(env::SHUTDOWN_LOG, text).map(Some),
            None => Err(ConfigError {
                variable: env::SHUTDOWN_LOG,
                value: raw.to_string_lossy().into_owned(),
                reason: "not valid UTF-8".to_owned(),
            }),
        },
    }
}

/// Checks the watchdog's exit status: 1 to 255.
pub fn exit_status(variable: &'static str, value: i64) -> Result<u8, ConfigError> {
    u8::try_from(value)
        .ok()
        .filter(|status| *status != 0)
        .ok_or_else(|| ConfigError {
            variable,
            value: value.to_string(),
            reason: "expected an exit status from 1 to 255 (0 would look like a clean exit)"
                .to_owned(),
        })
}

impl Config {
    /// The defaults, overridden by every `GS_*` variable that is set (or
    /// set from code: [`crate::settings`]).
    pub fn from_env() -> Result<Config, ConfigError> {
        let mut values = Vec::with_capacity(env::ALL.len());
        for variable in env::ALL {
            if let Some(raw) = crate::settings::var_os(variable) {
                let Some(text) = raw.to_str() else {
                    return Err(ConfigError {
                        variable,
                        value: raw.to_string_lossy().into_owned(),
                        reason: "not valid UTF-8".to_owned(),
                    });
                };
                values.push((variable, text.to_owned()));
            }
        }
        Config::from_lookup(|name| {
            values
                .iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, text)| text.clone())
        })
    }

    /// Like [`Config::from_env`], reading variables through `lookup`
    /// (for tests and hosts that keep their settings elsewhere).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some(text) = lookup(env::DRAIN_DELAY) {
            config.drain_delay = Some(seconds(env::DRAIN_DELAY, &text)?);
        }
        if let Some(text) = lookup(env::SHUTDOWN_TIMEOUT) {
            config.shutdown_timeout = seconds(env::SHUTDOWN_TIMEOUT, &text)?;
        }
        if let Some(text) = lookup(env::CLOSE_NOTICE) {
            config.close_notice = Some(seconds(env::CLOSE_NOTICE, &text)?);
        }
        if let Some(text) = lookup(env::HOOK_BUDGET) {
            config.hook_budget = Some(seconds(env::HOOK_BUDGET, &text)?);
        }
        if let Some(text) = lookup(env::EXIT_WATCHDOG) {
            let watchdog = seconds(env::EXIT_WATCHDOG, &text)?;
            config.exit_watchdog = (!watchdog.is_zero()).then_some(watchdog);
        }
        if let Some(text) = lookup(env::EXIT_WATCHDOG_STATUS) {
            let status = text.trim().parse::<i64>().map_err(|_| ConfigError {
                variable: env::EXIT_WATCHDOG_STATUS,
                value: text.clone(),
                reason: "expected a whole number from 1 to 255".to_owned(),
            })?;
            config.exit_watchdog_status = exit_status(env::EXIT_WATCHDOG_STATUS, status)?;
        }
        // Not part of the timings (the runtime keeps it, see
        // `shutdown_log.rs`): checked here so that a typo stops the host
        // where it starts.
        if let Some(text) = lookup(env::SHUTDOWN_LOG) {
            switch(env::SHUTDOWN_LOG, &text)?;
        }
        if let Some(text) = lookup(env::SECOND_SIGNAL) {
            config.second_signal = match text.trim().to_ascii_lowercase().as_str() {
                "ignore" => SecondSignal::Ignore,
                "exit" => SecondSignal::Exit,
                _ => {
                    return Err(ConfigError {
                        variable: env::SECOND_SIGNAL,
                        value: text,
                        reason: "expected `ignore` or `exit`".to_owned(),
                    })
                }
            };
        }
        config.validate()?;
        Ok(config)
    }

    /// The durations with every default resolved against the timeout `T`:
    /// the drain delay and the close notice default to 5 s, at most `T / 5`;
    /// the hooks' budget to 3 s, at most `T / 4`; a default never takes
    /// more than what the explicit values leave, so that no default can
    /// turn a valid setting into an invalid one. (With the default 25 s
    /// timeout: 5, 5 and 3 s.)
    pub fn timings(&self) -> Timings {
        let timeout = self.shutdown_timeout;
        let close_notice = self.close_notice.unwrap_or_else(|| {
            DEFAULT_CLOSE_NOTICE
                .min(timeout / 5)
                .min(timeout.saturating_sub(self.hook_budget.unwrap_or_default()))
        });
        let hook_budget = self.hook_budget.unwrap_or_else(|| {
            DEFAULT_HOOK_BUDGET
                .min(timeout / 4)
                .min(timeout.saturating_sub(close_notice))
        });
        Timings {
            drain_delay: self
                .drain_delay
                .unwrap_or_else(|| DEFAULT_DRAIN_DELAY.min(timeout / 5)),
            shutdown_timeout: timeout,
            close_notice,
            hook_budget,
        }
    }

    /// Checks the relations between the durations set explicitly: the
    /// drain delay fits the timeout, and so do the close notice and the
    /// hooks' budget together. (Defaults always fit; see
    /// [`Config::timings`].)
    pub fn validate(&self) -> Result<(), ConfigError> {
        let timings = self.timings();
        let too_long = |variable: &'static str, value: Duration, what: &str| ConfigError {
            variable,
            value: seconds::config_to_secs(value).to_string(),
            reason: format!(
                "{what} is longer than {} ({} s)",
                env::SHUTDOWN_TIMEOUT,
                seconds::config_to_secs(self.shutdown_timeout)
            ),
        };
        if timings.hook_budget > self.shutdown_timeout {
            return Err(too_long(
                env::HOOK_BUDGET,
                timings.hook_budget,
                "the hooks' budget",
            ));
        }
        if timings.close_notice.saturating_add(timings.hook_budget) > self.shutdown_timeout {
            // Both cannot be defaults (those fit by construction): name the
            // one that was set, the close notice when both were.
            let (variable, value, what) = if self.close_notice.is_some() {
                (
                    env::CLOSE_NOTICE,
                    timings.close_notice,
                    format!("the close notice plus {}", env::HOOK_BUDGET),
                )
            } else {
                (
                    env::HOOK_BUDGET,
                    timings.hook_budget,
                    format!("the hooks' budget plus {}", env::CLOSE_NOTICE),
                )
            };
            return Err(too_long(variable, value, &what));
        }
        if timings.drain_delay > self.shutdown_timeout {
            return Err(too_long(
                env::DRAIN_DELAY,
                timings.drain_delay,
                "the drain delay",
            ));
        }
        if self.exit_watchdog_status == 0 {
            return Err(exit_status(env::EXIT_WATCHDOG_STATUS, 0).unwrap_err());
        }
        Ok(())
    }

    /// The longest the process can take from the signal to its exit: the
    /// shutdown timeout plus the exit watchdog. Must be below the pod's
    /// `terminationGracePeriodSeconds`.
    pub fn worst_case_exit(&self) -> Duration {
        self.shutdown_timeout
            .saturating_add(self.exit_watchdog.unwrap_or_default())
    }
}

#[cfg(test)]
impl Config {
    /// The sequence's durations in milliseconds, the rest by default: for
    /// the crate's unit tests.
    pub(crate) fn millis(drain: u64, timeout: u64, notice: u64, hooks: u64) -> Config {
        Config {
            drain_delay: Some(Duration::from_millis(drain)),
            shutdown_timeout: Duration::from_millis(timeout),
            close_notice: Some(Duration::from_millis(notice)),
            hook_budget: Some(Duration::from_millis(hooks)),
            ..Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_fit_the_default_grace_period() {
        let config = from(&[]).unwrap();
        assert_eq!(config, Config::default());
        assert!(config.worst_case_exit() < Duration::from_secs(30));
    }

    #[test]
    fn every_variable_is_read() {
        let config = from(&[
            (env::DRAIN_DELAY, "0.5"),
            (env::SHUTDOWN_TIMEOUT, "10"),
            (env::CLOSE_NOTICE, " 2 "),
            (env::SECOND_SIGNAL, "Exit"),
            (env::EXIT_WATCHDOG, "0"),
            (env::HOOK_BUDGET, "1.5"),
            (env::EXIT_WATCHDOG_STATUS, "3"),
        ])
        .unwrap();
        assert_eq!(config.hook_budget, Some(Duration::from_millis(1500)));
        assert_eq!(config.exit_watchdog_status, 3);
        assert_eq!(config.drain_delay, Some(Duration::from_millis(500)));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(config.close_notice, Some(Duration::from_secs(2)));
        assert_eq!(config.second_signal, SecondSignal::Exit);
        assert_eq!(config.exit_watchdog, None);
        assert_eq!(
            from(&[(env::SECOND_SIGNAL, "ignore")])
                .unwrap()
                .second_signal,
            SecondSignal::Ignore
        );
    }

    #[test]
    fn malformed_values_name_their_variable() {
        for (variable, value) in [
            (env::DRAIN_DELAY, "five"),
            (env::DRAIN_DELAY, "-1"),
            (env::SHUTDOWN_TIMEOUT, "NaN"),
            (env::SHUTDOWN_TIMEOUT, "-inf"),
            (env::HOOK_BUDGET, "soon"),
            (env::EXIT_WATCHDOG_STATUS, "0"),
            (env::EXIT_WATCHDOG_STATUS, "256"),
            (env::EXIT_WATCHDOG_STATUS, "-1"),
            (env::EXIT_WATCHDOG_STATUS, "1.5"),
            (env::CLOSE_NOTICE, ""),
            (env::EXIT_WATCHDOG, "-0.1"),
            (env::SECOND_SIGNAL, "sometimes"),
        ] {
            let error = from(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable, "{value:?}");
            assert!(error.to_string().contains(variable), "{error}");
        }
    }

    #[test]
    fn a_close_notice_longer_than_the_timeout_is_rejected() {
        let error = from(&[(env::SHUTDOWN_TIMEOUT, "3"), (env::CLOSE_NOTICE, "4")]).unwrap_err();
        assert_eq!(error.variable, env::CLOSE_NOTICE);
        assert!(error.to_string().contains(env::SHUTDOWN_TIMEOUT));
        let error = from(&[
            (env::SHUTDOWN_TIMEOUT, "3"),
            (env::DRAIN_DELAY, "4"),
            (env::CLOSE_NOTICE, "1"),
            (env::HOOK_BUDGET, "1"),
        ])
        .unwrap_err();
        assert_eq!(error.variable, env::DRAIN_DELAY);
    }

    #[test]
    fn infinity_means_no_limit_as_for_every_wait() {
        let config = from(&[(env::SHUTDOWN_TIMEOUT, "inf"), (env::EXIT_WATCHDOG, "inf")]).unwrap();
        assert_eq!(config.shutdown_timeout, Duration::MAX);
        assert_eq!(config.exit_watchdog, Some(Duration::MAX));
        assert_eq!(config.worst_case_exit(), Duration::MAX);
    }

    #[test]
    fn the_hooks_budget_and_the_close_notice_must_fit_the_timeout_together() {
        let error = from(&[
            (env::SHUTDOWN_TIMEOUT, "6"),
            (env::CLOSE_NOTICE, "4"),
            (env::HOOK_BUDGET, "3"),
        ])
        .unwrap_err();
        assert_eq!(error.variable, env::CLOSE_NOTICE);
        assert!(error.to_string().contains(env::HOOK_BUDGET), "{error}");
        let error = from(&[(env::SHUTDOWN_TIMEOUT, "2"), (env::HOOK_BUDGET, "3")]).unwrap_err();
        assert_eq!(error.variable, env::HOOK_BUDGET);
        assert!(from(&[
            (env::SHUTDOWN_TIMEOUT, "6"),
            (env::CLOSE_NOTICE, "3"),
            (env::HOOK_BUDGET, "3"),
        ])
        .is_ok());
    }

    #[test]
    fn no_default_refuses_a_timeout_of_a_second_or_more() {
        for timeout in [
            "1", "1.2", "2", "3", "4", "7.5", "10", "25", "60", "120", "inf",
        ] {
            let config = from(&[(env::SHUTDOWN_TIMEOUT, timeout)]).unwrap();
            let timings = config.timings();
            assert!(timings.drain_delay <= timings.shutdown_timeout, "{timeout}");
            assert!(
                timings.close_notice + timings.hook_budget <= timings.shutdown_timeout,
                "{timeout}"
            );
            // Any one of the three set alone, to any value that fits by
            // itself, leaves the defaults of the others fitting too.
            for variable in [env::CLOSE_NOTICE, env::HOOK_BUDGET, env::DRAIN_DELAY] {
                let all = timings.shutdown_timeout.as_secs_f64().min(1e6).to_string();
                assert!(
                    from(&[(env::SHUTDOWN_TIMEOUT, timeout), (variable, &all)]).is_ok(),
                    "{variable}={all} with timeout {timeout}"
                );
            }
        }
        // The case: timeout 3 s and a 1 s notice, nothing else set.
        assert!(from(&[(env::SHUTDOWN_TIMEOUT, "3"), (env::CLOSE_NOTICE, "1")]).is_ok());
    }

    #[test]
    fn an_explicit_budget_that_does_not_fit_names_both_variables() {
        let error = from(&[
            (env::SHUTDOWN_TIMEOUT, "4"),
            (env::HOOK_BUDGET, "3"),
            (env::CLOSE_NOTICE, "2"),
        ])
        .unwrap_err();
        assert_eq!(error.variable, env::CLOSE_NOTICE);
        assert!(error.to_string().contains(env::HOOK_BUDGET), "{error}");
    }

    #[test]
    fn a_value_that_is_not_utf8_is_refused_with_its_name() {
        use std::os::unix::ffi::OsStrExt;
        // nextest runs each test in a process of its own.
        std::env::set_var(env::DRAIN_DELAY, std::ffi::OsStr::from_bytes(b"\xff5"));
        let error = Config::from_env().unwrap_err();
        std::env::remove_var(env::DRAIN_DELAY);
        assert_eq!(error.variable, env::DRAIN_DELAY);
        assert!(error.to_string().contains("UTF-8"), "{error}");
    }
}
