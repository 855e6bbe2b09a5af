//! The agent's entry point: discovers the node, starts its runtimes through the registry, publishes info, plugin
//! and status records, recovers what a previous run left, and starts the driver, the heartbeat and periodic
//! rediscovery.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fos_api::cluster::{NodeTiming, DEFAULT_NODE_LOST_AFTER};
use fos_api::manifest::{EntityKind, Object, PluginType};
use fos_api::node::{Node, NodeInfo};
use fos_api::record::InstanceId;
use fos_api::Keys;
use fos_store::records::DesiredPlugins;
use fos_store::{Records, Store, StoreError};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cgroup::Cgroups;
use crate::cleanup::{self, Cleaner, CleanupReport};
use crate::config::NodeConfig;
use crate::discovery::{self, net, DiscoveryError};
use crate::driver::{Driver, DriverError, DriverSettings, LocalInstances, Networking, Shared};
use crate::fence_guard::FenceGuard;
use crate::heartbeat::{Heartbeat, RttSource};
use crate::logs::{InstanceLogs, LogsError};
use crate::network::names::Names;
use crate::network::{netns, LinuxNetworks, NetworkManager, NetworkPluginConfig, StoreNetworkManager};
use crate::rtt::RttProbe;
use crate::runtime::registry::{self, PluginRecord};
use crate::runtime::{NodeLayout, OutputOptions, OutputStream, RuntimeEnv, RuntimeRegistry};

/// Everything the agent needs to start.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node configuration file.
    pub node: NodeConfig,
    /// Driver timing (backoff, probes).
    pub driver: DriverSettings,
    /// The runtimes this agent can start (the node configuration's `runtimes` section may disable some).
    pub runtimes: RuntimeRegistry,
    /// Time between SIGTERM and SIGKILL when stopping a native instance.
    pub stop_grace: Duration,
    /// Size at which an instance's output file is rotated.
    pub log_max_bytes: u64,
    /// How often round-trip times to other nodes are measured.
    pub rtt_interval: Duration,
    /// How often the node is rediscovered (its info record is republished when it changed).
    pub rediscover_interval: Duration,
    /// Whether instances go into cgroups when the machine has them.
    pub use_cgroups: bool,
    /// The network namespace the node's virtual networks are built in and exposed ports listen in (default: the
    /// agent's own; another one lets several agents share a machine, each in its own "host").
    pub network_namespace: Option<std::path::PathBuf>,
    /// The cluster's secrets key, to open the Secrets entities reference in their `env`.
    pub secrets: Option<Arc<fos_store::seal::SealKey>>,
    /// Heartbeat, lease and fence timing (from `--node-lost-after`).
    pub timing: NodeTiming,
    /// What the node warns its operators of (published in its status, shown by `fosctl get nodes`).
    pub warnings: Vec<String>,
    /// The node's API address other nodes call (`host:port`), published in its status.
    pub api_address: Option<String>,
    /// Where the node's description comes from: this machine's discovery, or one given (a simulated node).
    pub node_source: NodeSource,
    /// Whether the node builds virtual networks (a network manager over netlink). Without, instances with
    /// `networks` fail to configure, saying so.
    pub networks: bool,
    /// Where the round-trip times to other nodes come from.
    pub rtt: RttSource,
    /// The executable run as the node's fence guard ([`crate::fence_guard`]), which stops the instances when no
    /// agent renews the lease in time (`fosd` sets its own binary when the store is shared); `None`: no guard.
    pub fence_guard: Option<PathBuf>,
    /// How this node sends a migrating instance's volumes to another node (the node API client `fosd` provides;
    /// none: migrations away from this node fail, saying so).
    pub volume_sender: Option<Arc<dyn crate::migration::VolumeSender>>,
    /// How the node fetches images it lacks (from their URI, or from another node's API); none: only images
    /// already on the node.
    pub image_downloader: Option<crate::image_store::Downloader>,
}

/// Where an agent's node description comes from.
#[derive(Debug, Clone, Default)]
pub enum NodeSource {
    /// Discovered on this machine at start and periodically after.
    #[default]
    Discover,
    /// Given once (a simulated node: no discovery, no rediscovery). The node configuration still applies.
    Given(Box<NodeInfo>),
}

impl AgentConfig {
    /// Defaults around a node configuration.
    pub fn new(node: NodeConfig) -> Self {
        AgentConfig {
            driver: DriverSettings::default(),
            runtimes: RuntimeRegistry::builtin(),
            stop_grace: Duration::from_secs(10),
            log_max_bytes: 10 << 20,
            rtt_interval: Duration::from_secs(10),
            rediscover_interval: Duration::from_secs(60),
            use_cgroups: true,
            network_namespace: None,
            secrets: None,
            timing: NodeTiming::derive(DEFAULT_NODE_LOST_AFTER, node.heartbeat_ttl).unwrap_or_default(),
            warnings: Vec::new(),
            node,
            api_address: None,
            node_source: NodeSource::Discover,
            networks: true,
            rtt: RttSource::Probe,
            fence_guard: None,
            volume_sender: None,
            image_downloader: None,
        }
    }
}

/// Why the agent could not start.
#[derive(Debug, Error)]
pub enum AgentError {
    /// Node discovery failed.
    #[error("discovery: {0}")]
    Discovery(#[from] DiscoveryError),
    /// The store refused a record.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Recovering instances failed.
    #[error("{0}")]
    Driver(#[from] DriverError),
    /// The probe port could not be bound.
    #[error("cannot bind the probe on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The node configuration holds a value that cannot be used.
    #[error("node configuration: {0}")]
    Config(String),
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The node agent.
pub struct Agent;

/// A running agent.
pub struct AgentHandle {
    node: String,
    probe_address: SocketAddr,
    logs: InstanceLogs,
    inbox: Arc<crate::migration::Inbox>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    cleaner: Cleaner,
    guard: Option<FenceGuard>,
}

impl AgentHandle {
    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The bound address of the round-trip-time probe.
    pub fn probe_address(&self) -> SocketAddr {
        self.probe_address
    }

    /// The output of one of this node's instances: what is there (its last `tail_bytes` per file), then what is
    /// appended when `follow`. The runtime holding the instance reads it.
    pub async fn logs(&self, id: &InstanceId, options: OutputOptions) -> Result<OutputStream, LogsError> {
        self.logs.open(id, options).await
    }

    /// What this node receives of instances migrating to it (for the API server).
    pub fn inbox(&self) -> Arc<crate::migration::Inbox> {
        self.inbox.clone()
    }

    /// A reader of this node's instance output that outlives borrowing the handle (for the API server).
    pub fn log_reader(&self) -> InstanceLogs {
        self.logs.clone()
    }

    /// Ends the agent as a crash would: its tasks stop at once, its lease is left to expire and its records stay
    /// as they were.
    pub fn abort(self) {
        for t in self.tasks {
            t.abort();
        }
    }

    /// Stops the agent: the driver and heartbeat end, the status record is revoked. Instances keep running and are
    /// adopted by the next start.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// The names of the kernel objects this agent makes (links, namespaces, cgroups).
    pub fn names(&self) -> &Names {
        self.cleaner.layout.names()
    }

    /// Stops the agent and removes everything it created on the node ([`Cleaner`]): its instances are stopped and
    /// removed (processes, cgroups, directories, actual records), its networks torn down (namespaces, links,
    /// `dnsmasq`, forwarding entries, the network records of the node), and what it lost track of swept by name.
    /// The desired records stay: the next start brings the instances back.
    pub async fn shutdown_and_clean(self) -> CleanupReport {
        let cleaner = self.cleaner.clone();
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let report = cleaner.run().await;
        if let Some(guard) = &self.guard {
            if let Err(e) = guard.stand_down() {
                tracing::warn!(error = %e, "cannot stop the fence guard");
            }
        }
        report
    }
}

async fn discover(config: &NodeConfig, source: &NodeSource) -> Result<NodeInfo, AgentError> {
    if let NodeSource::Given(info) = source {
        let mut info = (**info).clone();
        discovery::apply_config(&mut info, config);
        return Ok(info);
    }
    let (data_dir, cfg) = (config.data_dir(), config.clone());
    let found = tokio::task::spawn_blocking(move || discovery::discover(&data_dir)).await;
    let mut info = found.map_err(|e| AgentError::Discovery(DiscoveryError::UnsupportedArch(e.to_string())))??;
    discovery::apply_config(&mut info, &cfg);
    Ok(info)
}

impl Agent {
    /// Starts the agent on `store`. Returns once the node's info, plugin and status records are published and the
    /// instances left by a previous run are recovered.
    pub async fn start(config: AgentConfig, store: Arc<dyn Store>) -> Result<AgentHandle, AgentError> {
        let data_dir = config.node.data_dir();
        std::fs::create_dir_all(&data_dir).map_err(|source| AgentError::DataDir { path: data_dir.clone(), source })?;
        let mut info = discover(&config.node, &config.node_source).await?;
        let name = discovery::node_name(&config.node, &info);
        let records = Records::new(store.clone(), Keys::new(config.node.system()));
        let ips = net::node_ips(&info.interfaces);
        let advertise = config.node.advertise.or(ips.first().copied()).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));

        let bind = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), config.node.probe_port());
        let probe = RttProbe::bind(bind).await.map_err(|source| AgentError::Bind { addr: bind, source })?;
        let probe_address = SocketAddr::new(advertise, probe.local_addr().map(|a| a.port()).unwrap_or(0));

        // The network plugin's configuration names the directory of instance namespaces, which every instance's
        // context holds: it is resolved before the runtimes start.
        let network_cfg = plugin_configuration(&records, &name).await?.unwrap_or(config.node.network.clone());
        let netns_dir = network_cfg.netns_dir.clone().unwrap_or_else(|| PathBuf::from(netns::NETNS_DIR));
        let cgroups = if config.use_cgroups { Cgroups::detect() } else { Cgroups::default() };
        cleanup::remember_cgroup_parents(&data_dir, &cgroups);
        // The data directory as an absolute path, so a restart from another working directory names alike.
        let data_dir = std::fs::canonicalize(&data_dir).unwrap_or(data_dir);
        let names = Names::new(config.node.system(), &name, &data_dir);
        let layout = NodeLayout::new(&data_dir, netns_dir, cgroups, names.clone());
        let env = RuntimeEnv {
            node: name.clone(),
            layout: layout.clone(),
            addresses: ips.iter().map(IpAddr::to_string).collect(),
            stop_grace: config.stop_grace,
            log_max_bytes: config.log_max_bytes,
            images: crate::images::Images::new(Arc::new(crate::image_store::NodeImageStore::new(
                data_dir.join("images"),
                records.clone(),
                name.clone(),
                config.image_downloader.clone().map(|d| d.0),
            ))),
            config: serde_json::Value::Null,
        };
        let started = config.runtimes.start(&env, &config.node.runtimes, &records).await?;
        info.runtimes = started.ready;

        let host_ns = match &config.network_namespace {
            Some(path) => {
                Some(std::fs::File::open(path).map_err(|source| AgentError::DataDir { path: path.clone(), source })?)
            }
            None => None,
        };
        let networks = match config.networks {
            true => start_networks(&records, &name, network_cfg, host_ns, names).await?,
            false => None,
        };
        if let NodeSource::Discover = config.node_source {
            // Live migration of processes needs a CRIU that works on this kernel: published for `migrate --live`.
            let criu = crate::migration::criu::probe().await;
            tracing::info!(ready = criu.ready, error = ?criu.error, "criu");
            registry::publish(&records, &name, crate::migration::criu::PLUGIN, &criu).await?;
        }

        let node = discovery::node_record(&name, &config.node, info);
        let (fence, fenced) = watch::channel(false);
        let heartbeat = Heartbeat {
            records: records.clone(),
            node: name.clone(),
            timing: config.timing,
            address: config.api_address.clone(),
            fence: Arc::new(fence),
            probe: Arc::new(probe),
            probe_address: probe_address.to_string(),
            rtt_interval: config.rtt_interval,
            rtt: config.rtt.clone(),
            guard: None,
            warnings: config.warnings.clone(),
        };

        // What an earlier run left is recovered, and its actual records marked unverified, before the node's
        // status says it is ready: nothing reads an old record as current once this agent is up.
        let local = LocalInstances::default();
        let cleaner = Cleaner {
            records: records.clone(),
            node: name.clone(),
            local: local.clone(),
            layout: layout.clone(),
            networks: networks.clone(),
            backoff: config.driver.backoff(),
        };
        let max_bytes = config.node.images.max_bytes().map_err(AgentError::Config)?;
        let image_gc = crate::image_gc::ImageGc::new(&data_dir, records.clone(), name.clone(), max_bytes);
        let networking = networks.clone().map(|m| Arc::new(Networking::new(m as Arc<dyn NetworkManager>)));
        let inbox = crate::migration::Inbox::new(layout.clone()).with_runtimes(started.runtimes.clone());
        let inbox = Arc::new(inbox.with_networking(networking.clone()));
        let mut driver = Driver::new(Shared {
            volume_sender: config.volume_sender.clone(),
            records: records.clone(),
            node: name.clone(),
            runtimes: started.runtimes,
            layout,
            local: local.clone(),
            settings: config.driver.clone(),
            networking,
            secrets: config.secrets.clone(),
        });
        // Processes the instances leave behind become this process's children, reaped at once.
        crate::reaper::start();
        let recovered = driver.recover().await?;
        // The guard of the instances just recovered: they keep running for one fence deadline, within which the
        // heartbeat renews the lease or fences them itself.
        let guard = match &config.fence_guard {
            Some(exe) => {
                let grace = config.timing.fence + 2 * config.timing.period;
                let system = config.node.system();
                let started = FenceGuard::ensure(exe, &data_dir, system, &name, config.use_cgroups, grace);
                Some(started.map_err(|source| AgentError::DataDir { path: data_dir.join("fence"), source })?)
            }
            None => None,
        };
        let heartbeat = Heartbeat { guard: guard.clone(), ..heartbeat };
        let beat = heartbeat.start(&node).await?;
        tracing::info!(node = %name, recovered, "agent started");

        let (shutdown, shutdown_rx) = watch::channel(false);
        let (info_tx, info_rx) = watch::channel(node);
        let mut tasks = vec![
            tokio::spawn(image_gc.run(config.node.images.interval(), shutdown_rx.clone())),
            tokio::spawn(driver.run(shutdown_rx.clone(), fenced)),
            tokio::spawn(heartbeat.run(beat, info_rx, shutdown_rx.clone())),
        ];
        if let NodeSource::Discover = config.node_source {
            tasks.push(tokio::spawn(rediscover(config, info_tx, shutdown_rx.clone())));
        }
        tasks.push(tokio::spawn(crate::migration::janitor::run(
            records.clone(),
            name.clone(),
            inbox.clone(),
            shutdown_rx.clone(),
        )));
        if let Some(manager) = networks {
            tasks.push(tokio::spawn(follow_networks(manager, shutdown_rx)));
        }
        let logs = InstanceLogs::new(name.clone(), local);
        Ok(AgentHandle { node: name, probe_address, logs, inbox, shutdown, tasks, cleaner, guard })
    }
}

/// Builds the node's network manager with `config` (the network Plugin object's, else the node configuration's) and
/// publishes the network plugin's record (`actual/nodes/<node>/plugins/network`). A node where netlink cannot be
/// used runs without one: its instances with `networks` fail to configure with that reason.
async fn start_networks(
    records: &Records,
    node: &str,
    config: NetworkPluginConfig,
    host_ns: Option<std::fs::File>,
    names: Names,
) -> Result<Option<Arc<StoreNetworkManager>>, AgentError> {
    let built = LinuxNetworks::new(config, host_ns, names);
    let record = PluginRecord {
        plugin_type: "network".into(),
        entity_kind: EntityKind::Native,
        ready: built.is_ok(),
        error: built.as_ref().err().map(ToString::to_string),
        detail: Some("linuxbridge: bridge + VxLAN/VLAN".into()),
    };
    registry::publish(records, node, "network", &record).await?;
    match built {
        Ok(linux) => {
            let manager = StoreNetworkManager::new(records.store().clone(), records.keys().clone(), node, linux);
            Ok(Some(Arc::new(manager)))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no network manager on this node");
            Ok(None)
        }
    }
}

/// The configuration of the node's `network` Plugin object (`desired/nodes/<node>/plugins/<plugin>` with
/// `spec.type: network`), when one with a `configuration` is applied; it takes precedence over the node
/// configuration file's `network`.
async fn plugin_configuration(records: &Records, node: &str) -> Result<Option<NetworkPluginConfig>, AgentError> {
    let (listed, _) = records.list_in::<DesiredPlugins>(&records.keys().desired_node_plugin(node, "")).await?;
    for (_, object) in listed {
        let Object::Plugin(plugin) = object.value else { continue };
        if plugin.spec.kind != PluginType::Network || plugin.spec.configuration.is_empty() {
            continue;
        }
        match serde_json::from_value::<NetworkPluginConfig>(serde_json::Value::Object(plugin.spec.configuration)) {
            Ok(config) => return Ok(Some(config)),
            Err(e) => tracing::warn!(key = object.key, error = %e, "unreadable network plugin configuration; ignored"),
        }
    }
    Ok(None)
}

/// Keeps the node's networks in step with the store (forwarding entries, DHCP hosts, gateway take-over) until
/// `shutdown`, restarting the watch after a failure.
async fn follow_networks(manager: Arc<StoreNetworkManager>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            done = manager.follow() => {
                if let Err(e) = done {
                    tracing::warn!(error = %e, "following networks failed; restarting");
                }
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Rediscovers the node periodically and hands a changed info record to the heartbeat.
async fn rediscover(config: AgentConfig, info_tx: watch::Sender<Node>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(config.rediscover_interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        let Ok(mut info) = discover(&config.node, &config.node_source).await else { continue };
        info_tx.send_if_modified(|node| {
            info.runtimes = node.spec.runtimes.clone();
            // Free space changes constantly; only a change in what the node has is news.
            let mut old = node.spec.clone();
            old.disk = info.disk.clone();
            old.disks.iter_mut().zip(info.disks.iter()).for_each(|(o, n)| o.available = n.available.clone());
            if old == info {
                return false;
            }
            node.spec = info;
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(name: &str, spec: serde_json::Value) -> Object {
        let object = serde_json::json!({"apiVersion": fos_api::API_VERSION, "kind": "Plugin", "metadata": {"name": name}, "spec": spec});
        serde_json::from_value(object).expect("a Plugin object")
    }

    #[tokio::test]
    async fn the_network_plugin_objects_configuration_is_the_nodes() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store: Arc<dyn Store> =
            Arc::new(fos_store::EmbeddedStore::open(fos_store::EmbeddedConfig::new(dir.path())).expect("store"));
        let records = Records::new(store, Keys::default());
        assert_eq!(plugin_configuration(&records, "n1").await.expect("read"), None, "no Plugin object");

        let put = |node: &str, object: Object| {
            let (records, id) = (records.clone(), (node.to_string(), object.metadata().name.clone()));
            async move { records.put::<DesiredPlugins>(&id, &object, None).await.expect("put") }
        };
        put("n1", plugin("os", serde_json::json!({"type": "os", "configuration": {"vlanRange": [1, 2]}}))).await;
        put("n1", plugin("bare", serde_json::json!({"type": "network"}))).await;
        put("n2", plugin("lb", serde_json::json!({"type": "network", "configuration": {"vlanRange": [5, 6]}}))).await;
        assert_eq!(plugin_configuration(&records, "n1").await.expect("read"), None, "none with a configuration");

        let configuration = serde_json::json!({"dataplaneInterface": "eth1", "vlanRange": [200, 300]});
        put("n1", plugin("lb", serde_json::json!({"type": "network", "configuration": configuration}))).await;
        let config = plugin_configuration(&records, "n1").await.expect("read").expect("the Plugin's configuration");
        assert_eq!(config.dataplane_interface.as_deref(), Some("eth1"));
        assert_eq!(config.vlan_range, Some([200, 300]));
    }
}
