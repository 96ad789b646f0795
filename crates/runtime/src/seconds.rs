//! The one rule that turns a number of seconds from a host (a C `double`, a
//! Python float) or from a `GS_*` variable into a duration:
//!
//! * NaN and negative values are errors;
//! * `+infinity`, and anything too large for a [`Duration`], means **no
//!   limit** (`None`);
//! * everything else is that many seconds.
//!
//! Waits take the `Option` as it is. Configuration durations store "no
//! limit" as [`Duration::MAX`], which every deadline computation saturates
//! to "never" (see `clock::Mono`).

use std::time::Duration;

/// Why a number of seconds was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadSeconds {
    NotANumber,
    Negative,
}

impl BadSeconds {
    pub fn reason(self) -> &'static str {
        match self {
            BadSeconds::NotANumber => "not a number",
            BadSeconds::Negative => "must not be negative",
        }
    }
}

/// Seconds to a duration; `Ok(None)` means no limit.
pub fn from_secs(seconds: f64) -> Result<Option<Duration>, BadSeconds> {
    if seconds.is_nan() {
        return Err(BadSeconds::NotANumber);
    }
    if seconds < 0.0 {
        return Err(BadSeconds::Negative);
    }
    Ok(Duration::try_from_secs_f64(seconds).ok())
}

/// Seconds to a configuration duration: no limit is [`Duration::MAX`].
pub fn config_from_secs(seconds: f64) -> Result<Duration, BadSeconds> {
    from_secs(seconds).map(|d| d.unwrap_or(Duration::MAX))
}

/// A configuration duration back to seconds: [`Duration::MAX`] is infinity.
pub fn config_to_secs(duration: Duration) -> f64 {
    if duration == Duration::MAX {
        f64::INFINITY
    } else {
        duration.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_number_of_seconds() {
        assert_eq!(from_secs(1.5), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(from_secs(0.0), Ok(Some(Duration::ZERO)));
        assert_eq!(from_secs(f64::INFINITY), Ok(None));
        assert_eq!(from_secs(1e300), Ok(None));
        assert_eq!(from_secs(-0.5), Err(BadSeconds::Negative));
        assert_eq!(from_secs(f64::NEG_INFINITY), Err(BadSeconds::Negative));
        assert_eq!(from_secs(f64::NAN), Err(BadSeconds::NotANumber));
        assert_eq!(config_from_secs(f64::INFINITY), Ok(Duration::MAX));
        assert_eq!(config_to_secs(Duration::MAX), f64::INFINITY);
        assert_eq!(config_to_secs(Duration::from_millis(250)), 0.25);
    }
}
