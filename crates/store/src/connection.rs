//! Connections to one Redis server or a Redis Cluster, behind one type.
//!
//! Commands share one multiplexed connection (concurrent requests are
//! pipelined on it); each blocking read (`XREAD BLOCK`) gets a connection
//! of its own, so that it never holds up a publish.

use crate::url::StoreUrl;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, TlsCertificates, Value};
use std::time::Duration;

/// How long connecting may take before the attempt counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command (not a blocking read) may take.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where to connect: built once from the URL, without connecting.
#[derive(Clone)]
pub(crate) enum Target {
    Single(Box<redis::Client>),
    Cluster(Box<ClusterClient>),
}

impl Target {
    /// `certs`: the CA and client certificate for a TLS URL (`None`: the
    /// system's roots, no client certificate).
    pub(crate) fn new(
        url: &StoreUrl,
        certs: Option<TlsCertificates>,
    ) -> RedisResult<Option<Target>> {
        if url.is_tls() {
            crate::tls::ensure_provider();
        }
        Ok(match url {
            StoreUrl::Memory => None,
            StoreUrl::Redis(url) => Some(Target::Single(Box::new(match certs {
                None => redis::Client::open(url.as_str())?,
                Some(certs) => redis::Client::build_with_tls(url.as_str(), certs)?,
            }))),
            StoreUrl::Cluster(urls) => {
                let mut builder = ClusterClient::builder(urls.iter().map(String::as_str))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT);
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                Some(Target::Cluster(Box::new(builder.build()?)))
            }
        })
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }

    /// A new connection whose commands may take `response` each (a blocking
    /// read's block time and a margin).
    pub(crate) async fn connect(&self, response: Duration) -> RedisResult<Conn> {
        match self {
            Target::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(response));
                Ok(Conn::Single(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                ))
            }
            Target::Cluster(client) => {
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(response);
                Ok(Conn::Cluster(
                    client.get_async_connection_with_config(config).await?,
                ))
            }
        }
    }
}

/// One connection, to a server or a cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// `true` when `error` means the connection (or the server) is gone, so
/// that it must be made again; `false` for an answer from a live server.
pub(crate) fn is_connection_error(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
}
