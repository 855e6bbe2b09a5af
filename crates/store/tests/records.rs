//! Typed records over a real (embedded) store: a create-if-absent claim in a transaction whose failure reads the
//! holder back, ids parsed from watched keys, and one network's records listed apart from the others'.

use std::net::Ipv4Addr;
use std::sync::Arc;

use fos_api::network::{AddressHolder, NetworkName, Segment, SegmentRecord};
use fos_api::Keys;
use fos_store::records::{Addresses, Segments, Vlans};
use fos_store::{EmbeddedConfig, EmbeddedStore, Records, Store, Txn};

fn open() -> (tempfile::TempDir, Records) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap());
    (dir, Records::new(store, Keys::default()))
}

fn holder(node: &str) -> AddressHolder {
    AddressHolder { node: node.into(), instance: None, nic: 0, mac: None, gateway: true, placed: false }
}

/// Takes `id` for `node` unless taken; the holder after the attempt.
async fn claim(records: &Records, id: &(NetworkName, Ipv4Addr), node: &str) -> (bool, AddressHolder) {
    let txn = Txn {
        compare: vec![records.absent::<Addresses>(id)],
        success: vec![records.put_op::<Addresses>(id, &holder(node)).unwrap()],
        failure: vec![records.get_op::<Addresses>(id)],
    };
    let result = records.store().txn(txn).await.unwrap();
    if result.succeeded {
        return (true, holder(node));
    }
    let kv = result.gets[0].as_ref().expect("the holder read back");
    let (got, current) = records.decode::<Addresses>(kv).expect("an address key").unwrap();
    assert_eq!(&got, id);
    (false, current.value)
}

#[tokio::test]
async fn claims_are_create_only_and_read_their_holder_back() {
    let (_dir, records) = open();
    let net = NetworkName::new("default", "net0");
    let gw = (net.clone(), Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(claim(&records, &gw, "n1").await, (true, holder("n1")));
    assert_eq!(claim(&records, &gw, "n2").await, (false, holder("n1")), "taken: n1 holds it");

    let other = NetworkName::new("default", "net1");
    records.put::<Addresses>(&(other.clone(), Ipv4Addr::new(10, 1, 0, 1)), &holder("n2"), None).await.unwrap();
    let prefix = records.keys().ipam_network_prefix(&net.tenant, &net.name);
    let (mine, _) = records.list_in::<Addresses>(&prefix).await.unwrap();
    let ids: Vec<_> = mine.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, std::slice::from_ref(&gw));
    assert_eq!(records.list::<Addresses>().await.unwrap().0.len(), 2);

    // A watched delete has no value: its id comes from the key alone.
    let key = records.key::<Addresses>(&gw);
    assert!(records.delete::<Addresses>(&gw).await.unwrap());
    assert_eq!(records.parse::<Addresses>(&key), Some(gw));
    assert_eq!(records.parse::<Segments>(&key), None);
}

#[tokio::test]
async fn a_segment_and_its_id_claim_are_read_typed() {
    let (_dir, records) = open();
    let net = NetworkName::new("default", "net0");
    let record = SegmentRecord { network: net.clone(), segment: Segment::Vlan { id: 100 } };
    let txn = Txn {
        compare: vec![records.absent::<Segments>(&net), records.absent::<Vlans>(&100)],
        success: vec![records.put_op::<Segments>(&net, &record).unwrap(), records.put_op::<Vlans>(&100, &net).unwrap()],
        failure: vec![],
    };
    assert!(records.store().txn(txn).await.unwrap().succeeded);
    assert_eq!(records.get::<Segments>(&net).await.unwrap().unwrap().value, record);
    assert_eq!(records.get::<Vlans>(&100).await.unwrap().unwrap().value, net);
    let (segments, _) = records.list::<Segments>().await.unwrap();
    assert_eq!(segments.len(), 1);
}

#[tokio::test]
async fn an_update_retries_on_conflict_and_gives_up_with_a_conflict() {
    use fos_api::wire::{AppRecord, STATE_ANNOTATION};
    use fos_store::records::{Apps, Change, UPDATE_ATTEMPTS};
    use fos_store::StoreError;

    let (_dir, records) = open();
    let id = ("default".to_string(), "e".to_string());
    let object = serde_json::from_value(serde_json::json!({
        "apiVersion": "fos/v1", "kind": "Entity", "metadata": {"name": "e"},
        "spec": {"kind": "native", "command": ["true"]}
    }))
    .unwrap();
    records.put::<Apps>(&id, &AppRecord { object, generation: 1, deleting: false, created: None }, None).await.unwrap();

    // Another writer changes the record while the first attempt decides: the update runs again on the new record.
    let mut calls = 0;
    let (after, _) = records
        .update::<Apps, StoreError, _>(&id, |current| {
            calls += 1;
            let mut rec = current.expect("the record").clone();
            if calls == 1 {
                let store = records.store().clone();
                let (key, mut other) = (records.key::<Apps>(&id), rec.clone());
                other.generation = 7;
                let value = serde_json::to_vec(&other).unwrap();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    rt.block_on(store.put(&key, value, None)).unwrap();
                })
                .join()
                .unwrap();
            }
            rec.generation += 1;
            Ok(Change::Put(rec))
        })
        .await
        .unwrap();
    assert_eq!(calls, 2, "the conflicting write made it decide again");
    assert_eq!(after.unwrap().generation, 8, "decided on the record the other writer left");

    // A record that changes under every attempt: a clear conflict after the last one, and nothing half-written.
    let mut attempts = 0;
    let result = records
        .update::<Apps, StoreError, _>(&id, |current| {
            attempts += 1;
            let store = records.store().clone();
            let key = records.key::<Apps>(&id);
            let mut other = current.expect("the record").clone();
            other.generation += 100;
            let value = serde_json::to_vec(&other).unwrap();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(store.put(&key, value, None)).unwrap();
            })
            .join()
            .unwrap();
            let mut mine = current.expect("the record").clone();
            mine.object = {
                let mut o = mine.object.clone();
                if let fos_api::Object::Entity(e) = &mut o {
                    e.metadata.annotations.insert(STATE_ANNOTATION.into(), "Paused".into());
                }
                o
            };
            Ok(Change::Put(mine))
        })
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(ref m)) if m.contains("kept changing")), "{result:?}");
    assert_eq!(attempts, UPDATE_ATTEMPTS);
    let stored = records.get::<Apps>(&id).await.unwrap().unwrap().value;
    assert!(stored.object.metadata().annotations.is_empty(), "no attempt of the loser went in");
}

#[tokio::test]
async fn a_key_of_another_kind_is_not_decoded_and_a_bare_node_info_reads_as_a_node() {
    use fos_api::{NodeInfo, NodeStatus};
    use fos_store::records::{ActualInstances, NodeInfos, NodeStatuses};

    let (_dir, records) = open();
    let info: NodeInfo =
        serde_json::from_value(serde_json::json!({"arch": "x86_64", "cpu": {"count": 2}, "memory": "1Gi"})).unwrap();
    let key = records.keys().node_info("n1");
    records.store().put(&key, serde_json::to_vec(&info).unwrap(), None).await.unwrap();
    let kv = records.store().get(&key).await.unwrap().unwrap();
    assert!(records.decode::<ActualInstances>(&kv).is_none(), "a node info key is not an instance's");
    let (name, node) = records.decode::<NodeInfos>(&kv).unwrap().unwrap();
    assert_eq!((name.as_str(), node.value.metadata.name.as_str()), ("n1", "n1"));

    // A node without a status record is not ready; with one, it has that status.
    records.store().put(&records.keys().node_info("n2"), serde_json::to_vec(&info).unwrap(), None).await.unwrap();
    let status: NodeStatus =
        serde_json::from_value(serde_json::json!({"ready": true, "address": "10.0.0.2:7887"})).unwrap();
    records.put::<NodeStatuses>(&"n2".to_string(), &status, None).await.unwrap();
    let nodes = records.nodes().await.unwrap();
    let ready: Vec<(&str, bool)> = nodes.iter().map(|n| (n.metadata.name.as_str(), n.status.ready)).collect();
    assert_eq!(ready, [("n1", false), ("n2", true)]);
    assert_eq!(nodes[1].status.address.as_deref(), Some("10.0.0.2:7887"));

    // An unreadable record is a codec error naming its key.
    records.store().put(&records.keys().node_status("n3"), b"{oops".to_vec(), None).await.unwrap();
    let err = records.get::<NodeStatuses>(&"n3".to_string()).await.unwrap_err();
    assert!(err.to_string().contains("/fos/0/actual/heartbeats/n3"), "{err}");
}
