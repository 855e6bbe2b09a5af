//! Wiring of `fosd`'s roles: opens the store (embedded in `--data-dir`, or etcd), then runs the API server, the
//! controller and the node agent side by side until SIGTERM/SIGINT, and stops them in reverse order.

use std::sync::Arc;

use anyhow::Context as _;
use fos_api::{InstanceId, Keys};
use fos_controller::{Context, MeteredStore, Metrics};
use fos_store::{EmbeddedConfig, EmbeddedStore, Store};
use tokio::sync::watch;

use crate::options::Options;

/// Opens the store the options name.
fn open_store(opts: &Options) -> anyhow::Result<Arc<dyn Store>> {
    if !opts.etcd.is_empty() {
        anyhow::bail!("--etcd: this build has no etcd backend; run with the embedded store (omit --etcd)");
    }
    let dir = opts.data_dir.join("store");
    let store = EmbeddedStore::open(EmbeddedConfig::new(&dir))
        .with_context(|| format!("opening the embedded store in {}", dir.display()))?;
    Ok(Arc::new(store))
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
    let metrics = Arc::new(Metrics::default());
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(open_store(&opts)?, metrics.clone()));
    let node_name = opts.node_name();
    let logs_dir = opts.data_dir.join("instances");
    let ctx = Context {
        store: store.clone(),
        keys: Keys::new(&opts.system),
        placer: crate::roles::placer(),
        metrics,
        node_name: node_name.clone(),
        logs: Arc::new(move |id: &InstanceId| logs_dir.join(id.to_string()).join("log")),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    if !opts.no_api {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("listening on {}", opts.listen))?;
        tracing::info!(address = %opts.listen, "API listening");
        let mut rx = stop_rx.clone();
        let api_ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = fos_controller::api::serve(api_ctx, listener, shutdown).await {
                tracing::error!("API server: {e}");
            }
        }));
    }
    if !opts.no_controller {
        tasks.push(tokio::spawn(fos_controller::reconcile::run(ctx.clone(), stop_rx.clone())));
    }
    tracing::info!(node = node_name, data_dir = %opts.data_dir.display(), "fosd started");
    terminated().await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    tracing::info!("fosd stopped");
    Ok(())
}

/// The placer of this build. The scheduler crate is wired in here once it is part of the workspace; until then
/// every new instance is reported unplaceable with that reason.
fn placer() -> Arc<dyn fos_controller::Placer> {
    struct Unavailable;
    impl fos_controller::Placer for Unavailable {
        fn place(
            &self,
            _nodes: &[fos_api::Node],
            placed: &[fos_api::DesiredInstance],
            tenant: &str,
            name: &str,
            app: &fos_api::ApplicationSpec,
        ) -> fos_controller::Placement {
            let assigned = placed
                .iter()
                .filter(|d| d.id.tenant == tenant && d.id.app == name)
                .map(|d| (d.id.clone(), d.node.clone()))
                .collect();
            let unplaced =
                app.components.iter().map(|c| (c.name.clone(), "no scheduler in this build".to_string())).collect();
            fos_controller::Placement { assigned, unplaced, ..Default::default() }
        }
    }
    Arc::new(Unavailable)
}
