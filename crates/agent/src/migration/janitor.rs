//! What a node holds of migrations that are over, removed: every [`EVERY`], and only when the node holds something
//! (so an idle node asks the store nothing), it looks at the migration records of
//!
//! - the instances whose volumes it kept after they departed ([`super::inbox::keep`]): once their migration is over (or
//!   replaced by a newer one), the volumes go, unless the instance is desired on this node again (a migration that
//!   failed at Landing brings it back here);
//! - the streams it received or is receiving ([`Inbox::pending`]): once their migration is over (or gone), what
//!   arrived goes, and so do the volumes a given-up migration moved into place here, unless the instance is desired
//!   on this node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fos_api::migration::MigrationPhase;
use fos_store::records::{DesiredInstances, Migrations};
use fos_store::{Records, StoreError};
use tokio::sync::watch;

use super::Inbox;

/// How often the node looks.
pub const EVERY: Duration = Duration::from_secs(1);

/// Runs until `shutdown` turns true.
pub async fn run(records: Records, node: String, inbox: Arc<Inbox>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => if *shutdown.borrow() { return },
            _ = tokio::time::sleep(EVERY) => {}
        }
        if let Err(e) = sweep(&records, &node, &inbox).await {
            tracing::warn!(error = %e, "cannot look at the migrations this node holds data of");
        }
    }
}

/// One look; see the module documentation.
pub async fn sweep(records: &Records, node: &str, inbox: &Inbox) -> Result<(), StoreError> {
    for (instance, migration) in inbox.kept() {
        let m = records.get::<Migrations>(&instance).await?.map(|v| v.value);
        if m.is_some_and(|m| m.id == migration && !m.phase.is_final()) {
            continue;
        }
        let here = desired_here(records, node, &instance).await?;
        match inbox.release(&instance, !here).await {
            Ok(()) => tracing::info!(%instance, %migration, removed = !here, "migration over: kept volumes released"),
            Err(e) => tracing::warn!(%instance, error = %e, "cannot remove the volumes kept after a migration"),
        }
    }
    let pending = inbox.pending();
    if pending.is_empty() {
        return Ok(());
    }
    let (all, _) = records.list::<Migrations>().await?;
    let by_id: HashMap<String, _> = all.into_iter().map(|(_, v)| (v.value.id.clone(), v.value)).collect();
    for id in pending {
        let m = by_id.get(&id);
        if m.is_some_and(|m| !m.phase.is_final()) {
            continue;
        }
        inbox.forget(&id);
        tracing::info!(migration = %id, "migration over: what arrived of it removed");
        let Some(m) = m.filter(|m| m.phase != MigrationPhase::Completed && m.destination == node) else { continue };
        if !desired_here(records, node, &m.instance).await? {
            if let Err(e) = inbox.remove_volumes(&m.instance).await {
                tracing::warn!(instance = %m.instance, error = %e, "cannot remove the volumes of a given-up migration");
            }
        }
    }
    Ok(())
}

/// Whether `id` is desired on `node`.
async fn desired_here(records: &Records, node: &str, id: &fos_api::InstanceId) -> Result<bool, StoreError> {
    Ok(records.get::<DesiredInstances>(&(node.to_string(), id.clone())).await?.is_some())
}
