//! The `GS_*` settings as every reader in the runtime and its listeners
//! sees them: the environment, overridden by values a host sets from code
//! ([`set`]).
//!
//! A host that keeps its settings elsewhere than in the environment (a
//! Flask app's `app.config`, a Django `settings.py`, a keyword argument)
//! hands them over here, under the variable's own name, rather than
//! writing them into the environment: `setenv` in a process whose threads
//! may read the environment at the same moment is undefined behaviour in
//! C, and the Python hosts have such threads. Every reader of a `GS_*`
//! variable goes through [`var_os`], so a value set here is read, parsed
//! and refused exactly as the variable would be, and an error names the
//! variable.
//!
//! The overrides are process-wide and inherited by a forked child (a
//! gunicorn worker keeps what its master set); the lock is held across
//! `fork()` (the fork handlers), so a child never inherits it held.

use crate::fork::{self, ForkHandlers};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

/// Name -> value set from code.
static OVERRIDES: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

thread_local! {
    /// The overrides' lock, held across `fork()` by the forking thread.
    static HELD: RefCell<Option<MutexGuard<'static, BTreeMap<String, String>>>> =
        const { RefCell::new(None) };
}

fn overrides() -> MutexGuard<'static, BTreeMap<String, String>> {
    // Nothing panics while holding it; a poisoned map is still whole.
    OVERRIDES.lock().unwrap_or_else(PoisonError::into_inner)
}

fn join_fork_handlers() {
    static JOIN: Once = Once::new();
    JOIN.call_once(|| {
        fork::join(ForkHandlers {
            before: || {
                let guard = overrides();
                HELD.with(|held| *held.borrow_mut() = Some(guard));
            },
            parent: || HELD.with(|held| drop(held.borrow_mut().take())),
            child: || HELD.with(|held| drop(held.borrow_mut().take())),
        });
    });
}

/// The value of setting `name`: the one set from code, else the
/// environment variable's (`None`: neither).
pub fn var_os(name: &str) -> Option<OsString> {
    let set = overrides().get(name).cloned();
    match set {
        Some(value) => Some(OsString::from(value)),
        None => std::env::var_os(name),
    }
}

/// Sets `name` to `value` for every later read in this process, over the
/// environment (`None`: back to the environment's value). Which names
/// exist is the caller's to check (the C ABI refuses unknown ones); a
/// value is checked where it is read, as the variable's would be.
pub fn set(name: &str, value: Option<&str>) {
    join_fork_handlers();
    let mut map = overrides();
    match value {
        Some(value) => {
            map.insert(name.to_owned(), value.to_owned());
        }
        None => {
            map.remove(name);
        }
    }
}

/// The names set from code now, in order.
pub fn overridden() -> Vec<String> {
    overrides().keys().cloned().collect()
}

/// Forgets every value set from code (the testing reset).
pub fn clear() {
    overrides().clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    // nextest runs each test in a process of its own: the process-wide
    // overrides and environment are this test's.
    #[test]
    fn a_value_set_from_code_wins_over_the_environment_until_unset() {
        std::env::set_var("GS_DRAIN_DELAY_SECONDS", "4");
        assert_eq!(var_os("GS_DRAIN_DELAY_SECONDS"), Some("4".into()));
        set("GS_DRAIN_DELAY_SECONDS", Some("1.5"));
        assert_eq!(var_os("GS_DRAIN_DELAY_SECONDS"), Some("1.5".into()));
        assert_eq!(overridden(), vec!["GS_DRAIN_DELAY_SECONDS".to_owned()]);
        let config = crate::Config::from_env().unwrap();
        assert_eq!(
            config.drain_delay,
            Some(std::time::Duration::from_millis(1500))
        );
        set("GS_DRAIN_DELAY_SECONDS", None);
        assert_eq!(var_os("GS_DRAIN_DELAY_SECONDS"), Some("4".into()));
        set("GS_SHUTDOWN_TIMEOUT_SECONDS", Some("soon"));
        let error = crate::Config::from_env().unwrap_err();
        assert_eq!(error.variable, "GS_SHUTDOWN_TIMEOUT_SECONDS");
        clear();
        assert!(overridden().is_empty());
        std::env::remove_var("GS_DRAIN_DELAY_SECONDS");
    }
}
