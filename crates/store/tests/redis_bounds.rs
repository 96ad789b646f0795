//! Hostile loads on the store: a flood of channels cannot grow Redis
//! without bound, and a full Redis refuses loudly instead of evicting.

mod common;

use common::RedisServer;
use last_call_store::{Append, Flag, Kind, Limits, RedisStore, StoreUrl};
use std::time::{Duration, Instant};

fn event(channel: String) -> Append {
    Append {
        channel,
        kind: Kind::PodBound,
        event: "progress".into(),
        data: "{\"percent\":50}".into(),
        flag: Flag::Event,
    }
}

#[tokio::test]
async fn a_flood_of_100000_channels_expires_by_itself() {
    let server = RedisServer::start();
    // Idle for 3 s: long enough that many are held at once even when a
    // loaded machine takes seconds to write the flood.
    let limits = Limits {
        history_age: Duration::from_secs(3),
        idle: Duration::from_secs(3),
        log_len: 1_000,
        ..Limits::default()
    };
    let store = RedisStore::new(&StoreUrl::parse(&server.url()).unwrap(), limits)
        .unwrap()
        .unwrap();
    for batch in 0..100 {
        let items: Vec<Append> = (0..1_000)
            .map(|n| event(format!("flood:{batch}:{n}")))
            .collect();
        store.append(&items).await.unwrap();
    }
    // Many are held at once (the first expire while the last are written).
    let keys: u64 = server.cli(&["DBSIZE"]).parse().unwrap();
    assert!(keys > 10_000, "{keys}");
    // The logs stay near their length however many channels publish.
    for bucket in 0..16 {
        let len: u64 = server
            .cli(&["XLEN", &last_call_store::keys::log_key(bucket)])
            .parse()
            .unwrap();
        assert!(len < 3_000, "bucket {bucket}: {len}");
    }
    // Every channel's keys go once idle: only the 16 logs are left.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let keys: u64 = server.cli(&["DBSIZE"]).parse().unwrap();
        if keys <= 16 {
            break;
        }
        assert!(Instant::now() < deadline, "{keys} keys left after 60 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_full_redis_refuses_appends_loudly_and_keeps_every_history_it_has() {
    let server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory",
        "4mb",
        "--maxmemory-policy",
        "noeviction",
    ]);
    let store = RedisStore::new(&StoreUrl::parse(&server.url()).unwrap(), Limits::default())
        .unwrap()
        .unwrap();
    let first = store.append(&[event("kept".into())]).await.unwrap();
    let mut refused = None;
    for batch in 0..200 {
        let items: Vec<Append> = (0..500)
            .map(|n| event(format!("fill:{batch}:{n}")))
            .collect();
        if let Err(error) = store.append(&items).await {
            refused = Some(error);
            break;
        }
    }
    let error = refused.expect("a 4 MB Redis refuses at some point");
    assert!(error.to_string().contains("OOM"), "{error}");
    // Nothing was evicted: the first channel's history is whole.
    let resume = store.resume("kept", None).await.unwrap();
    assert_eq!(resume.entries.len(), 1);
    assert_eq!(
        first[0],
        last_call_store::Appended::Added(resume.entries[0].id.clone())
    );
    let used: u64 = server
        .cli(&["INFO", "memory"])
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(used < 8 << 20, "{used}");
}
