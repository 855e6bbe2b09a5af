//! Migrating an instance to another node (`fosctl migrate`, `POST /v1/migrations/{instance}`): checks the instance
//! and the destination (named, or chosen by the scheduler under the component's constraints and proximity, never the
//! node it is on; a standalone entity pinned to its node goes only where it is sent, and its pin follows), then
//! writes the instance's [`Migration`] record (`Preparing`, with the new placement's epoch),
//! which the application reconciler moves forward (`reconcile/app/migrate.rs`) with the two agents. Also: asking a
//! migration in progress to stop (`--abort`), and reading migrations (`fosctl get migrations`).

use chrono::Utc;
use fos_api::manifest::{EntityKind, MigrationKind};
use fos_api::migration::{MigrateRequest, Migration, MigrationMode, MigrationPhase};
use fos_api::node::CRIU_PLUGIN;
use fos_api::wire::{EntityView, NODE_ANNOTATION};
use fos_api::{InstanceId, Node, Object, State};
use fos_scheduler::{Allocation, ClusterSnapshot};
use fos_store::records::{ActualPlugins, Change, Migrations};

use super::{read, Caller, OpError};
use crate::view::ClusterView;
use crate::Context;

/// Starts migrating `instance` (its full id, or the name of a standalone entity), or asks its migration in
/// progress to stop (`abort`). Answers the migration record as written.
pub async fn migrate(
    ctx: &Context,
    caller: &Caller,
    instance: &str,
    req: &MigrateRequest,
) -> Result<Migration, OpError> {
    let (view, _) = ClusterView::read(&ctx.records()).await?;
    let entity = find(&view, caller, instance)?;
    caller.check_write(&entity.id.tenant, || format!("entity {instance}"))?;
    if req.abort {
        return abort(ctx, &entity.id).await;
    }
    let id = entity.id.clone();
    let desired = entity.desired.as_ref().ok_or_else(|| OpError::Conflict(format!("{id} is not placed on a node")))?;
    let running = entity.actual.as_ref().is_some_and(|a| a.node == desired.node && a.state() == Some(State::Running));
    if !running || entity.unknown {
        let state = entity.shown_state();
        return Err(OpError::Conflict(format!(
            "only a running instance migrates: {id} is {state} on {}",
            desired.node
        )));
    }
    if let Some(m) = view.migrations.get(&id).filter(|m| !m.phase.is_final()) {
        return Err(OpError::Conflict(format!(
            "{id} is migrating already ({} → {}, {}); `fosctl migrate {id} --abort` stops it",
            m.source, m.destination, m.phase
        )));
    }
    let source = desired.node.clone();
    let mode = req.mode.unwrap_or(match desired.entity.migration_kind() {
        MigrationKind::Live => MigrationMode::Live,
        _ => MigrationMode::Cold,
    });
    let destination = destination(ctx, &view, desired, req.to.as_deref()).await?;
    if mode == MigrationMode::Live {
        check_live(ctx, &view, desired.entity.kind, [&source, &destination]).await?;
    }
    let migration = Migration {
        id: uuid::Uuid::new_v4().to_string(),
        instance: id.clone(),
        source,
        destination,
        mode,
        phase: MigrationPhase::Preparing,
        from_epoch: desired.epoch.clone(),
        epoch: uuid::Uuid::new_v4().to_string(),
        bytes_moved: 0,
        bytes_total: 0,
        abort: false,
        message: None,
        requested_by: caller.principal.clone(),
        started: Utc::now(),
        stopped_at: None,
        finished: None,
        ticket: None,
    };
    let written = migration.clone();
    ctx.records()
        .update::<Migrations, OpError, _>(&id, |current| match current {
            Some(m) if !m.phase.is_final() => Err(OpError::Conflict(format!("{id} started migrating meanwhile"))),
            _ => Ok(Change::Put(written.clone())),
        })
        .await?;
    Ok(migration)
}

/// Asks the migration of `id` in progress to stop: refused once the destination owns the instance.
async fn abort(ctx: &Context, id: &InstanceId) -> Result<Migration, OpError> {
    let (value, _) = ctx
        .records()
        .update::<Migrations, OpError, _>(id, |current| match current {
            Some(m) if m.phase.before_landing() => Ok(Change::Put(Migration { abort: true, ..m.clone() })),
            Some(m) if !m.phase.is_final() => {
                Err(OpError::Conflict(format!("too late to abort: {} owns {id} already ({})", m.destination, m.phase)))
            }
            _ => Err(OpError::Conflict(format!("{id} is not migrating"))),
        })
        .await?;
    value.ok_or_else(|| OpError::Conflict(format!("{id} is not migrating")))
}

/// The migrations of the caller's tenants (the last one of each instance), in instance order.
pub async fn list(ctx: &Context, caller: &Caller) -> Result<Vec<Migration>, OpError> {
    let (entries, _) = ctx.records().list::<Migrations>().await?;
    Ok(entries.into_iter().map(|e| e.1.value).filter(|m| caller.may_act_on(&m.instance.tenant)).collect())
}

/// The last migration of `instance` (full id or standalone entity name).
pub async fn get(ctx: &Context, caller: &Caller, instance: &str) -> Result<Migration, OpError> {
    let (view, _) = ClusterView::read(&ctx.records()).await?;
    let id = match find(&view, caller, instance) {
        Ok(e) => e.id,
        Err(_) => instance.parse::<InstanceId>().map_err(|e| OpError::NotFound(e.to_string()))?,
    };
    caller.check_read(&id.tenant, || format!("migration of {instance}"))?;
    view.migrations.get(&id).cloned().ok_or_else(|| OpError::NotFound(format!("{instance} has no migration")))
}

/// The entity `instance` names among those the caller sees.
fn find(view: &ClusterView, caller: &Caller, instance: &str) -> Result<EntityView, OpError> {
    read::entity_views(view)
        .into_iter()
        .filter(|e| caller.may_act_on(&e.id.tenant))
        .find(|e| e.id.to_string() == instance || e.id.app == instance)
        .ok_or_else(|| OpError::NotFound(format!("entity {instance} not found")))
}

/// The destination: `to` checked (ready, not cordoned, runs the entity's kind, has a network manager when the entity
/// attaches to networks, and fits the component's constraints and proximity), or the scheduler's choice among the
/// other nodes.
async fn destination(
    ctx: &Context,
    view: &ClusterView,
    desired: &fos_api::DesiredInstance,
    to: Option<&str>,
) -> Result<String, OpError> {
    let id = &desired.id;
    let refuse = |node: &str, why: String| OpError::Conflict(format!("cannot migrate {id} to {node}: {why}"));
    if let Some(to) = to {
        let node = view.nodes.get(to).ok_or_else(|| OpError::NotFound(format!("node {to} not found")))?;
        if to == desired.node {
            return Err(refuse(to, "it runs there already".into()));
        }
        check_node(ctx, node, desired).await.map_err(|why| refuse(to, why))?;
    }
    let stored = view.apps.get(&(id.tenant.clone(), id.app.clone())).map(|a| &a.record.object);
    let app = stored.and_then(Object::as_application);
    let mut app = app.ok_or_else(|| OpError::NotFound(format!("application {}/{} not found", id.tenant, id.app)))?;
    // A standalone entity pinned to its node moves only where it is sent, and its pin follows it there (the
    // reconciler moves it when the migration completes).
    if let Some(pin) = stored.and_then(|o| o.metadata().annotations.get(NODE_ANNOTATION)) {
        let Some(to) = to else {
            return Err(OpError::Conflict(format!(
                "{id} is pinned to node {pin}: name its destination (`fosctl migrate {id} --to NODE`)"
            )));
        };
        for c in &mut app.to_mut().spec.components {
            c.constraints.nodes = vec![to.to_string()];
        }
    }
    // The scheduler, over the cluster without this instance, on the nodes it may go to.
    let nodes = view.nodes.values().cloned().map(|mut n: Node| {
        let allowed = n.metadata.name != desired.node && to.is_none_or(|t| t == n.metadata.name);
        n.status.unschedulable |= !allowed;
        n
    });
    let allocations: Vec<Allocation> =
        view.desired.values().filter(|d| &d.id != id).map(Allocation::from_desired).collect();
    let existing: Vec<Allocation> =
        allocations.iter().filter(|a| a.instance.app == id.app && a.instance.tenant == id.tenant).cloned().collect();
    let snapshot = ClusterSnapshot::new(nodes, allocations).map_err(|e| OpError::Conflict(e.to_string()))?;
    let plan = ctx.placer.place(&snapshot, &existing, &id.tenant, &id.app, &app.spec);
    if let Some(p) = plan.placement(id).filter(|p| p.node != desired.node && to.is_none_or(|t| t == p.node)) {
        return Ok(p.node.clone());
    }
    let why = plan
        .unschedulable
        .iter()
        .find(|u| u.component == id.component)
        .map(|u| u.explanation())
        .unwrap_or_else(|| "no node fits".into());
    Err(match to {
        Some(to) => refuse(to, format!("the component's constraints: {why}")),
        None => OpError::Conflict(format!("no node can take {id}: {why}")),
    })
}

/// Why `node` cannot take the instance, if it cannot.
async fn check_node(ctx: &Context, node: &Node, desired: &fos_api::DesiredInstance) -> Result<(), String> {
    let name = &node.metadata.name;
    if !node.status.ready {
        return Err(format!("node {name} is not ready"));
    }
    if node.status.unschedulable {
        return Err(format!("node {name} is cordoned"));
    }
    let kind = desired.entity.kind;
    if !node.spec.runtimes.contains(&kind) {
        return Err(format!("node {name} has no working {kind} runtime"));
    }
    if !desired.entity.networks.is_empty() {
        let plugin = ctx.records().get::<ActualPlugins>(&(name.clone(), "network".into())).await;
        let ready = plugin.ok().flatten().is_some_and(|p| p.value.ready);
        if !ready {
            return Err(format!("node {name} has no working network manager for the entity's networks"));
        }
    }
    Ok(())
}

/// Refuses a live migration unless both nodes can do it: for processes and containers, CRIU (the node's `criu`
/// plugin record ready; containers are checkpointed by runc with it); VMs are migrated by their runtime.
async fn check_live<'a>(
    ctx: &Context,
    view: &ClusterView,
    kind: EntityKind,
    nodes: impl IntoIterator<Item = &'a String>,
) -> Result<(), OpError> {
    if kind == EntityKind::Vm {
        return Ok(());
    }
    // The view knows which nodes' CRIU works; the plugin record of one that does not says why.
    let Some(node) = nodes.into_iter().find(|n| !view.live_capable.contains(*n)) else { return Ok(()) };
    let plugin = ctx.records().get::<ActualPlugins>(&(node.clone(), CRIU_PLUGIN.into())).await?;
    let why = match plugin.map(|p| p.value) {
        Some(p) if !p.ready => format!(": {}", p.error.unwrap_or_else(|| "not ready".into())),
        _ => ", which has none that works".into(),
    };
    Err(OpError::Conflict(format!("live migration needs CRIU on {node}{why}; use --cold")))
}
