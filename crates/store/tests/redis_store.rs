//! The store against real redis-server processes.

mod common;

use common::appends::{added, event};
use common::RedisServer;
use last_call_store::{
    Append, Appended, Flag, Limits, LogItem, RedisStore, ResumeStatus, StoreUrl,
};
use std::time::Duration;

fn store(server: &RedisServer, limits: Limits) -> RedisStore {
    RedisStore::new(&StoreUrl::parse(&server.url()).unwrap(), limits)
        .unwrap()
        .expect("a Redis store")
}

#[tokio::test]
async fn a_resume_gets_exactly_the_events_after_its_id_on_another_store_handle() {
    let server = RedisServer::start();
    let (a, b) = (
        store(&server, Limits::default()),
        store(&server, Limits::default()),
    );
    let batch: Vec<Append> = (0..10).map(|n| event("task:1", n)).collect();
    let ids = added(&a.append(&batch).await.unwrap());
    // Increasing, one epoch.
    let parsed: Vec<_> = ids
        .iter()
        .map(|id| last_call_store::ids::EventId::parse(id).unwrap())
        .collect();
    assert!(
        parsed
            .windows(2)
            .all(|w| w[0] < w[1] && w[0].epoch == w[1].epoch),
        "{ids:?}"
    );
    // Part read on A, the rest on B.
    let resume = b.resume("task:1", Some(&ids[3])).await.unwrap();
    assert_eq!(resume.status, ResumeStatus::After);
    let replayed: Vec<String> = resume.entries.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(replayed, ids[4..].to_vec());
    assert_eq!(resume.entries[0].data, "{\"n\":4}");
    // From the last id: nothing more, nothing missed.
    let resume = b.resume("task:1", Some(&ids[9])).await.unwrap();
    assert_eq!(
        (resume.status, resume.entries.len()),
        (ResumeStatus::After, 0)
    );
    // No id: everything.
    let resume = b.resume("task:1", None).await.unwrap();
    assert_eq!(
        (resume.status, resume.entries.len()),
        (ResumeStatus::All, 10)
    );
}

#[tokio::test]
async fn ids_of_another_epoch_malformed_or_huge_get_gap_then_the_history() {
    let server = RedisServer::start();
    let store = store(&server, Limits::default());
    let ids = added(&store.append(&[event("c", 1), event("c", 2)]).await.unwrap());
    let real = last_call_store::ids::EventId::parse(&ids[0]).unwrap();
    let other_epoch = format!("{:016x}-{}-{}", 0xdead_beef_u64, real.ms, real.seq);
    for bad in [
        other_epoch.as_str(),
        "",
        "garbage",
        "1",
        "ffffffffffffffff-99999999999999999999-1",
        "ffffffffffffffff-18446744073709551615-18446744073709551615",
        "a-1-2\nid: 3",
    ] {
        let resume = store.resume("c", Some(bad)).await.unwrap();
        assert_eq!(resume.status, ResumeStatus::Gap, "{bad:?}");
        assert_eq!(resume.entries.len(), 2, "{bad:?}");
    }
    // An unknown channel: gap, nothing to replay.
    let resume = store.resume("nobody", Some(&ids[0])).await.unwrap();
    assert_eq!(
        (resume.status, resume.entries.len(), resume.epoch),
        (ResumeStatus::Gap, 0, None)
    );
}

#[tokio::test]
async fn histories_are_bounded_by_count_bytes_and_age() {
    let server = RedisServer::start();
    let limits = Limits {
        history_len: 5,
        history_bytes: 10_000,
        history_age: Duration::from_millis(600),
        ..Limits::default()
    };
    let store = store(&server, limits);
    let ids = added(
        &store
            .append(&(0..20).map(|n| event("count", n)).collect::<Vec<_>>())
            .await
            .unwrap(),
    );
    let resume = store.resume("count", None).await.unwrap();
    let kept: Vec<String> = resume.entries.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(kept, ids[15..].to_vec());
    // A trimmed id is a gap.
    assert_eq!(
        store.resume("count", Some(&ids[3])).await.unwrap().status,
        ResumeStatus::Gap
    );
    // Bytes: 1,000-byte events (plus 32 each) under a 10,000-byte bound.
    let big: Vec<Append> = (0..5)
        .map(|_| Append {
            data: "x".repeat(1000),
            ..event("bytes", 0)
        })
        .collect();
    store.append(&big).await.unwrap();
    store.append(&big).await.unwrap();
    assert!(store.resume("bytes", None).await.unwrap().entries.len() <= 9);
    assert!(store.resume("bytes", None).await.unwrap().entries.len() >= 5);
    // Age: entries older than 600 ms go at the next append.
    tokio::time::sleep(Duration::from_millis(800)).await;
    store.append(&[event("count", 99)]).await.unwrap();
    assert_eq!(store.resume("count", None).await.unwrap().entries.len(), 1);
    // Keys expire by themselves: age + idle.
    let short = self::store(
        &server,
        Limits {
            history_age: Duration::from_millis(100),
            idle: Duration::from_millis(100),
            ..Limits::default()
        },
    );
    short.append(&[event("brief", 1)]).await.unwrap();
    let keys = last_call_store::keys::ChannelKeys::of("brief");
    let ttl: i64 = server.cli(&["PTTL", &keys.stream]).parse().unwrap();
    assert!((1..=200).contains(&ttl), "{ttl}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(server.cli(&["EXISTS", &keys.stream, &keys.meta]), "0");
}

#[tokio::test]
async fn a_closed_channel_takes_no_more_and_gives_its_final_event_to_late_subscribers() {
    let server = RedisServer::start();
    let store = store(
        &server,
        Limits {
            history_len: 2,
            ..Limits::default()
        },
    );
    let mut batch: Vec<Append> = (0..3).map(|n| event("task:2", n)).collect();
    batch.push(Append {
        event: "task_failed".into(),
        data: "{\"reason\":\"shutdown\"}".into(),
        flag: Flag::Final,
        ..event("task:2", 0)
    });
    batch.push(event("task:2", 9));
    let appended = store.append(&batch).await.unwrap();
    let Appended::Added(final_id) = appended[3].clone() else {
        panic!("{appended:?}")
    };
    assert_eq!(appended[4], Appended::Closed(final_id.clone()));
    // Trimmed out of the 2-event history, and still told.
    store.append(&[]).await.unwrap();
    let resume = store.resume("task:2", None).await.unwrap();
    let closed = resume.closed.expect("closed");
    assert_eq!(
        (closed.id.clone(), closed.event.as_str()),
        (final_id.clone(), "task_failed")
    );
    // Resuming from the final event's id: nothing missed.
    let resume = store
        .resume("task:2", Some(&final_id.to_string()))
        .await
        .unwrap();
    assert_eq!(resume.status, ResumeStatus::After);
}

#[tokio::test]
async fn a_reader_sees_every_pods_events_in_order_once() {
    let server = RedisServer::start();
    let (a, b) = (
        store(&server, Limits::default()),
        store(&server, Limits::default()),
    );
    let mut reader = a.log_readers(Duration::from_millis(200), 100).remove(0);
    reader.start().await.unwrap();
    // Two "pods" publishing to two channels.
    let mut expected: Vec<(String, String)> = Vec::new();
    for round in 0..5 {
        let from_a = added(
            &a.append(&[event("x", round), event("y", round)])
                .await
                .unwrap(),
        );
        let from_b = added(&b.append(&[event("x", 100 + round)]).await.unwrap());
        expected.push(("x".into(), from_a[0].clone()));
        expected.push(("y".into(), from_a[1].clone()));
        expected.push(("x".into(), from_b[0].clone()));
    }
    let mut seen = Vec::new();
    for _ in 0..50 {
        for item in reader.next().await.unwrap() {
            match item {
                LogItem::Entry(entry) => seen.push((entry.channel, entry.entry.id.to_string())),
                LogItem::Lost(bucket) => panic!("lost bucket {bucket}"),
            }
        }
        if seen.len() >= expected.len() {
            break;
        }
    }
    for channel in ["x", "y"] {
        let want: Vec<_> = expected.iter().filter(|(c, _)| c == channel).collect();
        let got: Vec<_> = seen.iter().filter(|(c, _)| c == channel).collect();
        assert_eq!(got, want, "channel {channel}");
    }
}

#[tokio::test]
async fn after_redis_restarts_empty_old_ids_get_gap_and_the_reader_reports_the_loss() {
    let mut server = RedisServer::start();
    let store = store(&server, Limits::default());
    let mut reader = store.log_readers(Duration::from_millis(200), 100).remove(0);
    reader.start().await.unwrap();
    let ids = added(&store.append(&[event("z", 1), event("z", 2)]).await.unwrap());
    server.restart();
    // The store's connection broke: an error, then it connects again.
    let mut appended = None;
    for _ in 0..50 {
        match store.append(&[event("z", 3)]).await {
            Ok(result) => {
                appended = Some(result);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let new_id = added(&appended.expect("the store reconnects"))[0].clone();
    assert_ne!(
        last_call_store::ids::EventId::parse(&new_id).unwrap().epoch,
        last_call_store::ids::EventId::parse(&ids[1]).unwrap().epoch
    );
    let resume = store.resume("z", Some(&ids[1])).await.unwrap();
    assert_eq!(resume.status, ResumeStatus::Gap);
    let mut lost = Vec::new();
    for _ in 0..50 {
        match reader.next().await {
            Ok(items) => {
                lost.extend(items.into_iter().filter(|i| matches!(i, LogItem::Lost(_))));
                if !lost.is_empty() {
                    break;
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    // Every bucket of the restarted server.
    assert_eq!(lost.len(), 16, "{lost:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_no_error_until_used_and_then_a_prompt_one() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = RedisStore::new(
        &StoreUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap(),
        Limits::default(),
    )
    .unwrap()
    .unwrap();
    let started = std::time::Instant::now();
    assert!(store.append(&[event("a", 1)]).await.is_err());
    assert!(store.ping().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
}
