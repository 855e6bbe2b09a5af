//! Test support: an embedded store and an agent in temporary directories, desired records, and waiting on actual
//! records through a store watch.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use fos_agent::{Agent, AgentConfig, AgentHandle, NodeConfig};
use fos_api::lifecycle::State;
use fos_api::manifest::EntitySpec;
use fos_api::record::{ActualInstance, DesiredInstance, InstanceId};
use fos_api::Keys;
use fos_store::records::{ActualInstances, DesiredInstances};
use fos_store::{EmbeddedConfig, EmbeddedStore, EventKind, Records, Store, WatchStream};
use futures::StreamExt;

pub struct Env {
    pub store: Arc<dyn Store>,
    pub keys: Keys,
    pub records: Records,
    pub agent: Option<AgentHandle>,
    pub node: String,
    pub data: tempfile::TempDir,
    _store_dir: tempfile::TempDir,
}

pub fn agent_config(node: &str, data: &std::path::Path) -> AgentConfig {
    let node_cfg = NodeConfig::parse(
        // No VM runtime: a libvirtd the machine may run is not these tests' business.
        &format!(
            "name: {node}\ndataDir: {}\nprobePort: 0\nheartbeatTtl: 2s\nadvertise: 127.0.0.1\nruntimes: {{vm: {{enabled: false}}}}\n",
            data.display()
        ),
        "test",
    )
    .unwrap();
    let mut c = AgentConfig::new(node_cfg);
    c.driver.backoff_base = Duration::from_millis(100);
    c.driver.backoff_max = Duration::from_secs(2);
    c.driver.probe_interval = Duration::from_millis(100);
    c.stop_grace = Duration::from_secs(2);
    c.rtt_interval = Duration::from_millis(200);
    c
}

impl Env {
    pub async fn start(node: &str) -> Env {
        let store_dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(store_dir.path())).unwrap());
        Self::start_on(node, store, store_dir).await
    }

    pub async fn start_on(node: &str, store: Arc<dyn Store>, store_dir: tempfile::TempDir) -> Env {
        Self::start_configured(node, store, store_dir, |_| {}).await
    }

    /// Starts an agent whose configuration `configure` adjusts (also used by [`Env::restart`]).
    pub async fn start_configured(
        node: &str,
        store: Arc<dyn Store>,
        store_dir: tempfile::TempDir,
        configure: impl FnOnce(&mut AgentConfig),
    ) -> Env {
        let data = tempfile::tempdir().unwrap();
        let mut config = agent_config(node, data.path());
        configure(&mut config);
        let agent = Agent::start(config, store.clone()).await.unwrap();
        let records = Records::new(store.clone(), Keys::default());
        Env {
            store,
            keys: Keys::default(),
            records,
            agent: Some(agent),
            node: node.to_string(),
            data,
            _store_dir: store_dir,
        }
    }

    pub fn desired(&self, component: &str, argv: &[&str]) -> DesiredInstance {
        DesiredInstance::new(
            InstanceId::new("default", "test", component, 0),
            self.node.clone(),
            EntitySpec::native(argv.iter().copied()),
        )
    }

    /// Writes a desired record, as the controller does.
    pub async fn put(&self, d: &DesiredInstance) {
        self.records.put::<DesiredInstances>(&(self.node.clone(), d.id.clone()), d, None).await.unwrap();
    }

    pub async fn delete(&self, id: &InstanceId) {
        self.records.delete::<DesiredInstances>(&(self.node.clone(), id.clone())).await.unwrap();
    }

    /// A watch on one instance's actual record from now on.
    pub async fn watch_actual(&self, id: &InstanceId) -> ActualWatch {
        let key = self.records.key::<ActualInstances>(&(self.node.clone(), id.clone()));
        let rev = self.store.revision().await.unwrap();
        let stream = self.store.watch(&key, rev + 1).await.unwrap();
        let current = self.actual(id).await;
        ActualWatch { records: self.records.clone(), stream, current, seen: Vec::new() }
    }

    /// The actual record in the store now.
    pub async fn actual(&self, id: &InstanceId) -> Option<ActualInstance> {
        let record = self.records.get::<ActualInstances>(&(self.node.clone(), id.clone())).await.unwrap()?;
        Some(record.value)
    }

    /// Starts the agent again on the same data directory and store (after [`Env::shutdown`]).
    pub async fn restart(&mut self, configure: impl FnOnce(&mut AgentConfig)) {
        let mut config = agent_config(&self.node, self.data.path());
        configure(&mut config);
        self.agent = Some(Agent::start(config, self.store.clone()).await.unwrap());
    }

    pub async fn shutdown(&mut self) {
        if let Some(a) = self.agent.take() {
            a.shutdown().await;
        }
    }
}

pub struct ActualWatch {
    records: Records,
    stream: WatchStream,
    /// The record now (`None`: deleted / never written).
    pub current: Option<ActualInstance>,
    /// Every record seen, in order.
    pub seen: Vec<Option<ActualInstance>>,
}

impl ActualWatch {
    /// Waits (up to 20 s) for a record satisfying `pred` (`None`: the record deleted).
    pub async fn until(
        &mut self,
        what: &str,
        mut pred: impl FnMut(Option<&ActualInstance>) -> bool,
    ) -> Option<ActualInstance> {
        if pred(self.current.as_ref()) {
            return self.current.clone();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ev = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}; last: {:?}", self.current))
                .unwrap()
                .unwrap();
            self.current = match ev.kind {
                EventKind::Put => Some(self.records.decode::<ActualInstances>(&ev.kv).unwrap().unwrap().1.value),
                EventKind::Delete => None,
            };
            self.seen.push(self.current.clone());
            if pred(self.current.as_ref()) {
                return self.current.clone();
            }
        }
    }

    /// Waits for the record's deletion (a delete event after the last record seen).
    pub async fn deleted(&mut self) {
        if self.seen.last() == Some(&None) {
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ev = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for deletion; last: {:?}", self.current))
                .unwrap()
                .unwrap();
            self.current = match ev.kind {
                EventKind::Put => Some(self.records.decode::<ActualInstances>(&ev.kv).unwrap().unwrap().1.value),
                EventKind::Delete => None,
            };
            self.seen.push(self.current.clone());
            if ev.kind == EventKind::Delete {
                return;
            }
        }
    }

    pub async fn state(&mut self, state: State) -> ActualInstance {
        self.until(&format!("{state}"), |a| a.and_then(|a| a.state()) == Some(state)).await.unwrap()
    }

    /// The distinct successive states seen so far (`None` for a deleted record).
    pub fn states(&self) -> Vec<Option<State>> {
        let mut out: Vec<Option<State>> = Vec::new();
        for s in self.seen.iter().map(|a| a.as_ref().and_then(|a| a.state())) {
            if out.last() != Some(&s) {
                out.push(s);
            }
        }
        out
    }
}

pub fn proc_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

pub fn group_alive(pgid: u32) -> bool {
    fos_agent::runtime::native::process::group_alive(pgid as i32)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
