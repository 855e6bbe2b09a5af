//! One simulation: a store (embedded, or etcd), the real controller on its own threads (`fos-ctl…`, so its CPU is
//! measured apart), N real agents with given node descriptions and the simulated runtime, a generated workload
//! applied through the controller's apply operation (what `POST /v1/apply` calls), then optionally the crash of a
//! share of the nodes.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fos_agent::runtime::RuntimeRegistry;
use fos_agent::{Agent, AgentConfig, AgentHandle, NodeConfig, NodeSource, RttSource};
use fos_api::cluster::NodeTiming;
use fos_api::manifest::EntityKind;
use fos_api::record::InstanceId;
use fos_api::wire::ApplyRequest;
use fos_api::{Keys, Object};
use fos_controller::ops::logs::NoLogs;
use fos_controller::{Caller, Context, MeteredStore, Metrics, SchedulerPlacer};
use fos_store::records::NodeStatuses;
use fos_store::{Records, Store, StoreConfig};
use futures::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::measure::{self, percentile};
use crate::runtime::SimRuntime;
use crate::tracker::Tracker;
use crate::workload;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Simulated nodes.
    pub nodes: usize,
    /// Instances to run (applications of [`workload::APP_INSTANCES`]).
    pub entities: usize,
    /// etcd endpoints; the embedded store (in the data directory) when empty.
    pub etcd: Vec<String>,
    /// Share of the nodes killed once everything runs (0: none).
    pub kill_share: f64,
    /// Applications per apply request.
    pub apps_per_apply: usize,
    /// How long to wait for everything to run (and, after the kill, to run again).
    pub timeout: Duration,
    /// How long a node may go without a heartbeat before it is lost (its lease, heartbeat and fence timing derive
    /// from it, as `fosd --node-lost-after` does).
    pub node_lost_after: Duration,
}

/// What one simulation measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Simulated nodes.
    pub nodes: usize,
    /// Instances applied.
    pub instances: usize,
    /// Which store.
    pub store: String,
    /// Time to start every agent.
    pub agents_started: Duration,
    /// Time from the first apply to every instance Running and ready; None when the timeout passed first.
    pub all_running: Option<Duration>,
    /// Instances seen Running when the wait ended.
    pub running: usize,
    /// Apply → Running per instance, sorted.
    pub latencies: Vec<Duration>,
    /// Time spent in the apply requests.
    pub applying: Duration,
    /// CPU time of the controller (and API operations) during the run.
    pub controller_cpu: Duration,
    /// CPU time of the whole process (controller, agents, embedded store).
    pub process_cpu: Duration,
    /// Resident memory of the whole process at its peak (an upper bound of the controller's).
    pub peak_rss_mib: f64,
    /// Store operations by the controller and the API during the run.
    pub controller_store_ops: u64,
    /// Store operations by the agents during the run.
    pub agent_store_ops: u64,
    /// Nodes killed, and the time until their instances ran elsewhere (None: not within the timeout).
    pub recovery: Option<(usize, usize, Option<Duration>)>,
    /// Where each instance ran when every instance was running.
    pub placements: Vec<(InstanceId, String)>,
}

impl Report {
    /// Store operations of the controller per placed instance.
    pub fn controller_ops_per_instance(&self) -> f64 {
        self.controller_store_ops as f64 / self.instances.max(1) as f64
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "store:                      {}", self.store)?;
        writeln!(f, "nodes started:              {} in {}", self.nodes, secs(self.agents_started))?;
        writeln!(f, "apply requests:             {}", secs(self.applying))?;
        writeln!(
            f,
            "apply -> Running:           p50 {}, p99 {}, max {}",
            ms(percentile(&self.latencies, 50.0)),
            ms(percentile(&self.latencies, 99.0)),
            ms(self.latencies.last().copied().unwrap_or_default())
        )?;
        writeln!(f, "controller CPU:             {}", secs(self.controller_cpu))?;
        writeln!(f, "process CPU (all):          {}", secs(self.process_cpu))?;
        writeln!(f, "peak RSS (whole process):   {:.1} MiB", self.peak_rss_mib)?;
        writeln!(
            f,
            "store ops per instance:     {:.2} by the controller, {:.2} by the agents",
            self.controller_ops_per_instance(),
            self.agent_store_ops as f64 / self.instances.max(1) as f64
        )?;
        if let Some((killed, moved, recovered)) = self.recovery {
            match recovered {
                Some(d) => {
                    writeln!(f, "killed {killed} nodes:          {moved} instances running again in {}", secs(d))?
                }
                None => writeln!(f, "killed {killed} nodes:          {moved} instances NOT running again in time")?,
            }
        }
        match self.all_running {
            Some(d) => write!(f, "all {} Running in {:.2} s", self.instances, d.as_secs_f64()),
            None => write!(f, "only {} of {} Running before the timeout", self.running, self.instances),
        }
    }
}

/// The store the options name (embedded under `dir`, or etcd).
async fn open_store(opts: &SimOptions, dir: &Path) -> anyhow::Result<(Arc<dyn Store>, String)> {
    if opts.etcd.is_empty() {
        let store =
            fos_store::open(StoreConfig::embedded(dir.join("store"))).await.context("opening the embedded store")?;
        Ok((store, "embedded".into()))
    } else {
        let store = fos_store::open(StoreConfig::etcd(opts.etcd.clone())).await.context("connecting to etcd")?;
        Ok((store, format!("etcd ({} members)", opts.etcd.len())))
    }
}

/// Starts one simulated node's agent.
async fn start_agent(
    node: workload::SimNode,
    dir: &Path,
    timing: NodeTiming,
    store: Arc<dyn Store>,
) -> anyhow::Result<AgentHandle> {
    let mut config = NodeConfig {
        name: Some(node.name.clone()),
        labels: node.labels.clone(),
        data_dir: Some(dir.join("nodes").join(&node.name)),
        probe_port: Some(0),
        ..NodeConfig::default()
    };
    config.advertise = Some(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let mut agent = AgentConfig::new(config);
    let mut runtimes = RuntimeRegistry::empty();
    runtimes.register(EntityKind::Native, SimRuntime::factory);
    agent.runtimes = runtimes;
    agent.node_source = NodeSource::Given(Box::new(node.info));
    agent.rtt = RttSource::Fixed(node.rtt_ms);
    agent.networks = false;
    agent.timing = timing;
    agent.use_cgroups = false;
    agent.rediscover_interval = Duration::from_secs(3600);
    Agent::start(agent, store).await.with_context(|| format!("starting simulated node {}", node.name))
}

/// Runs one simulation with its files under `dir`; `controller` is the runtime the controller runs on.
pub async fn simulate(opts: &SimOptions, dir: &Path, controller: Handle) -> anyhow::Result<Report> {
    let (store, store_name) = open_store(opts, dir).await?;
    let timing = NodeTiming::derive(opts.node_lost_after, None).context("--node-lost-after")?;
    let keys = Keys::default();
    let records = Records::new(store.clone(), keys.clone());
    let ctl_metrics = Arc::new(Metrics::default());
    let agent_metrics = Arc::new(Metrics::default());
    let agent_store: Arc<dyn Store> = Arc::new(MeteredStore::new(store.clone(), agent_metrics.clone()));
    let ctx = Context {
        store: Arc::new(MeteredStore::new(store.clone(), ctl_metrics.clone())),
        keys: keys.clone(),
        placer: Arc::new(SchedulerPlacer::default()),
        metrics: ctl_metrics.clone(),
        node_name: "fos-sim".into(),
        logs: Arc::new(NoLogs),
        inbox: Arc::new(fos_controller::ops::transfer::NoInbox),
        // In-process: operations are called directly with the administrator as caller, no API is served.
        security: fos_controller::auth::Security::default(),
        timing,
    };
    let mut report = Report { nodes: opts.nodes, store: store_name, ..Report::default() };

    // The nodes.
    let started = Instant::now();
    let nodes = workload::nodes(opts.nodes)?;
    let mut agents: HashMap<String, AgentHandle> = HashMap::new();
    let mut starting =
        futures::stream::iter(nodes.into_iter().map(|n| start_agent(n, dir, timing, agent_store.clone())))
            .buffer_unordered(32);
    while let Some(agent) = starting.next().await {
        let agent = agent?;
        agents.insert(agent.node().to_string(), agent);
    }
    drop(starting);
    report.agents_started = started.elapsed();

    // The controller, once every node is seen.
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctl = controller.spawn(fos_controller::reconcile::run(ctx.clone(), stop_rx));
    loop {
        let (statuses, _) = records.list::<NodeStatuses>().await?;
        if statuses.len() >= opts.nodes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The workload.
    let apps = workload::applications(opts.entities)?;
    report.instances = workload::instance_count(&apps);
    let (_, revision) = records.list::<NodeStatuses>().await?;
    let tracker = Tracker::start(records.clone(), revision).await?;
    let (cpu0, ctl_cpu0, ctl_ops0, agent_ops0) = (
        measure::process_cpu(),
        measure::threads_cpu("fos-ctl"),
        ctl_metrics.store_latency.count(),
        agent_metrics.store_latency.count(),
    );
    let t0 = Instant::now();
    let mut applied_at: HashMap<String, Instant> = HashMap::new();
    for batch in apps.chunks(opts.apps_per_apply.max(1)) {
        let at = Instant::now();
        let req = ApplyRequest::new(batch.iter());
        let ctx = ctx.clone();
        controller
            .spawn(async move { fos_controller::ops::apply::apply(&ctx, &Caller::local_admin(), req).await })
            .await
            .context("the apply task")?
            .map_err(|e| anyhow::anyhow!("apply refused: {e}"))?;
        for app in batch {
            applied_at.insert(app_name(app), at);
        }
    }
    report.applying = t0.elapsed();
    let want = report.instances;
    let deadline = Instant::now() + opts.timeout;
    let done = tracker.wait_for(deadline, |s| s.running.len() >= want).await;
    let elapsed = t0.elapsed();
    if done {
        report.all_running = Some(elapsed);
    }
    {
        let seen = tracker.seen.lock().map_err(|_| anyhow::anyhow!("tracker poisoned"))?;
        report.running = seen.running.len();
        report.placements =
            seen.running.iter().filter_map(|(id, (node, _))| Some((id.clone(), node.clone()?))).collect();
        let mut latencies: Vec<Duration> = seen
            .running
            .iter()
            .filter_map(|(id, (_, first))| Some(first.saturating_duration_since(*applied_at.get(&id.app)?)))
            .collect();
        latencies.sort();
        report.latencies = latencies;
    }
    report.controller_cpu = measure::threads_cpu("fos-ctl").saturating_sub(ctl_cpu0);
    report.process_cpu = measure::process_cpu().saturating_sub(cpu0);
    report.peak_rss_mib = measure::memory_mib("VmHWM:");
    report.controller_store_ops = ctl_metrics.store_latency.count() - ctl_ops0;
    report.agent_store_ops = agent_metrics.store_latency.count() - agent_ops0;

    if done && opts.kill_share > 0.0 {
        report.recovery = Some(kill(opts, &mut agents, &tracker, want).await);
    }

    let _ = stop_tx.send(true);
    let _ = ctl.await;
    for (_, agent) in agents {
        agent.shutdown().await;
    }
    Ok(report)
}

fn app_name(app: &Object) -> String {
    app.metadata().name.clone()
}

/// Kills (as a crash does) the given share of the nodes that run instances, and waits until every instance runs on
/// a live node again: (nodes killed, instances they ran, time to running again).
async fn kill(
    opts: &SimOptions,
    agents: &mut HashMap<String, AgentHandle>,
    tracker: &Tracker,
    want: usize,
) -> (usize, usize, Option<Duration>) {
    let mut names: Vec<String> = agents.keys().cloned().collect();
    names.sort();
    let count = ((opts.nodes as f64 * opts.kill_share).round() as usize).clamp(1, opts.nodes);
    // Every k-th node, so the killed ones spread over sites.
    let step = (names.len() / count).max(1);
    let dead: HashSet<String> = names.iter().step_by(step).take(count).cloned().collect();
    let moved = tracker
        .seen
        .lock()
        .map(|s| s.running.values().filter(|(n, _)| n.as_ref().is_some_and(|n| dead.contains(n))).count())
        .unwrap_or(0);
    let at = Instant::now();
    for name in &dead {
        if let Some(agent) = agents.remove(name) {
            agent.abort();
        }
    }
    let ok = tracker.wait_for(Instant::now() + opts.timeout, |s| s.running_outside(&dead) >= want).await;
    (dead.len(), moved, ok.then(|| at.elapsed()))
}
