//! The controller: wins leader election through the store, then reconciles every application whenever something it
//! looks at changes (applications, nodes, actual instances) and at least every few seconds.

pub mod app;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use fos_api::keys::KeyRef;
use fos_api::wire::AppRecord;
use fos_store::{Election, LeaseKeeper, StoreError, TxnOp};
use futures::StreamExt;
use tokio::sync::{watch, Notify};

use crate::placement::Placement;
use crate::view::ClusterView;
use crate::Context;

/// How often the controller reconciles when nothing changes.
pub const RESYNC: Duration = Duration::from_secs(5);

/// The election lease's time to live: how long a crashed leader holds the others back.
pub const LEASE_TTL: Duration = Duration::from_secs(6);

/// Runs the controller until `shutdown` turns true: campaigns for leadership (the store's election), and
/// reconciles while leading.
pub async fn run(ctx: Context, mut shutdown: watch::Receiver<bool>) {
    let election = Election::new(ctx.store.clone(), ctx.keys.election("controller"));
    while !*shutdown.borrow() {
        let mut keeper = match LeaseKeeper::grant(ctx.store.clone(), LEASE_TTL).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("cannot grant the election lease: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        let campaign = election.campaign(keeper.id(), ctx.node_name.as_bytes().to_vec());
        let leadership = tokio::select! {
            l = campaign => l,
            reason = keeper.lost() => {
                tracing::warn!("election lease lost while campaigning: {reason}");
                continue;
            }
            _ = shutdown.changed() => {
                let _ = keeper.revoke().await;
                return;
            }
        };
        let leadership = match leadership {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("leader election failed: {e}");
                let _ = keeper.revoke().await;
                continue;
            }
        };
        tracing::info!(node = ctx.node_name, "leading the controllers");
        ctx.metrics.leader.store(1, Ordering::Relaxed);
        tokio::select! {
            r = lead(&ctx) => if let Err(e) = r { tracing::warn!("controller stopped: {e}") },
            reason = keeper.lost() => tracing::warn!("lost leadership: {reason}"),
            _ = shutdown.changed() => {}
        }
        ctx.metrics.leader.store(0, Ordering::Relaxed);
        if let Err(e) = leadership.resign().await {
            tracing::debug!("resigning: {e}");
        }
        let _ = keeper.revoke().await;
    }
}

/// Reconciles while leading: on every relevant change, and every [`RESYNC`].
async fn lead(ctx: &Context) -> Result<(), StoreError> {
    let wake = Arc::new(Notify::new());
    let rev = ctx.store.revision().await?;
    let mut stream = ctx.store.watch(ctx.keys.root(), rev + 1).await?;
    let (keys, notify) = (ctx.keys.clone(), wake.clone());
    let watcher = tokio::spawn(async move {
        while let Some(Ok(ev)) = stream.next().await {
            let relevant = matches!(
                keys.parse(&ev.kv.key),
                Some(
                    KeyRef::DesiredApp { .. }
                        | KeyRef::ActualInstance { .. }
                        | KeyRef::NodeInfo { .. }
                        | KeyRef::NodeStatus { .. }
                )
            );
            if relevant {
                notify.notify_one();
            }
        }
    });
    let _abort = AbortOnDrop(watcher);
    loop {
        let started = Instant::now();
        let result = reconcile_all(ctx).await;
        ctx.metrics.reconciles.fetch_add(1, Ordering::Relaxed);
        ctx.metrics.reconcile_duration.observe(started.elapsed());
        if let Err(e) = result {
            ctx.metrics.reconcile_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("reconcile failed: {e}");
        }
        if _abort.0.is_finished() {
            return Err(StoreError::Unavailable("the controller's watch ended".into()));
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One pass over every application.
pub async fn reconcile_all(ctx: &Context) -> Result<(), StoreError> {
    let view = ClusterView::read(ctx.store.as_ref(), &ctx.keys).await?;
    count_states(ctx, &view);
    let events = ctx.events();
    for ((tenant, name), stored) in &view.apps {
        let Some(app) = stored.record.object.as_application() else { continue };
        let existing: BTreeMap<_, _> = view
            .desired
            .iter()
            .filter(|(id, _)| &id.tenant == tenant && &id.app == name)
            .map(|(id, d)| (id.clone(), d.node.clone()))
            .collect();
        let wanted = app::wanted_instances(tenant, name, &app.spec);
        let placement = if stored.record.deleting || wanted.iter().all(|id| existing.contains_key(id)) {
            Placement { assigned: existing, ..Default::default() }
        } else {
            let nodes: Vec<_> = view.nodes.values().cloned().collect();
            let placed: Vec<_> = view.desired.values().cloned().collect();
            ctx.placer.place(&nodes, &placed, tenant, name, &app.spec)
        };
        let actions = app::reconcile_app(&view, tenant, name, stored, &placement, Utc::now());
        let mut ops = Vec::new();
        for d in &actions.puts {
            let key = ctx.keys.desired_instance(&d.node, &d.id);
            ops.push(TxnOp::Put { value: encode(&key, d)?, key, lease: None });
        }
        for (node, id) in &actions.deletes {
            ops.push(TxnOp::Delete { key: ctx.keys.desired_instance(node, id) });
        }
        if actions.remove_app {
            ops.push(TxnOp::Delete { key: ctx.keys.desired_app(tenant, name) });
            ops.push(TxnOp::Delete { key: ctx.keys.actual_app(tenant, name) });
        } else if let Some(status) = &actions.status {
            let key = ctx.keys.actual_app(tenant, name);
            ops.push(TxnOp::Put { value: encode(&key, status)?, key, lease: None });
        }
        if ops.is_empty() {
            continue;
        }
        // Only act on the application as read: a concurrent apply or delete wins and is reconciled next pass.
        let app_key = ctx.keys.desired_app(tenant, name);
        let txn = fos_store::Txn {
            compare: vec![fos_store::Compare::mod_revision(app_key, stored.mod_revision)],
            success: ops,
            failure: Vec::new(),
        };
        if !ctx.store.txn(txn).await?.succeeded {
            continue;
        }
        for (reason, message) in actions.events {
            events.emit(tenant, name, reason, message).await?;
        }
        if actions.remove_app {
            events.emit(tenant, name, "Deleted", format!("{name} deleted")).await?;
        }
    }
    remove_orphans(ctx, &view).await
}

/// Deletes desired instances whose application no longer exists.
async fn remove_orphans(ctx: &Context, view: &ClusterView) -> Result<(), StoreError> {
    for (id, d) in &view.desired {
        if !view.apps.contains_key(&(id.tenant.clone(), id.app.clone())) {
            ctx.store.delete(&ctx.keys.desired_instance(&d.node, id)).await?;
        }
    }
    Ok(())
}

fn count_states(ctx: &Context, view: &ClusterView) {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for a in view.actual.values() {
        let state = a.state().map(|s| s.as_str()).unwrap_or("None");
        *counts.entry(state.to_string()).or_default() += 1;
    }
    if let Ok(mut m) = ctx.metrics.instances_by_state.lock() {
        *m = counts;
    }
}

fn encode<T: serde::Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Codec { key: key.to_string(), message: e.to_string() })
}

/// Decodes a stored application record.
pub fn decode_app(key: &str, value: &[u8]) -> Result<AppRecord, StoreError> {
    serde_json::from_slice(value).map_err(|e| StoreError::Codec { key: key.to_string(), message: e.to_string() })
}
