//! The conformance suite against a real etcd (the system's binary, started per test on loopback ports).

mod conformance;

use std::sync::Arc;

use fos_store::testing::EtcdServer;
use fos_store::Store;

async fn etcd() -> (EtcdServer, Arc<dyn Store>) {
    let server = EtcdServer::start().await.expect("start etcd");
    let store = server.store().await.expect("connect to etcd");
    (server, store)
}

conformance_tests!(etcd);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_larger_than_one_answer_comes_whole_at_one_revision() {
    let (_server, store) = etcd().await;
    // 5,000 keys of 1.2 KB: about 6 MB, more than the 4 MB a gRPC answer holds by default, and more than one page.
    let value = vec![b'v'; 1200];
    for chunk in (0..5000).collect::<Vec<_>>().chunks(100) {
        let txn = fos_store::Txn {
            compare: vec![],
            success: chunk
                .iter()
                .map(|i| fos_store::TxnOp::Put { key: format!("/big/{i:05}"), value: value.clone(), lease: None })
                .collect(),
            failure: vec![],
        };
        assert!(store.txn(txn).await.expect("txn").succeeded);
    }
    store.put("/bigger", b"outside the prefix".to_vec(), None).await.expect("put");
    let listed = store.list("/big/").await.expect("list");
    assert_eq!(listed.kvs.len(), 5000);
    assert!(listed.kvs.windows(2).all(|w| w[0].key < w[1].key), "in key order, no repeats");
    assert_eq!(listed.kvs[4999].key, "/big/04999");
    let current = store.put("/big/00000", b"later".to_vec(), None).await.expect("put");
    assert!(listed.revision < current);
    assert!(listed.kvs.iter().all(|kv| kv.mod_revision <= listed.revision), "one snapshot");
    let everything = store.list("").await.expect("list all");
    assert_eq!(everything.kvs.len(), 5001, "the empty prefix lists every key, across pages");
}
