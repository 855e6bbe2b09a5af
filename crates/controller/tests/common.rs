//! Shared set-up of the controller's tests: a real embedded store in a temp dir, a one-node placer standing in for
//! the scheduler seam, a context, and helpers that play the agent's part by writing actual records.

#![allow(dead_code)]

use std::sync::Arc;

use fos_api::plan::{Placement, Plan, Unschedulable};
use fos_api::wire::{AppRecord, AppStatus};
use fos_api::{ActualInstance, ApplicationSpec, DesiredInstance, InstanceId, Keys, Lifecycle, Node, State};
use fos_controller::{Context, Metrics, Placer};
use fos_scheduler::{Allocation, ClusterSnapshot};
use fos_store::{EmbeddedConfig, EmbeddedStore, Store};

/// Places everything on the first ready node, or reports the component unplaceable.
pub struct FirstNode;

impl Placer for FirstNode {
    fn place(&self, snap: &ClusterSnapshot, held: &[Allocation], t: &str, a: &str, app: &ApplicationSpec) -> Plan {
        let mut plan = Plan::default();
        let node = snap.nodes().iter().find(|n| n.ready).map(|n| n.name.clone());
        for c in &app.components {
            for r in 0..c.replicas {
                let id = InstanceId::new(t, a, &c.name, r);
                if held.iter().any(|h| h.instance == id) {
                    plan.kept.push(id);
                    continue;
                }
                match &node {
                    Some(n) => plan.placements.push(Placement {
                        instance: id,
                        node: n.clone(),
                        devices: Default::default(),
                        cpu_millis: 0,
                        memory_bytes: 0,
                        disk_bytes: 0,
                        score: 0,
                    }),
                    None => {
                        let why = "0 of 0 nodes are ready".to_string();
                        plan.unschedulable.push(Unschedulable::failed(t, a, &c.name, c.replicas, 0, why));
                        break;
                    }
                }
            }
        }
        plan
    }
}

/// A test world: a temp dir, a store, a context.
pub struct World {
    pub _dir: tempfile::TempDir,
    pub ctx: Context,
}

pub fn world() -> World {
    world_with(Arc::new(FirstNode))
}

/// A world on `store` (an etcd, say) placing on the first node.
pub fn world_on(store: Arc<dyn Store>) -> World {
    let dir = tempfile::tempdir().unwrap();
    World { _dir: dir, ctx: context(store, Arc::new(FirstNode)) }
}

/// A world placing with `placer`.
pub fn world_with(placer: Arc<dyn Placer>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("store"))).unwrap());
    World { _dir: dir, ctx: context(store, placer) }
}

fn context(store: Arc<dyn Store>, placer: Arc<dyn Placer>) -> Context {
    Context {
        store,
        keys: Keys::default(),
        placer,
        metrics: Arc::new(Metrics::default()),
        node_name: "n1".into(),
        logs: Arc::new(fos_controller::api::logs::NoLogs),
        inbox: Arc::new(fos_controller::ops::transfer::NoInbox),
        security: Default::default(),
        timing: Default::default(),
    }
}

impl World {
    pub async fn add_node(&self, name: &str) {
        let node: Node = serde_yaml_ng::from_str(&format!(
            "metadata: {{name: {name}}}\nspec: {{arch: x86_64, cpu: {{count: 2}}, memory: 1Gi, runtimes: [native]}}\n"
        ))
        .unwrap();
        let k = &self.ctx.keys;
        self.ctx.store.put(&k.node_info(name), serde_json::to_vec(&node).unwrap(), None).await.unwrap();
        let status = serde_json::json!({ "ready": true, "address": "127.0.0.1:7887" });
        self.ctx.store.put(&k.node_status(name), serde_json::to_vec(&status).unwrap(), None).await.unwrap();
    }

    pub async fn desired(&self, id: &InstanceId) -> Option<DesiredInstance> {
        let list = self.ctx.store.list(&self.ctx.keys.desired_nodes_prefix()).await.unwrap();
        list.kvs
            .iter()
            .filter(|kv| kv.key.ends_with(&format!("/instances/{id}")))
            .map(|kv| serde_json::from_slice(&kv.value).unwrap())
            .next()
    }

    /// Plays the agent: reports `id` in `state` at the desired generation.
    pub async fn report(&self, id: &InstanceId, state: State, ready: bool) {
        let d = self.desired(id).await.expect("a desired record to report on");
        let mut a = ActualInstance::new(id.clone(), &d.node);
        a.lifecycle = Lifecycle::at(Some(state));
        a.ready = ready;
        a.observed_generation = d.generation;
        self.ctx
            .store
            .put(&self.ctx.keys.actual_instance(&d.node, id), serde_json::to_vec(&a).unwrap(), None)
            .await
            .unwrap();
    }

    /// Plays the agent: the instance is gone.
    pub async fn remove_actual(&self, node: &str, id: &InstanceId) {
        self.ctx.store.delete(&self.ctx.keys.actual_instance(node, id)).await.unwrap();
    }

    pub async fn status(&self, tenant: &str, app: &str) -> Option<AppStatus> {
        let kv = self.ctx.store.get(&self.ctx.keys.actual_app(tenant, app)).await.unwrap()?;
        Some(serde_json::from_slice(&kv.value).unwrap())
    }

    pub async fn record(&self, tenant: &str, app: &str) -> Option<AppRecord> {
        let kv = self.ctx.store.get(&self.ctx.keys.desired_app(tenant, app)).await.unwrap()?;
        Some(serde_json::from_slice(&kv.value).unwrap())
    }

    pub async fn reconcile(&self) {
        fos_controller::reconcile::reconcile_all(&self.ctx).await.unwrap();
    }
}

pub const WORDPRESS: &str = r#"
apiVersion: fos/v1
kind: Application
metadata: {name: wp}
spec:
  components:
    - name: web
      need: [db]
      entity: {kind: native, command: [sleep, "100"], ports: [{port: 8080}]}
    - name: db
      entity: {kind: native, command: [sleep, "100"], readiness: {tcp: 3306}}
"#;

/// An HTTP client for the in-process API (plain HTTP; reqwest is built without a default TLS provider).
pub fn http() -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder().tls_backend_preconfigured(tls).build().expect("a client")
}
