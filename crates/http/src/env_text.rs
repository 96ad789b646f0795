//! What the runtime's listeners (the probe listener, the stream hub) read
//! from the environment in the same way (or as set from code:
//! `last_call_runtime::settings`): a `GS_*` variable's text, refused
//! by name when it is not UTF-8, and a listener's `host:port`.

use crate::config::ConfigError;
use std::net::{SocketAddr, ToSocketAddrs};

/// The text of `variable` (`None` when unset); not UTF-8 is an error
/// naming it.
pub(crate) fn text(variable: &'static str) -> Result<Option<String>, ConfigError> {
    match last_call_runtime::settings::var_os(variable) {
        None => Ok(None),
        Some(raw) => raw.into_string().map(Some).map_err(|raw| ConfigError {
            variable,
            value: raw.to_string_lossy().into_owned(),
            reason: "not valid UTF-8".into(),
        }),
    }
}

/// The text of a secret or token `variable` (`None` when unset): one
/// trailing line break is trimmed (`kubectl create secret --from-file`
/// keeps the file's), and any other white space at either end is refused
/// naming it, since it would make every request's token unequal to it
/// (`/drain` answered 401 to everything, with no warning).
pub(crate) fn secret(variable: &'static str) -> Result<Option<String>, ConfigError> {
    let Some(mut value) = text(variable)? else {
        return Ok(None);
    };
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.trim() != value {
        return Err(ConfigError {
            variable,
            value: format!("<{} bytes>", value.len()),
            reason: "begins or ends with white space (one trailing line break is trimmed, no more)"
                .into(),
        });
    }
    Ok(Some(value))
}

/// `addr` (`host:port`, port 0 for a free one) resolved to the address to
/// bind; a malformed one is an error naming `variable`.
pub(crate) fn listen_addr(variable: &'static str, addr: &str) -> Result<SocketAddr, ConfigError> {
    let error = |reason: String| ConfigError {
        variable,
        value: addr.to_owned(),
        reason,
    };
    if !addr.contains(':') {
        return Err(error(
            "expected host:port, such as 0.0.0.0:8081 or 127.0.0.1:0".into(),
        ));
    }
    addr.to_socket_addrs()
        .map_err(|e| error(format!("not an address: {e}")))?
        .next()
        .ok_or_else(|| error("the host resolves to no address".into()))
}
