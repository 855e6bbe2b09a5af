//! Conformance cases for key-value operations, transactions, watches, leases and compaction.

use std::time::Duration;

use fos_store::{Compare, CompareTarget, EventKind, StoreError, Txn, TxnOp};

use super::{is_compacted, next_event, next_events, DynStore};

fn v(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Put returns increasing revisions; overwriting keeps the create revision and moves the mod revision.
pub async fn put_get_and_revisions(store: DynStore) {
    assert_eq!(store.get("/t/a").await.unwrap(), None);
    let r1 = store.put("/t/a", v("1"), None).await.unwrap();
    let kv = store.get("/t/a").await.unwrap().expect("key after put");
    assert_eq!(
        (kv.key.as_str(), kv.value.as_slice(), kv.create_revision, kv.mod_revision, kv.lease),
        ("/t/a", &b"1"[..], r1, r1, 0)
    );
    let r2 = store.put("/t/a", v("2"), None).await.unwrap();
    assert!(r2 > r1);
    let kv = store.get("/t/a").await.unwrap().expect("key after overwrite");
    assert_eq!((kv.value.as_slice(), kv.create_revision, kv.mod_revision), (&b"2"[..], r1, r2));
    assert_eq!(store.revision().await.unwrap(), r2);
}

/// List returns exactly the keys under the prefix, in key order, with the revision it was read at.
pub async fn list_by_prefix(store: DynStore) {
    for k in ["/t/b/2", "/t/a/1", "/t/b/1", "/t/bb/1", "/t/a/2", "/u/x"] {
        store.put(k, v(k), None).await.unwrap();
    }
    let last = store.put("/t/b/3", v("3"), None).await.unwrap();
    let list = store.list("/t/b/").await.unwrap();
    let keys: Vec<&str> = list.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/t/b/1", "/t/b/2", "/t/b/3"]);
    assert_eq!(list.revision, last);
    assert_eq!(list.kvs[0].value, v("/t/b/1"));
    let all = store.list("/t/").await.unwrap();
    assert_eq!(all.kvs.len(), 6);
    assert!(store.list("/nothing/").await.unwrap().kvs.is_empty());
}

/// Delete reports whether the key existed; delete_prefix how many keys it removed; a no-op changes no revision.
pub async fn delete_and_delete_prefix(store: DynStore) {
    store.put("/t/a", v("1"), None).await.unwrap();
    for k in ["/t/p/1", "/t/p/2", "/t/p/3", "/t/q/1"] {
        store.put(k, v("x"), None).await.unwrap();
    }
    let before = store.revision().await.unwrap();
    let (rev, existed) = store.delete("/t/a").await.unwrap();
    assert!(existed);
    assert_eq!(rev, before + 1);
    assert_eq!(store.get("/t/a").await.unwrap(), None);
    let (rev2, existed) = store.delete("/t/a").await.unwrap();
    assert!(!existed);
    assert_eq!(rev2, rev);
    let (rev3, n) = store.delete_prefix("/t/p/").await.unwrap();
    assert_eq!(n, 3);
    assert_eq!(rev3, rev + 1, "a prefix delete is one revision");
    let keys: Vec<String> = store.list("/t/").await.unwrap().kvs.into_iter().map(|kv| kv.key).collect();
    assert_eq!(keys, ["/t/q/1"]);
    let (_, n) = store.delete_prefix("/t/p/").await.unwrap();
    assert_eq!(n, 0);
}

/// Compare-and-swap on existence, mod revision and value: conflicts fail and run the failure ops.
pub async fn txn_compare_and_swap(store: DynStore) {
    let create = |key: &str, value: &str| Txn {
        compare: vec![Compare::absent(key)],
        success: vec![TxnOp::Put { key: key.into(), value: v(value), lease: None }],
        failure: vec![TxnOp::Get { key: key.into() }],
    };
    let first = store.txn(create("/t/cas", "a")).await.unwrap();
    assert!(first.succeeded);
    let second = store.txn(create("/t/cas", "b")).await.unwrap();
    assert!(!second.succeeded, "create of an existing key must conflict");
    assert_eq!(second.revision, first.revision, "a failed txn without writes changes nothing");
    let current = second.gets[0].clone().expect("failure get returns the key");
    assert_eq!(current.value, v("a"));

    let update = |rev, value: &str| Txn {
        compare: vec![Compare::mod_revision("/t/cas", rev)],
        success: vec![TxnOp::Put { key: "/t/cas".into(), value: v(value), lease: None }],
        failure: vec![],
    };
    let ok = store.txn(update(current.mod_revision, "c")).await.unwrap();
    assert!(ok.succeeded);
    let stale = store.txn(update(current.mod_revision, "d")).await.unwrap();
    assert!(!stale.succeeded, "an update from a stale revision must conflict");
    assert_eq!(store.get("/t/cas").await.unwrap().unwrap().value, v("c"));

    let by_value = |expected: &str| Txn {
        compare: vec![Compare { key: "/t/cas".into(), target: CompareTarget::Value(v(expected)) }],
        success: vec![TxnOp::Delete { key: "/t/cas".into() }],
        failure: vec![],
    };
    assert!(!store.txn(by_value("a")).await.unwrap().succeeded);
    assert!(store.txn(by_value("c")).await.unwrap().succeeded);
    assert_eq!(store.get("/t/cas").await.unwrap(), None);
    assert!(!store.txn(by_value("c")).await.unwrap().succeeded, "a value compare on a missing key fails");
}

/// Every write of one transaction shares one revision, and watchers see them together.
pub async fn txn_is_atomic_in_one_revision(store: DynStore) {
    store.put("/t/old", v("x"), None).await.unwrap();
    let mut watch = store.watch("/t/", 0).await.unwrap();
    let r = store
        .txn(Txn {
            compare: vec![],
            success: vec![
                TxnOp::Put { key: "/t/x".into(), value: v("1"), lease: None },
                TxnOp::Put { key: "/t/y".into(), value: v("2"), lease: None },
                TxnOp::Delete { key: "/t/old".into() },
            ],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(r.succeeded);
    for key in ["/t/x", "/t/y"] {
        assert_eq!(store.get(key).await.unwrap().unwrap().mod_revision, r.revision);
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let e = next_event(&mut watch).await;
        assert_eq!(e.kv.mod_revision, r.revision);
        seen.push((e.kind, e.kv.key));
    }
    seen.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        seen,
        [(EventKind::Delete, "/t/old".to_string()), (EventKind::Put, "/t/x".into()), (EventKind::Put, "/t/y".into())]
    );
}

/// A watch sees every change under its prefix, nothing else, in revision order.
pub async fn watch_ordering_and_prefix(store: DynStore) {
    let mut watch = store.watch("/t/w/", 0).await.unwrap();
    let mut revs = Vec::new();
    for i in 0..20 {
        store.put("/t/other", v("x"), None).await.unwrap();
        revs.push(store.put(&format!("/t/w/{}", i % 3), v(&i.to_string()), None).await.unwrap());
    }
    let (del_rev, _) = store.delete("/t/w/1").await.unwrap();
    revs.push(del_rev);
    for (i, rev) in revs.iter().enumerate() {
        let e = next_event(&mut watch).await;
        assert_eq!(e.kv.mod_revision, *rev);
        if i < 20 {
            assert_eq!((e.kind, e.kv.key, e.kv.value), (EventKind::Put, format!("/t/w/{}", i % 3), v(&i.to_string())));
        } else {
            assert_eq!((e.kind, e.kv.key.as_str()), (EventKind::Delete, "/t/w/1"));
        }
    }
}

/// A watch from an old revision replays history from there, then continues live.
pub async fn watch_resumes_from_revision(store: DynStore) {
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(store.put("/t/r", v(&i.to_string()), None).await.unwrap());
    }
    let mut watch = store.watch("/t/r", revs[2]).await.unwrap();
    store.put("/t/r", v("5"), None).await.unwrap();
    let got = next_events(&mut watch, 3).await;
    let values: Vec<Vec<u8>> = got.into_iter().map(|(_, _, v)| v).collect();
    assert_eq!(values, [v("2"), v("3"), v("4")]);
    let live = next_event(&mut watch).await;
    assert_eq!(live.kv.value, v("5"));
    // From a future revision: nothing until that revision is reached.
    let now = store.revision().await.unwrap();
    let mut future = store.watch("/t/r", now + 2).await.unwrap();
    store.put("/t/r", v("6"), None).await.unwrap();
    store.put("/t/r", v("7"), None).await.unwrap();
    assert_eq!(next_event(&mut future).await.kv.value, v("7"));
}

/// "List, then watch from the list's revision + 1" misses nothing, even with a writer running concurrently.
pub async fn list_then_watch_loses_nothing(store: DynStore) {
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                store.put(&format!("/t/l/{i:03}"), v("x"), None).await.unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let list = store.list("/t/l/").await.unwrap();
    let mut watch = store.watch("/t/l/", list.revision + 1).await.unwrap();
    let mut seen: Vec<String> = list.kvs.into_iter().map(|kv| kv.key).collect();
    writer.await.unwrap();
    while seen.len() < 200 {
        let e = next_event(&mut watch).await;
        assert_eq!(e.kind, EventKind::Put);
        seen.push(e.kv.key);
    }
    let expected: Vec<String> = (0..200).map(|i| format!("/t/l/{i:03}")).collect();
    assert_eq!(seen, expected, "every key exactly once, in order");
}

/// A key on a lease vanishes when the lease expires, and watchers see the delete.
pub async fn lease_expiry_notifies_watchers(store: DynStore) {
    let lease = store.grant(Duration::from_secs(2)).await.unwrap();
    store.put("/t/lease/a", v("1"), Some(lease)).await.unwrap();
    store.put("/t/lease/b", v("2"), None).await.unwrap();
    assert_eq!(store.get("/t/lease/a").await.unwrap().unwrap().lease, lease);
    let mut watch = store.watch("/t/lease/", 0).await.unwrap();
    let e = next_event(&mut watch).await;
    assert_eq!((e.kind, e.kv.key.as_str()), (EventKind::Delete, "/t/lease/a"));
    assert_eq!(store.get("/t/lease/a").await.unwrap(), None);
    assert!(store.get("/t/lease/b").await.unwrap().is_some(), "keys without the lease stay");
    assert!(matches!(store.keep_alive(lease).await, Err(StoreError::LeaseNotFound(_))));
    assert!(matches!(store.put("/t/lease/c", v("3"), Some(lease)).await, Err(StoreError::LeaseNotFound(_))));
}

/// Keep-alive refreshes a lease past its TTL.
pub async fn keep_alive_keeps_keys(store: DynStore) {
    let lease = store.grant(Duration::from_secs(2)).await.unwrap();
    store.put("/t/k", v("1"), Some(lease)).await.unwrap();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        store.keep_alive(lease).await.unwrap();
    }
    assert!(store.get("/t/k").await.unwrap().is_some(), "a refreshed lease keeps its keys");
}

/// Revoke deletes the lease's keys at once (watchers see it); the lease is gone afterwards.
pub async fn revoke_deletes_keys(store: DynStore) {
    let lease = store.grant(Duration::from_secs(60)).await.unwrap();
    store.put("/t/v/1", v("1"), Some(lease)).await.unwrap();
    store.put("/t/v/2", v("2"), Some(lease)).await.unwrap();
    let mut watch = store.watch("/t/v/", 0).await.unwrap();
    store.revoke(lease).await.unwrap();
    let mut keys: Vec<String> = next_events(&mut watch, 2)
        .await
        .into_iter()
        .map(|(k, key, _)| {
            assert_eq!(k, EventKind::Delete);
            key
        })
        .collect();
    keys.sort();
    assert_eq!(keys, ["/t/v/1", "/t/v/2"]);
    assert!(store.list("/t/v/").await.unwrap().kvs.is_empty());
    assert!(matches!(store.revoke(lease).await, Err(StoreError::LeaseNotFound(_))));
    assert!(matches!(store.keep_alive(lease).await, Err(StoreError::LeaseNotFound(_))));
}

/// A watch from a compacted revision fails with the distinct error; from the compaction revision on it works.
pub async fn compaction_error(store: DynStore) {
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(store.put("/t/c", v(&i.to_string()), None).await.unwrap());
    }
    store.compact(revs[3]).await.unwrap();
    store.compact(revs[2]).await.unwrap(); // at or below the compaction point: nothing to do
    match store.watch("/t/c", revs[1]).await {
        Err(StoreError::Compacted { requested, compacted }) => {
            assert_eq!(requested, revs[1]);
            assert_eq!(compacted, revs[3]);
        }
        Err(e) => panic!("expected the compaction error, got {e}"),
        Ok(_) => panic!("a watch from a compacted revision must fail"),
    }
    let mut ok = store.watch("/t/c", revs[3]).await.unwrap();
    let got = next_events(&mut ok, 2).await;
    assert_eq!(got.into_iter().map(|(_, _, v)| v).collect::<Vec<_>>(), [v("3"), v("4")]);
    assert_eq!(store.get("/t/c").await.unwrap().unwrap().value, v("4"), "compaction keeps the current state");
    assert!(!is_compacted(&store.list("/t/").await));
}
