//! The store over TLS (`rediss://`, `rediss+cluster://`) against real
//! redis-server processes that speak TLS only, with a throwaway CA made by
//! the test: append, resume and the log readers work; a certificate the
//! hub cannot verify is refused (never a plaintext fallback); mutual TLS;
//! and every bad TLS file is an error naming its variable.

mod common;
mod pki;

use common::appends::{added, event};
use common::{RedisCluster, RedisServer, ServerTls};
use last_call_store::{
    Append, Limits, LogItem, RedisStore, ResumeStatus, StoreConfigError, StoreTls, StoreUrl,
    STREAM_STORE, STREAM_STORE_CA_FILE, STREAM_STORE_CLIENT_CERT_FILE,
    STREAM_STORE_CLIENT_KEY_FILE,
};
use pki::Pki;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A TLS-only server whose certificate, for 127.0.0.1, `pki` signed.
fn server(pki: &Pki, auth_clients: bool) -> RedisServer {
    let leaf = pki.issue("server", &["127.0.0.1", "localhost"]);
    RedisServer::start_tls(ServerTls {
        cert: leaf.cert,
        key: leaf.key,
        ca: pki.ca_file.clone(),
        auth_clients,
    })
}

fn trusting(ca: &Path) -> StoreTls {
    StoreTls {
        ca_file: Some(ca.to_path_buf()),
        ..StoreTls::default()
    }
}

fn store(url: &str, tls: &StoreTls) -> RedisStore {
    RedisStore::with_tls(&StoreUrl::parse(url).unwrap(), tls, Limits::default())
        .unwrap()
        .expect("a Redis store")
}

/// The store cannot be used: every call fails, promptly (the hub reports
/// it degraded), and nothing reached the server.
async fn refused(store: &RedisStore, server: &RedisServer) {
    let started = std::time::Instant::now();
    let error = store.append(&[event("refused", 1)]).await.unwrap_err();
    assert!(store.ping().await.is_err());
    assert!(store.resume("refused", None).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(15), "{error}");
    assert_eq!(server.cli(&["EXISTS", "gs:{b00}:log"]), "0");
    assert_eq!(server.cli(&["DBSIZE"]), "0", "{error}");
}

#[tokio::test]
async fn append_resume_and_the_log_over_tls_with_a_private_ca() {
    let pki = Pki::new("private");
    let server = server(&pki, false);
    assert!(server.url().starts_with("rediss://"));
    let tls = trusting(&pki.ca_file);
    let (a, b) = (store(&server.url(), &tls), store(&server.url(), &tls));
    let mut reader = a.log_readers(Duration::from_millis(200), 100).remove(0);
    reader.start().await.unwrap();
    let batch: Vec<Append> = (0..10).map(|n| event("task:tls", n)).collect();
    let ids = added(&a.append(&batch).await.unwrap());
    // Part read on A, the rest resumed on B: exactly the events after.
    let resume = b.resume("task:tls", Some(&ids[3])).await.unwrap();
    assert_eq!(resume.status, ResumeStatus::After);
    let replayed: Vec<String> = resume.entries.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(replayed, ids[4..].to_vec());
    // The blocking log reader (a connection of its own) over TLS too.
    assert_eq!(reader.buckets().len(), 16, "one reader for every bucket");
    let mut seen = Vec::new();
    for _ in 0..50 {
        for item in reader.next().await.unwrap() {
            match item {
                LogItem::Entry(entry) if entry.channel == "task:tls" => {
                    seen.push(entry.entry.id.to_string())
                }
                LogItem::Entry(_) => {}
                LogItem::Lost(bucket) => panic!("lost bucket {bucket}"),
            }
        }
        if seen.len() >= ids.len() {
            break;
        }
    }
    assert_eq!(seen, ids);
    // The server speaks TLS only: a plaintext client on its port gets
    // nowhere, so the store above was on TLS.
    let plain = store(
        &format!("redis://127.0.0.1:{}", server.port),
        &StoreTls::default(),
    );
    assert!(plain.ping().await.is_err());
}

#[tokio::test]
async fn a_certificate_the_hub_cannot_verify_is_refused_never_a_plaintext_fallback() {
    let ours = Pki::new("ours");
    let theirs = Pki::new("theirs");
    // Signed by a CA the store does not trust.
    let server = server(&theirs, false);
    refused(&store(&server.url(), &trusting(&ours.ca_file)), &server).await;
    // Nor by the system's roots.
    refused(&store(&server.url(), &StoreTls::default()), &server).await;
    // The right CA, but a certificate for another name than the URL's.
    let wrong_name = ours.issue("elsewhere", &["redis.elsewhere.example"]);
    let named = RedisServer::start_tls(ServerTls {
        cert: wrong_name.cert,
        key: wrong_name.key,
        ca: ours.ca_file.clone(),
        auth_clients: false,
    });
    refused(&store(&named.url(), &trusting(&ours.ca_file)), &named).await;
    // Trusting the server's own CA, the same store works.
    let good = store(&server.url(), &trusting(&theirs.ca_file));
    good.append(&[event("ok", 1)]).await.unwrap();
}

#[tokio::test]
async fn mutual_tls_a_client_without_a_certificate_is_refused() {
    let pki = Pki::new("mutual");
    let server = server(&pki, true);
    refused(&store(&server.url(), &trusting(&pki.ca_file)), &server).await;
    // A client certificate of another CA is refused too.
    let strangers = Pki::new("stranger");
    let stranger = strangers.issue("client", &["hub"]);
    let foreign = StoreTls {
        ca_file: Some(pki.ca_file.clone()),
        client_cert_file: Some(stranger.cert),
        client_key_file: Some(stranger.key),
    };
    refused(&store(&server.url(), &foreign), &server).await;
    let client = pki.issue("client", &["hub"]);
    let tls = StoreTls {
        ca_file: Some(pki.ca_file.clone()),
        client_cert_file: Some(client.cert),
        client_key_file: Some(client.key),
    };
    let store = store(&server.url(), &tls);
    let ids = added(&store.append(&[event("m", 1), event("m", 2)]).await.unwrap());
    let resume = store.resume("m", Some(&ids[0])).await.unwrap();
    assert_eq!(
        (resume.status, resume.entries.len()),
        (ResumeStatus::After, 1)
    );
}

fn config_error(url: &str, tls: &StoreTls) -> StoreConfigError {
    RedisStore::with_tls(&StoreUrl::parse(url).unwrap(), tls, Limits::default()).unwrap_err()
}

#[test]
fn a_missing_or_malformed_tls_file_is_an_error_naming_its_variable() {
    let pki = Pki::new("files");
    let leaf = pki.issue("client", &["hub"]);
    let other = pki.issue("other", &["hub"]);
    let url = "rediss://127.0.0.1:6380";
    let with_ca = |path: PathBuf| StoreTls {
        ca_file: Some(path),
        ..StoreTls::default()
    };
    let cases: Vec<(StoreTls, &str, &str)> = vec![
        (
            with_ca(PathBuf::from("/nonexistent/ca.pem")),
            STREAM_STORE_CA_FILE,
            "cannot be read",
        ),
        (
            with_ca(pki.file("empty.pem", "")),
            STREAM_STORE_CA_FILE,
            "no certificate",
        ),
        (
            with_ca(pki.file("text.pem", "not a certificate at all\n")),
            STREAM_STORE_CA_FILE,
            "no certificate",
        ),
        (
            with_ca(leaf.key.clone()),
            STREAM_STORE_CA_FILE,
            "no certificate",
        ),
        (
            with_ca(pki.file(
                "broken.pem",
                "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
            )),
            STREAM_STORE_CA_FILE,
            "not a usable CA certificate",
        ),
        (
            StoreTls {
                client_cert_file: Some(leaf.cert.clone()),
                ..StoreTls::default()
            },
            STREAM_STORE_CLIENT_KEY_FILE,
            "needs both",
        ),
        (
            StoreTls {
                client_key_file: Some(leaf.key.clone()),
                ..StoreTls::default()
            },
            STREAM_STORE_CLIENT_CERT_FILE,
            "needs both",
        ),
        (
            StoreTls {
                client_cert_file: Some(leaf.cert.clone()),
                client_key_file: Some(leaf.cert.clone()),
                ..StoreTls::default()
            },
            STREAM_STORE_CLIENT_KEY_FILE,
            "no PEM private key",
        ),
        (
            StoreTls {
                client_cert_file: Some(leaf.key.clone()),
                client_key_file: Some(leaf.key.clone()),
                ..StoreTls::default()
            },
            STREAM_STORE_CLIENT_CERT_FILE,
            "no certificate",
        ),
        (
            StoreTls {
                client_cert_file: Some(leaf.cert.clone()),
                client_key_file: Some(other.key.clone()),
                ..StoreTls::default()
            },
            STREAM_STORE_CLIENT_KEY_FILE,
            "not usable",
        ),
    ];
    for (tls, variable, reason) in cases {
        let error = config_error(url, &tls);
        assert_eq!(error.variable, variable, "{tls:?}: {error}");
        assert!(error.reason.contains(reason), "{tls:?}: {error}");
        assert!(error.to_string().contains(variable), "{error}");
    }
    // A TLS file for a store that is not TLS: refused, naming the file's
    // variable, so that nobody believes a plaintext link is encrypted.
    for url in [
        "redis://127.0.0.1:6379",
        "redis+cluster://a:1,b:2",
        "memory:",
    ] {
        let error = config_error(url, &with_ca(pki.ca_file.clone()));
        assert_eq!(error.variable, STREAM_STORE_CA_FILE, "{url}: {error}");
        assert!(error.reason.contains(STREAM_STORE), "{url}: {error}");
    }
    // The good files are accepted without a server (connecting is later).
    let good = StoreTls {
        ca_file: Some(pki.ca_file.clone()),
        client_cert_file: Some(leaf.cert),
        client_key_file: Some(leaf.key),
    };
    assert!(
        RedisStore::with_tls(&StoreUrl::parse(url).unwrap(), &good, Limits::default())
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_channels_across_slots() {
    let pki = Pki::new("cluster");
    let leaf = pki.issue("node", &["127.0.0.1"]);
    let cluster = RedisCluster::start_tls(
        3,
        ServerTls {
            cert: leaf.cert,
            key: leaf.key,
            ca: pki.ca_file.clone(),
            auth_clients: false,
        },
    );
    assert!(cluster.url().starts_with("rediss+cluster://"));
    let store = store(&cluster.url(), &trusting(&pki.ca_file));
    // 32 channels: every bucket, so every primary.
    let channels: Vec<String> = (0..32).map(|n| format!("task:{n}")).collect();
    let first = added(
        &store
            .append(&channels.iter().map(|c| event(c, 1)).collect::<Vec<_>>())
            .await
            .unwrap(),
    );
    let second = added(
        &store
            .append(&channels.iter().map(|c| event(c, 2)).collect::<Vec<_>>())
            .await
            .unwrap(),
    );
    for ((channel, first), second) in channels.iter().zip(&first).zip(&second) {
        let resume = store.resume(channel, Some(first)).await.unwrap();
        let ids: Vec<String> = resume.entries.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(
            (resume.status, ids),
            (ResumeStatus::After, vec![second.clone()]),
            "{channel}"
        );
    }
    // A blocking log reader (a cluster connection of its own) over TLS;
    // one: each of the 16 connects to every node.
    let bucket = last_call_store::keys::bucket("task:0");
    let mut reader = store
        .log_readers(Duration::from_millis(200), 100)
        .into_iter()
        .find(|reader| reader.buckets() == [bucket])
        .expect("a reader for task:0's bucket");
    reader.start().await.unwrap();
    let more = added(&store.append(&[event("task:0", 3)]).await.unwrap());
    let mut seen = Vec::new();
    for _ in 0..50 {
        for item in reader.next().await.unwrap() {
            if let LogItem::Entry(entry) = item {
                seen.push(entry.entry.id.to_string());
            }
        }
        if seen.contains(&more[0]) {
            break;
        }
    }
    assert!(seen.contains(&more[0]), "{seen:?}");
    // Another CA's store is refused by every node.
    let stranger = Pki::new("cluster-stranger");
    let refused = RedisStore::with_tls(
        &StoreUrl::parse(&cluster.url()).unwrap(),
        &trusting(&stranger.ca_file),
        Limits::default(),
    )
    .unwrap()
    .unwrap();
    assert!(refused.append(&[event("task:0", 3)]).await.is_err());
}
