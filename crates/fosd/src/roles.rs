//! Wiring of `fosd`'s roles: opens the store (embedded in `--data-dir`, or etcd), then runs the API server, the
//! controller and the node agent side by side until SIGTERM/SIGINT, and stops them in reverse order.

use std::sync::Arc;

use anyhow::Context as _;
use fos_agent::{Agent, AgentConfig, NodeConfig};
use fos_api::Keys;
use fos_controller::api::serve;
use fos_controller::{Context, MeteredStore, Metrics, SchedulerPlacer};
use fos_store::{EtcdAuth, EtcdTls, Records, Store, StoreConfig};
use tokio::sync::watch;

use crate::bootstrap;
use crate::logs::AgentLogs;
use crate::migration::{AgentInbox, PeerSender};
use crate::options::Options;

/// Opens the store the options name: an etcd cluster with `--etcd`, else the embedded store in the data directory.
async fn open_store(opts: &Options) -> anyhow::Result<Arc<dyn Store>> {
    let config = if opts.etcd.is_empty() {
        StoreConfig::embedded(opts.data_dir.join("store"))
    } else {
        let tls = (opts.etcd_ca.is_some() || opts.etcd_cert.is_some()).then(|| EtcdTls {
            ca: opts.etcd_ca.clone(),
            cert: opts.etcd_cert.clone(),
            key: opts.etcd_key.clone(),
            domain: opts.etcd_domain.clone(),
        });
        let auth = opts.etcd_user.as_ref().map(|user| EtcdAuth {
            user: user.clone(),
            password: std::env::var("FOS_ETCD_PASSWORD").unwrap_or_default(),
        });
        StoreConfig::Etcd { endpoints: opts.etcd.clone(), tls, auth }
    };
    let what = if opts.etcd.is_empty() {
        format!("the embedded store in {}", opts.data_dir.join("store").display())
    } else {
        format!("etcd at {}", opts.etcd.join(","))
    };
    fos_store::open(config).await.with_context(|| format!("opening {what}"))
}

/// Makes the data directory (0755: entities' working directories are inside it; what is private in it is 0600).
fn make_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// Resolves when SIGTERM or SIGINT arrives.
async fn terminated() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}

/// Runs every enabled role until a termination signal.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    opts.check()?;
    make_data_dir(&opts.data_dir)?;
    let node_config = node_config(&opts)?;
    let timing = fos_api::cluster::NodeTiming::derive(opts.node_lost_after, node_config.heartbeat_ttl)
        .context("node liveness timing")?;
    let api_address = crate::advertise::api_address(&opts);
    let metrics = Arc::new(Metrics::default());
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(open_store(&opts).await?, metrics.clone()));
    let node_name = node_config.name.clone().unwrap_or_else(|| opts.node_name());
    let logs = AgentLogs::default();
    let inbox = AgentInbox::default();
    let keys = Keys::new(&opts.system);
    let security = bootstrap::prepare(&opts, &Records::new(store.clone(), keys.clone()), &node_name).await?;
    let ctx = Context {
        store: store.clone(),
        keys,
        placer: Arc::new(SchedulerPlacer::default()),
        metrics,
        node_name: node_name.clone(),
        logs: Arc::new(logs.clone()),
        inbox: Arc::new(inbox.clone()),
        security: fos_controller::auth::Security {
            require_tokens: true,
            secrets: Some(security.secrets.clone()),
            peer: Some(security.peer.clone()),
            data_dir: Some(opts.data_dir.clone()),
            free_margin: opts.free_space_margin.bytes().unwrap_or(fos_controller::space::DEFAULT_MARGIN),
        },
        timing,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    // Bound first (a port in use fails the start at once), served only once the agent has started: by then it has
    // marked the instance records of its previous run unverified, so no client reads them as running and ready.
    let listener = if opts.no_api {
        None
    } else {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("listening on {}", opts.listen))?;
        Some(listener)
    };
    let agent = if opts.no_agent {
        None
    } else {
        let mut config = AgentConfig::new(node_config);
        config.node.name = Some(node_name.clone());
        config.secrets = Some(security.secrets.clone());
        config.timing = timing;
        config.warnings = opts.fog05_rest().and_then(|rest| rest.warning()).into_iter().collect();
        config.api_address = Some(api_address.clone());
        config.volume_sender = Some(Arc::new(PeerSender {
            peer: security.peer.clone(),
            records: Records::new(store.clone(), ctx.keys.clone()),
        }));
        config.image_downloader =
            Some(fos_agent::image_store::Downloader(crate::images::HttpDownloader::new(security.peer.clone())?));
        // A fenced instance must be gone before the node may be declared lost.
        config.stop_grace = config.stop_grace.min(timing.fence_grace);
        // On a shared store, a guard outliving this process stops the instances if it dies (fence_guard).
        if !opts.etcd.is_empty() {
            config.fence_guard = Some(std::env::current_exe().context("finding fosd's own executable")?);
        }
        let agent = Agent::start(config, store.clone()).await.context("starting the node agent")?;
        tracing::info!(node = agent.node(), "agent started");
        logs.set(agent.log_reader());
        inbox.set(agent.inbox());
        Some(agent)
    };
    if let Some(listener) = listener {
        let scheme = if security.tls.is_some() { "https" } else { "http (insecure plaintext)" };
        let cap = opts.max_connections.unwrap_or_else(serve::connection_cap);
        tracing::info!(address = %opts.listen, scheme, max_connections = cap, "API listening");
        let mut rx = stop_rx.clone();
        let api_ctx = ctx.clone();
        let serve_opts = serve::ServeOptions::new(security.tls.clone(), cap);
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = fos_controller::api::serve(api_ctx, listener, serve_opts, shutdown).await {
                tracing::error!("API server: {e}");
            }
        }));
    }
    if let Some(rest) = opts.fog05_rest() {
        let listener = tokio::net::TcpListener::bind(rest.listen)
            .await
            .with_context(|| format!("listening on {} (--fog05-rest)", rest.listen))?;
        if let Some(warning) = rest.warning() {
            tracing::warn!("{warning}");
        }
        tracing::info!(address = %rest.listen, tenant = rest.tenant, "fog05 REST API listening");
        let state = fos_controller::fog05::Fog05State::new(ctx.clone(), &rest.tenant);
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = fos_controller::fog05::serve(state, listener, shutdown).await {
                tracing::error!("fog05 REST API: {e}");
            }
        }));
    }
    if !opts.no_controller {
        tasks.push(tokio::spawn(fos_controller::reconcile::run(ctx.clone(), stop_rx.clone())));
    }
    tracing::info!(
        node = node_name,
        address = api_address,
        node_lost_after = ?timing.lost_after,
        fence = ?timing.fence,
        data_dir = %opts.data_dir.display(),
        "fosd started"
    );
    terminated().await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    match agent {
        Some(agent) if opts.cleanup => {
            let report = agent.shutdown_and_clean().await;
            for e in &report.errors {
                tracing::warn!(error = %e, "cleanup left something behind");
            }
            tracing::info!(
                instances = report.instances.len(),
                cgroups = report.cgroups.len(),
                errors = report.errors.len(),
                "agent cleaned up"
            );
        }
        Some(agent) => agent.shutdown().await,
        None => {}
    }
    tracing::info!("fosd stopped");
    Ok(())
}

/// The node configuration: `--config` when given, with the command line's data directory and system; the RTT probe
/// on a free port unless the file fixes one (so several `fosd` can share a machine).
fn node_config(opts: &Options) -> anyhow::Result<NodeConfig> {
    let mut config = match &opts.config {
        Some(path) => NodeConfig::load(path).with_context(|| format!("reading {}", path.display()))?,
        None => NodeConfig::default(),
    };
    if opts.node_name.is_some() || config.name.is_none() {
        config.name = Some(opts.node_name());
    }
    config.data_dir.get_or_insert_with(|| opts.data_dir.clone());
    config.system.get_or_insert_with(|| opts.system.clone());
    config.probe_port.get_or_insert(0);
    Ok(config)
}
