//! Conformance cases for leader election and the lease keeper, built on the store trait.

use std::time::Duration;

use fos_store::{Election, LeaseKeeper};
use futures::StreamExt;

use super::{DynStore, PATIENCE};

/// Two candidates: the first wins, the second waits and takes over when the first resigns; observers follow.
pub async fn resign_hands_over(store: DynStore) {
    let election = Election::new(store.clone(), "/t/election/ctl");
    let lease_a = store.grant(Duration::from_secs(30)).await.unwrap();
    let lease_b = store.grant(Duration::from_secs(30)).await.unwrap();
    let a = election.campaign(lease_a, b"a".to_vec()).await.unwrap();
    assert!(a.is_leader().await.unwrap());
    let mut observed = election.observe().await.unwrap();
    let first = tokio::time::timeout(PATIENCE, observed.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.map(|kv| kv.value), Some(b"a".to_vec()));

    let b_campaign = {
        let election = election.clone();
        tokio::spawn(async move { election.campaign(lease_b, b"b".to_vec()).await })
    };
    // B must not win while A leads.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b_campaign.is_finished(), "the second candidate must wait");
    assert_eq!(election.leader().await.unwrap().map(|kv| kv.value), Some(b"a".to_vec()));

    a.resign().await.unwrap();
    let b = tokio::time::timeout(PATIENCE, b_campaign).await.unwrap().unwrap().unwrap();
    assert!(b.is_leader().await.unwrap());
    assert_eq!(election.leader().await.unwrap().map(|kv| kv.value), Some(b"b".to_vec()));
    let next = tokio::time::timeout(PATIENCE, observed.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(next.map(|kv| kv.value), Some(b"b".to_vec()));
    b.resign().await.unwrap();
    let none = tokio::time::timeout(PATIENCE, observed.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(none, None);
}

/// The leader's lease expires (it stops refreshing): the waiting candidate takes over.
pub async fn lease_expiry_hands_over(store: DynStore) {
    let election = Election::new(store.clone(), "/t/election/ctl");
    let lease_a = store.grant(Duration::from_secs(2)).await.unwrap();
    let b_keeper = LeaseKeeper::grant(store.clone(), Duration::from_secs(2)).await.unwrap();
    let a = election.campaign(lease_a, b"a".to_vec()).await.unwrap();
    let lease_b = b_keeper.id();
    let b = tokio::time::timeout(PATIENCE, election.campaign(lease_b, b"b".to_vec())).await.unwrap().unwrap();
    assert!(!a.is_leader().await.unwrap(), "the expired leader no longer leads");
    assert!(b.is_leader().await.unwrap());
    assert!(b_keeper.lost_reason().is_none(), "the kept lease is still alive");
}

/// The keeper refreshes a lease beyond its TTL and reports its loss when it is revoked behind its back.
pub async fn lease_keeper_reports_loss(store: DynStore) {
    let mut keeper = LeaseKeeper::grant(store.clone(), Duration::from_secs(2)).await.unwrap();
    store.put("/t/kept", b"x".to_vec(), Some(keeper.id())).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(store.get("/t/kept").await.unwrap().is_some(), "kept alive past its TTL");
    store.revoke(keeper.id()).await.unwrap();
    let reason = tokio::time::timeout(PATIENCE, keeper.lost()).await.unwrap();
    assert!(reason.contains("expired or was revoked"), "{reason}");
}
