//! Failover on a real 3-member etcd cluster: the member the client talks to (the leader, so a leader change happens
//! too) is killed with SIGKILL while writes, a watch and a lease keep-alive run. No acknowledged write is lost, no
//! request fails (the retried ones are counted), the watch resumes without gaps, the kept lease survives.

use std::sync::Arc;
use std::time::Duration;

use fos_store::testing::EtcdCluster;
use fos_store::{EtcdConfig, EtcdStore, EventKind, LeaseKeeper, Store};
use futures::StreamExt;

const WRITES: usize = 600;
const KILL_AFTER: usize = 200;

/// The index of the member that currently leads.
async fn leader_index(cluster: &EtcdCluster) -> usize {
    for _ in 0..100 {
        for i in 0..3 {
            let Ok(mut client) = etcd_client::Client::connect([cluster.endpoint(i)], None).await else { continue };
            let Ok(status) = client.status().await else { continue };
            if status.header().is_some_and(|h| h.member_id() == status.leader()) {
                return i;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_members_client_loses_and_fails_nothing() {
    let mut cluster = EtcdCluster::start_members(3).await.expect("start a 3-member cluster");
    let leader = leader_index(&cluster).await;
    // The client talks to the leader first.
    let mut endpoints = vec![cluster.endpoint(leader).to_string()];
    endpoints.extend((0..3).filter(|i| *i != leader).map(|i| cluster.endpoint(i).to_string()));
    let mut config = EtcdConfig::new(endpoints);
    config.request_timeout = Duration::from_secs(2);
    let store = Arc::new(EtcdStore::connect(config).await.unwrap());
    assert_eq!(store.current_endpoint(), cluster.endpoint(leader));
    let dyn_store: Arc<dyn Store> = store.clone();

    let keeper = LeaseKeeper::grant(dyn_store.clone(), Duration::from_secs(6)).await.unwrap();
    store.put("/f/leased", b"alive".to_vec(), Some(keeper.id())).await.unwrap();
    let mut watch = store.watch("/f/w/", 0).await.unwrap();

    let mut acked = Vec::new();
    let mut failed = Vec::new();
    for i in 0..WRITES {
        if i == KILL_AFTER {
            cluster.kill(leader);
        }
        let key = format!("/f/w/{i:05}");
        match store.put(&key, i.to_string().into_bytes(), None).await {
            Ok(rev) => acked.push((key, rev)),
            Err(e) => failed.push((key, e.to_string())),
        }
    }
    let stats = store.stats();
    assert!(failed.is_empty(), "requests failed: {failed:?}");
    assert!(stats.retries > 0 && stats.failovers > 0, "the kill must have been noticed: {stats:?}");
    assert_ne!(store.current_endpoint(), cluster.endpoint(leader));
    println!(
        "acknowledged {} writes, {} failed, {} retried attempts, {} failovers",
        acked.len(),
        failed.len(),
        stats.retries,
        stats.failovers
    );

    let list = store.list("/f/w/").await.unwrap();
    let stored: Vec<&str> = list.kvs.iter().map(|kv| kv.key.as_str()).collect();
    for (key, _) in &acked {
        assert!(stored.contains(&key.as_str()), "acknowledged write {key} lost");
    }
    // The watch resumed on another member: every write seen once, in order.
    let mut seen = Vec::new();
    while seen.len() < acked.len() {
        let e = tokio::time::timeout(Duration::from_secs(30), watch.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(e.kind, EventKind::Put);
        if seen.last() != Some(&e.kv.key) {
            seen.push(e.kv.key);
        }
    }
    let expected: Vec<String> = acked.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(seen, expected);
    // The lease was kept alive through the leader change.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(keeper.lost_reason().is_none(), "lease lost: {:?}", keeper.lost_reason());
    assert_eq!(store.get("/f/leased").await.unwrap().map(|kv| kv.value), Some(b"alive".to_vec()));
}
