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
    AddressHolder { node: node.into(), instance: None, nic: 0, mac: None, gateway: true }
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
