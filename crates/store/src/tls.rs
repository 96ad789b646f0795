//! TLS to the shared store (`rediss://`, `rediss+cluster://`): which CA
//! the server's certificate must chain to, and the client's own
//! certificate for mutual TLS.
//!
//! ```text
//! GS_STREAM_STORE_CA_FILE           PEM bundle of the CAs to trust, instead
//!                                   of the system's roots
//! GS_STREAM_STORE_CLIENT_CERT_FILE  PEM chain the client presents (mutual TLS)
//! GS_STREAM_STORE_CLIENT_KEY_FILE   its private key (PEM, PKCS#8, PKCS#1 or SEC1)
//! ```
//!
//! Without a CA file the server's certificate must chain to the system's
//! roots (read by rustls-native-certs: the OpenSSL locations, or
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`). A CA file *replaces* them, so that a
//! private CA is trusted alone; to trust both, name a bundle holding both.
//! Either way the certificate must name the host in `GS_STREAM_STORE` (DNS
//! name or IP address) and be valid now; no setting turns that off.
//!
//! The files are read, and checked with rustls (every certificate parses,
//! the key is one rustls can sign with and belongs to the certificate),
//! when the store is made: a missing, unreadable or malformed file is an
//! error at start-up naming its variable, never a store that fails every
//! connection later.

use crate::url::{StoreConfigError, StoreUrl, STREAM_STORE};
use redis::{ClientTlsConfig, TlsCertificates};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// PEM bundle of the CA certificates to trust instead of the system's roots.
pub const STREAM_STORE_CA_FILE: &str = "GS_STREAM_STORE_CA_FILE";
/// PEM certificate chain the hub presents to Redis (mutual TLS).
pub const STREAM_STORE_CLIENT_CERT_FILE: &str = "GS_STREAM_STORE_CLIENT_CERT_FILE";
/// PEM private key of the client certificate.
pub const STREAM_STORE_CLIENT_KEY_FILE: &str = "GS_STREAM_STORE_CLIENT_KEY_FILE";

/// Files for TLS to the store; all `None`: the system's roots, no client
/// certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreTls {
    /// CAs to trust instead of the system's roots (`GS_STREAM_STORE_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// The client's certificate chain (`GS_STREAM_STORE_CLIENT_CERT_FILE`).
    pub client_cert_file: Option<PathBuf>,
    /// The client's private key (`GS_STREAM_STORE_CLIENT_KEY_FILE`).
    pub client_key_file: Option<PathBuf>,
}

impl StoreTls {
    /// Reads the three variables (the paths; the files are read when the
    /// store is made). An empty or non-UTF-8 value is an error naming it.
    pub fn from_env() -> Result<StoreTls, StoreConfigError> {
        StoreTls::from_lookup(|name| std::env::var_os(name))
    }

    /// Like [`StoreTls::from_env`], reading the variables through `lookup`
    /// (a host's settings set from code over the environment).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<StoreTls, StoreConfigError> {
        Ok(StoreTls {
            ca_file: path_from_env(&lookup, STREAM_STORE_CA_FILE)?,
            client_cert_file: path_from_env(&lookup, STREAM_STORE_CLIENT_CERT_FILE)?,
            client_key_file: path_from_env(&lookup, STREAM_STORE_CLIENT_KEY_FILE)?,
        })
    }

    /// No file named: the defaults.
    pub fn is_empty(&self) -> bool {
        self == &StoreTls::default()
    }

    /// The certificates for redis-rs (`None`: its defaults, the system's
    /// roots), every file read and checked. A file named for a store that
    /// is not TLS is an error too: it says the operator expects TLS where
    /// there would be none.
    pub(crate) fn certificates(
        &self,
        url: &StoreUrl,
    ) -> Result<Option<TlsCertificates>, StoreConfigError> {
        if self.is_empty() {
            return Ok(None);
        }
        if !url.is_tls() {
            let (variable, path) = self.first_named();
            return Err(StoreConfigError {
                variable,
                value: shown(path),
                reason: format!(
                    "set, but {STREAM_STORE} names no TLS store: use rediss:// (or \
                     rediss+cluster://) for TLS, or unset {variable}"
                ),
            });
        }
        let mut roots = RootCertStore::empty();
        let root_cert = match &self.ca_file {
            None => None,
            Some(path) => {
                let pem = read(STREAM_STORE_CA_FILE, path)?;
                for cert in certificates(STREAM_STORE_CA_FILE, path, &pem)? {
                    roots.add(cert).map_err(|e| {
                        bad(
                            STREAM_STORE_CA_FILE,
                            path,
                            format!("not a usable CA certificate: {e}"),
                        )
                    })?;
                }
                Some(pem)
            }
        };
        let client_tls = match (&self.client_cert_file, &self.client_key_file) {
            (None, None) => None,
            (Some(cert), None) => return Err(missing(STREAM_STORE_CLIENT_KEY_FILE, cert)),
            (None, Some(key)) => return Err(missing(STREAM_STORE_CLIENT_CERT_FILE, key)),
            (Some(cert_path), Some(key_path)) => {
                let cert = read(STREAM_STORE_CLIENT_CERT_FILE, cert_path)?;
                let key = read(STREAM_STORE_CLIENT_KEY_FILE, key_path)?;
                let chain = certificates(STREAM_STORE_CLIENT_CERT_FILE, cert_path, &cert)?;
                let key_der = PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
                    bad(
                        STREAM_STORE_CLIENT_KEY_FILE,
                        key_path,
                        format!("no PEM private key in it: {e}"),
                    )
                })?;
                // What redis-rs will do at each connection, done once here
                // so that a key of the wrong kind, or one that does not
                // belong to the certificate, is told now.
                rustls::ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .and_then(|builder| {
                        builder
                            .with_root_certificates(roots)
                            .with_client_auth_cert(chain, key_der)
                    })
                    .map_err(|e| {
                        bad(
                            STREAM_STORE_CLIENT_KEY_FILE,
                            key_path,
                            format!("not usable with {STREAM_STORE_CLIENT_CERT_FILE}: {e}"),
                        )
                    })?;
                Some(ClientTlsConfig {
                    client_cert: cert,
                    client_key: key,
                })
            }
        };
        Ok(Some(TlsCertificates {
            client_tls,
            root_cert,
        }))
    }

    fn first_named(&self) -> (&'static str, &Path) {
        [
            (STREAM_STORE_CA_FILE, &self.ca_file),
            (STREAM_STORE_CLIENT_CERT_FILE, &self.client_cert_file),
            (STREAM_STORE_CLIENT_KEY_FILE, &self.client_key_file),
        ]
        .into_iter()
        .find_map(|(variable, path)| path.as_deref().map(|path| (variable, path)))
        .unwrap_or((STREAM_STORE_CA_FILE, Path::new("")))
    }
}

/// rustls's cryptography in this library: ring (see Cargo.toml). rustls
/// deprecates ring's provider for lacking post-quantum key exchange, which
/// only aws-lc-rs offers; that is the price of a library that builds with
/// a C compiler alone and fits the wheel's bound (docs/packaging.md).
#[allow(deprecated)]
fn ring() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(ring())
}

/// redis-rs builds each connection's rustls configuration with the
/// process's default provider. rustls installs ring by itself when ring is
/// the only provider built in; a Rust host that also builds aws-lc-rs in
/// would leave it none to choose, and connecting would panic. So: ring,
/// unless the process chose already.
pub(crate) fn ensure_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An error means another thread installed one meanwhile: fine.
        let _ = ring().install_default();
    }
}

fn path_from_env(
    lookup: &impl Fn(&str) -> Option<std::ffi::OsString>,
    variable: &'static str,
) -> Result<Option<PathBuf>, StoreConfigError> {
    match lookup(variable) {
        None => Ok(None),
        Some(raw) => match raw.to_str() {
            None => Err(StoreConfigError {
                variable,
                value: raw.to_string_lossy().into_owned(),
                reason: "not valid UTF-8".into(),
            }),
            Some(text) if text.trim().is_empty() => Err(StoreConfigError {
                variable,
                value: text.into(),
                reason: "empty: name a PEM file, or leave it unset".into(),
            }),
            Some(text) => Ok(Some(PathBuf::from(text))),
        },
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn bad(variable: &'static str, path: &Path, reason: String) -> StoreConfigError {
    StoreConfigError {
        variable,
        value: shown(path),
        reason,
    }
}

fn missing(variable: &'static str, other: &Path) -> StoreConfigError {
    StoreConfigError {
        variable,
        value: String::new(),
        reason: format!(
            "unset, while {} is set ({}): mutual TLS needs both the certificate and its key",
            if variable == STREAM_STORE_CLIENT_KEY_FILE {
                STREAM_STORE_CLIENT_CERT_FILE
            } else {
                STREAM_STORE_CLIENT_KEY_FILE
            },
            shown(other)
        ),
    }
}

fn read(variable: &'static str, path: &Path) -> Result<Vec<u8>, StoreConfigError> {
    std::fs::read(path).map_err(|e| bad(variable, path, format!("cannot be read: {e}")))
}

/// Every certificate of a PEM file; none is an error.
fn certificates(
    variable: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, StoreConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(variable, path, format!("malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            variable,
            path,
            "no certificate in it (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}
