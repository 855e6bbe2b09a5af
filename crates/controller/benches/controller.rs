//! Controller benchmark: the cost of one controller pass after one application changes, with many unchanged
//! applications stored (the goal: independent of how many, at most 5 ms), on a real embedded store with the fos
//! scheduler. For 100 and 1,000 applications of 5 instances (a `need` chain of three components over ten nodes):
//! the first pass placing everything, then per change the time from the watch event of the changed application
//! record to its actions committed (its 5 instances restarted at a new generation, its status, its events), and the
//! same for a new application placed among them; beside them, the floor: the same store writing one change's records
//! as one bare transaction. Prints a table. Run with `cargo bench -p fos-controller`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fos_api::manifest::Object;
use fos_api::wire::AppRecord;
use fos_api::{Keys, Node, NodeStatus};
use fos_controller::ops::logs::NoLogs;
use fos_controller::reconcile::Controller;
use fos_controller::{Context, Metrics, SchedulerPlacer};
use fos_store::records::{Apps, DesiredInstances, NodeInfos, NodeStatuses};
use fos_store::{EmbeddedConfig, EmbeddedStore, Records, Store, Txn, TxnOp, MAX_TXN_OPS};
use futures::StreamExt;

const NODES: usize = 10;
const CHANGES: usize = 100;

fn node(name: &str) -> Node {
    serde_yaml_ng::from_str(&format!(
        "metadata: {{name: {name}}}\nspec: {{arch: x86_64, cpu: {{count: 64}}, memory: 256Gi, runtimes: [native]}}\n"
    ))
    .expect("node")
}

/// Application `i` at revision `rev` of its spec (the revision goes into every component's environment).
fn app(i: usize, rev: usize) -> AppRecord {
    let yaml = format!(
        "apiVersion: fos/v1\nkind: Application\nmetadata: {{name: app-{i}}}\nspec:\n  components:\n\
         \x20   - {{name: db, entity: {{kind: native, command: [sleep, '1000'], env: {{REV: '{rev}'}}, \
         resources: {{cpu: 10m}}}}}}\n\
         \x20   - {{name: api, replicas: 2, need: [db], entity: {{kind: native, command: [sleep, '1000'], \
         env: {{REV: '{rev}'}}, resources: {{cpu: 10m}}}}}}\n\
         \x20   - {{name: web, replicas: 2, need: [api], entity: {{kind: native, command: [sleep, '1000'], \
         env: {{REV: '{rev}'}}, resources: {{cpu: 10m}}}}}}\n"
    );
    let value: serde_json::Value = serde_yaml_ng::from_str(&yaml).expect("yaml");
    let object = Object::from_value(value).expect("application");
    AppRecord { object, generation: rev as u64 + 1, deleting: false, created: None }
}

/// Takes watch events until the one of `key` (the controller's earlier writes come first), then times that event's
/// pass: taking it in and reconciling what it woke.
async fn timed(controller: &mut Controller, stream: &mut fos_store::WatchStream, key: &str) -> Duration {
    loop {
        let event = stream.next().await.expect("watch open").expect("event");
        let mine = event.kv.key == key;
        let started = Instant::now();
        controller.take(event);
        if mine {
            controller.run_queued(Some(stream)).await.expect("pass");
            return started.elapsed();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct Row {
    apps: usize,
    first_pass: Duration,
    change: Vec<Duration>,
    new_app: Vec<Duration>,
    resync: Duration,
    floor: Vec<Duration>,
}

async fn run(apps: usize) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("store"));
    let keys = Keys::default();
    let records = Records::new(store.clone(), keys.clone());
    for n in 0..NODES {
        let name = format!("n{n}");
        records.put::<NodeInfos>(&name, &node(&name), None).await.expect("node");
        let status: NodeStatus = serde_json::from_str(r#"{"ready": true}"#).expect("status");
        records.put::<NodeStatuses>(&name, &status, None).await.expect("status");
    }
    let puts: Vec<_> = (0..apps)
        .map(|i| records.put_op::<Apps>(&("default".into(), format!("app-{i}")), &app(i, 0)).expect("op"))
        .collect();
    for chunk in puts.chunks(MAX_TXN_OPS) {
        store.txn(Txn { compare: vec![], success: chunk.to_vec(), failure: vec![] }).await.expect("txn");
    }
    let ctx = Context {
        store: store.clone(),
        keys: keys.clone(),
        placer: Arc::new(SchedulerPlacer::default()),
        metrics: Arc::new(Metrics::default()),
        node_name: "n0".into(),
        logs: Arc::new(NoLogs),
        inbox: Arc::new(fos_controller::ops::transfer::NoInbox),
        security: Default::default(),
        timing: Default::default(),
    };

    let started = Instant::now();
    let (mut controller, revision) = Controller::start(&ctx).await.expect("start");
    controller.run_queued(None).await.expect("first pass");
    let first_pass = started.elapsed();
    assert_eq!(controller.view().desired.len(), apps * 5, "every instance placed");

    let mut stream = store.watch(keys.root(), revision + 1).await.expect("watch");
    let mut change = Vec::new();
    for c in 0..CHANGES {
        let i = (c * 7919) % apps;
        let id = ("default".to_string(), format!("app-{i}"));
        records.put::<Apps>(&id, &app(i, c + 1), None).await.expect("change");
        change.push(timed(&mut controller, &mut stream, &records.key::<Apps>(&id)).await);
    }
    let mut new_app = Vec::new();
    for c in 0..CHANGES {
        let id = ("default".to_string(), format!("app-{}", apps + c));
        records.put::<Apps>(&id, &app(apps + c, 0), None).await.expect("new");
        new_app.push(timed(&mut controller, &mut stream, &records.key::<Apps>(&id)).await);
    }
    let started = Instant::now();
    controller.resync();
    controller.run_queued(None).await.expect("resync");
    let resync = started.elapsed();
    // The floor, in the same run: the writes of one change (5 desired records and a status) as one bare transaction.
    let mut floor = Vec::new();
    let (desired, _) = records.list::<DesiredInstances>().await.expect("list");
    for c in 0..CHANGES {
        let ops: Vec<_> = desired[(c * 5) % (desired.len() - 5)..][..6]
            .iter()
            .map(|(_, v)| TxnOp::Put {
                key: format!("/floor{}", v.key),
                value: serde_json::to_vec(&v.value).expect("json"),
                lease: None,
            })
            .collect();
        let started = Instant::now();
        store.txn(Txn { compare: vec![], success: ops, failure: vec![] }).await.expect("txn");
        floor.push(started.elapsed());
    }
    change.sort();
    new_app.sort();
    floor.sort();
    Row { apps, first_pass, change, new_app, resync, floor }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let rows: Vec<Row> = [100, 1000].into_iter().map(|n| rt.block_on(run(n))).collect();
    println!("\ncontroller pass after one change (embedded store, {NODES} nodes, 5 instances per application)");
    println!(
        "{:>6}  {:>12}  {:>14}  {:>14}  {:>14}  {:>14}  {:>12}  {:>16}",
        "apps", "first pass", "change p50", "change p99", "new app p50", "new app p99", "resync", "bare txn p50"
    );
    for r in &rows {
        println!(
            "{:>6}  {:>12}  {:>14}  {:>14}  {:>14}  {:>14}  {:>12}  {:>16}",
            r.apps,
            ms(r.first_pass),
            ms(percentile(&r.change, 0.5)),
            ms(percentile(&r.change, 0.99)),
            ms(percentile(&r.new_app, 0.5)),
            ms(percentile(&r.new_app, 0.99)),
            ms(r.resync),
            ms(percentile(&r.floor, 0.5))
        );
    }
    println!("goal: a change's pass ≤ 5 ms and the same for 100 and 1,000 applications");
    println!("bare txn: the same store writing a change's 6 records in one transaction, no controller (the floor)");
}
