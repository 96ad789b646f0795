//! The store against a local Redis Cluster of three primaries with a
//! replica each: channels across slots, and a primary killed mid-stream.

mod common;

use common::appends::event;
use common::RedisCluster;
use last_call_store::keys::ChannelKeys;
use last_call_store::{Append, Appended, Limits, LogItem, RedisStore, ResumeStatus, StoreUrl};
use std::time::Duration;

fn id(appended: &Appended) -> String {
    match appended {
        Appended::Added(id) => id.to_string(),
        Appended::Closed(id) => panic!("closed at {id}"),
    }
}

async fn retry<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    let mut last = None;
    for _ in 0..200 {
        match call().await {
            Ok(value) => return value,
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store did not recover in 20 s: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_across_slots_and_a_failover_is_gap_or_every_event_never_a_hole() {
    let mut cluster = RedisCluster::start(3);
    let store = RedisStore::new(&StoreUrl::parse(&cluster.url()).unwrap(), Limits::default())
        .unwrap()
        .unwrap();
    // 32 channels: every bucket, so every primary.
    let channels: Vec<String> = (0..32).map(|n| format!("task:{n}")).collect();
    let batch: Vec<Append> = channels.iter().map(|c| event(c, 1)).collect();
    let first: Vec<String> = store.append(&batch).await.unwrap().iter().map(id).collect();
    let mut readers = store.log_readers(Duration::from_millis(300), 100);
    assert_eq!(readers.len(), 16);
    for reader in &mut readers {
        reader.start().await.unwrap();
    }
    for (channel, first) in channels.iter().zip(&first) {
        let resume = store.resume(channel, Some(first)).await.unwrap();
        assert_eq!(
            (resume.status, resume.entries.len()),
            (ResumeStatus::After, 0),
            "{channel}"
        );
    }
    // Kill the primary of task:0's slot; its replica takes over.
    let victim_key = ChannelKeys::of("task:0").stream;
    let victim = cluster.primary_of(&victim_key);
    cluster.fail_over(victim);
    let after: Vec<String> = retry(|| store.append(&batch))
        .await
        .iter()
        .map(id)
        .collect();
    // Every channel either resumes with nothing missed (its node did not
    // change) or is told gap (its node failed over): never a silent hole.
    let mut gaps = 0;
    for ((channel, first), after) in channels.iter().zip(&first).zip(&after) {
        let resume = retry(|| store.resume(channel, Some(first))).await;
        match resume.status {
            ResumeStatus::After => {
                // The batch's own event last; before it, any that a failed
                // attempt of the batch appended (an error means "some may
                // be in"), in order.
                let ids: Vec<String> = resume.entries.iter().map(|e| e.id.to_string()).collect();
                assert_eq!(ids.last(), Some(after), "{channel}: {ids:?}");
                assert!(
                    resume.entries.windows(2).all(|w| w[0].id < w[1].id),
                    "{channel}: {ids:?}"
                );
            }
            ResumeStatus::Gap => gaps += 1,
            ResumeStatus::All => unreachable!(),
        }
    }
    assert!(gaps > 0 && gaps < 32, "{gaps} of 32 channels told gap");
    assert_eq!(
        retry(|| store.resume("task:0", Some(&first[0])))
            .await
            .status,
        ResumeStatus::Gap
    );
    // The readers of the failed node's buckets report them lost.
    let mut lost = 0;
    for reader in &mut readers {
        for _ in 0..100 {
            match reader.next().await {
                Ok(items) => {
                    lost += items
                        .iter()
                        .filter(|i| matches!(i, LogItem::Lost(_)))
                        .count();
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    assert!(lost > 0 && lost < 16, "{lost} buckets lost");
}
