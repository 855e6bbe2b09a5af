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
