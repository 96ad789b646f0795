//! `GS_STREAM_STORE`: where the hub's channels live.
//!
//! ```text
//! (unset) or memory:                      the in-process store (one pod)
//! redis://[user:password@]host:port[/db]  one Redis server
//! rediss://...                            the same over TLS
//! redis+cluster://[user:password@]h1:p1,h2:p2,...
//!                                         a Redis Cluster, named by seed nodes
//! rediss+cluster://...                    the same over TLS
//! ```
//!
//! A malformed value is an error that names the variable (and never shows
//! the password); an unreachable server is not: the hub starts degraded and
//! connects when it can. TLS's files are other variables ([`crate::tls`]).

use std::fmt;

/// The environment variable.
pub const STREAM_STORE: &str = "GS_STREAM_STORE";

/// A parsed `GS_STREAM_STORE`.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The in-process store.
    Memory,
    /// One Redis server: the URL as redis-rs takes it.
    Redis(String),
    /// A Redis Cluster: one `redis://` (or `rediss://`) URL per seed node.
    Cluster(Vec<String>),
}

/// A malformed `GS_STREAM_STORE`, or a TLS file of the store's that is
/// missing or malformed: the variable, its value, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfigError {
    /// The variable: `GS_STREAM_STORE` or one of [`crate::tls`]'s.
    pub variable: &'static str,
    /// The value with any password replaced by `***`.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for StoreConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: {}",
            self.variable, self.value, self.reason
        )
    }
}

impl std::error::Error for StoreConfigError {}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl StoreUrl {
    /// Reads `GS_STREAM_STORE`: unset is [`StoreUrl::Memory`].
    pub fn from_env() -> Result<StoreUrl, StoreConfigError> {
        StoreUrl::from_lookup(|name| std::env::var_os(name))
    }

    /// Like [`StoreUrl::from_env`], reading the variable through `lookup`
    /// (a host's settings set from code over the environment).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<StoreUrl, StoreConfigError> {
        match lookup(STREAM_STORE) {
            None => Ok(StoreUrl::Memory),
            Some(raw) => match raw.to_str() {
                Some(text) => StoreUrl::parse(text),
                None => Err(StoreConfigError {
                    variable: STREAM_STORE,
                    value: redact(&raw.to_string_lossy()),
                    reason: "not valid UTF-8".into(),
                }),
            },
        }
    }

    /// Parses a `GS_STREAM_STORE` value.
    pub fn parse(text: &str) -> Result<StoreUrl, StoreConfigError> {
        let error = |reason: &str| StoreConfigError {
            variable: STREAM_STORE,
            value: redact(text),
            reason: reason.into(),
        };
        let text = text.trim();
        if text == "memory:" {
            return Ok(StoreUrl::Memory);
        }
        if text.is_empty() {
            return Err(error(
                "empty: leave it unset (or `memory:`) for the in-process store, or name a Redis server",
            ));
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(error(
                "expected memory:, redis://host:port[/db], rediss://..., or redis+cluster://host:port,host:port",
            ));
        };
        let (tls, cluster) = match scheme.to_ascii_lowercase().as_str() {
            "redis" => (false, false),
            "rediss" => (true, false),
            "redis+cluster" => (false, true),
            "rediss+cluster" => (true, true),
            _ => {
                return Err(error(
                    "unknown scheme: expected redis://, rediss://, redis+cluster:// or rediss+cluster://",
                ))
            }
        };
        // redis-rs's `rediss://host#insecure` accepts any certificate:
        // whoever is on the path could then read and forge every stream.
        // Refused by name: trust a private CA with GS_STREAM_STORE_CA_FILE.
        if rest.to_ascii_lowercase().contains("#insecure") {
            return Err(error(
                "#insecure (no certificate check) is refused: trust the server's CA with \
                 GS_STREAM_STORE_CA_FILE instead",
            ));
        }
        if rest.contains(['?', '#']) {
            return Err(error("no query string or fragment is understood"));
        }
        let (credentials, rest) = match rest.rsplit_once('@') {
            Some((credentials, rest)) => (Some(credentials), rest),
            None => (None, rest),
        };
        let (hosts, db) = match rest.split_once('/') {
            Some((hosts, db)) => (hosts, Some(db)),
            None => (rest, None),
        };
        let db = match db.filter(|db| !db.is_empty()) {
            None => 0,
            Some(db) => db
                .parse::<u16>()
                .map_err(|_| error("the database after `/` must be a number from 0 to 65535"))?,
        };
        if cluster && db != 0 {
            return Err(error("a Redis Cluster has only database 0"));
        }
        let hosts: Vec<&str> = hosts.split(',').collect();
        if !cluster && hosts.len() != 1 {
            return Err(error(
                "several hosts name a cluster: use redis+cluster://host:port,host:port",
            ));
        }
        let secure = if tls { "rediss" } else { "redis" };
        let prefix = credentials.map_or(String::new(), |c| format!("{c}@"));
        let mut urls = Vec::with_capacity(hosts.len());
        for host in hosts {
            check_host(host).map_err(|reason| error(&reason))?;
            let url = if db == 0 {
                format!("{secure}://{prefix}{host}")
            } else {
                format!("{secure}://{prefix}{host}/{db}")
            };
            // redis-rs's own reading of it, so that what we accept it takes.
            redis::IntoConnectionInfo::into_connection_info(url.as_str())
                .map_err(|e| error(&redact(&e.to_string())))?;
            urls.push(url);
        }
        Ok(if cluster {
            StoreUrl::Cluster(urls)
        } else {
            StoreUrl::Redis(urls.remove(0))
        })
    }

    /// `rediss://` or `rediss+cluster://`.
    pub fn is_tls(&self) -> bool {
        match self {
            StoreUrl::Memory => false,
            StoreUrl::Redis(url) => url.starts_with("rediss://"),
            StoreUrl::Cluster(urls) => urls.iter().all(|url| url.starts_with("rediss://")),
        }
    }

    /// The value as it can be shown: any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            StoreUrl::Memory => "memory:".into(),
            StoreUrl::Redis(url) => redact(url),
            StoreUrl::Cluster(urls) => urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(","),
        }
    }
}

/// `host:port`, with a port; `[v6]:port` for IPv6.
fn check_host(host: &str) -> Result<(), String> {
    let Some((name, port)) = host.rsplit_once(':') else {
        return Err(format!(
            "{host:?} has no port: write host:port (Redis listens on 6379 by default)"
        ));
    };
    if name.is_empty() || name == "[]" {
        return Err(format!("{host:?} has no host name"));
    }
    if name.contains(':') && !(name.starts_with('[') && name.ends_with(']')) {
        return Err(format!(
            "{host:?}: write an IPv6 address in brackets, [::1]:6379"
        ));
    }
    match port.parse::<u16>() {
        Ok(port) if port != 0 => Ok(()),
        _ => Err(format!(
            "{host:?}: the port must be a number from 1 to 65535"
        )),
    }
}

/// `text` with the password of every `scheme://user:password@` in it
/// replaced by `***`.
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail.find(['/', ',']).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rsplit_once('@') {
            Some((credentials, host)) => match credentials.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:***@{host}")),
                None => out.push_str(&format!("***@{host}")),
            },
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_the_default_and_its_own_name() {
        assert_eq!(StoreUrl::parse("memory:"), Ok(StoreUrl::Memory));
    }

    #[test]
    fn a_server_and_a_cluster() {
        assert_eq!(
            StoreUrl::parse("redis://127.0.0.1:6379"),
            Ok(StoreUrl::Redis("redis://127.0.0.1:6379".into()))
        );
        assert_eq!(
            StoreUrl::parse("redis://u:p@cache.internal:6380/3"),
            Ok(StoreUrl::Redis("redis://u:p@cache.internal:6380/3".into()))
        );
        assert_eq!(
            StoreUrl::parse("redis+cluster://:pw@a:7000,b:7001,[::1]:7002"),
            Ok(StoreUrl::Cluster(vec![
                "redis://:pw@a:7000".into(),
                "redis://:pw@b:7001".into(),
                "redis://:pw@[::1]:7002".into()
            ]))
        );
    }

    #[test]
    fn tls_for_a_server_and_a_cluster() {
        let server = StoreUrl::parse("rediss://:pw@cache.internal:6380/2").unwrap();
        assert_eq!(
            server,
            StoreUrl::Redis("rediss://:pw@cache.internal:6380/2".into())
        );
        assert!(server.is_tls());
        let cluster = StoreUrl::parse("rediss+cluster://a:7000,b:7001").unwrap();
        assert_eq!(
            cluster,
            StoreUrl::Cluster(vec!["rediss://a:7000".into(), "rediss://b:7001".into()])
        );
        assert!(cluster.is_tls());
        assert!(!StoreUrl::parse("redis://a:1").unwrap().is_tls());
        assert!(!StoreUrl::Memory.is_tls());
    }

    #[test]
    fn insecure_tls_is_refused_by_name() {
        for bad in [
            "rediss://a:1#insecure",
            "rediss://a:1/#insecure",
            "rediss+cluster://a:1,b:2#INSECURE",
        ] {
            let text = StoreUrl::parse(bad).unwrap_err().to_string();
            assert!(text.contains("#insecure"), "{bad:?}: {text}");
            assert!(text.contains("GS_STREAM_STORE_CA_FILE"), "{bad:?}: {text}");
        }
    }

    #[test]
    fn malformed_values_are_refused_with_the_password_hidden() {
        for bad in [
            "",
            "  ",
            "redis",
            "http://a:1",
            "redis://a",
            "redis://:6379",
            "redis://a:0",
            "redis://a:99999",
            "redis://a:1/x",
            "redis://a:1,b:2",
            "redis+cluster://a:1/2",
            "redis://a:1?db=2",
            "redis://::1:6379",
            "redis://user:s3cret@host",
        ] {
            let error = StoreUrl::parse(bad).unwrap_err();
            let text = error.to_string();
            assert!(text.contains(STREAM_STORE), "{bad:?}: {text}");
            assert!(!text.contains("s3cret"), "{text}");
        }
    }

    #[test]
    fn redacted_hides_every_password() {
        let url = StoreUrl::parse("redis+cluster://user:s3cret@a:1,b:2").unwrap();
        let shown = format!("{url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("user:***@a:1"), "{shown}");
    }
}
