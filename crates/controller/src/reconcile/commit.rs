//! Commits one reconcile's [`Actions`]: every write in one transaction through the typed records, guarded by the
//! records the decision was read from, then the events in one batch. The cache is told of the writes once they are
//! in.

use fos_store::records::{AppStatuses, Apps, DesiredInstances};
use fos_store::{Records, Revision, Txn, TxnOp};

use super::cache::Cache;
use super::{Actions, CommitError, Guard, Write};
use crate::events::EventLog;

/// The transaction operation of one write.
fn op(records: &Records, write: &Write) -> Result<TxnOp, CommitError> {
    Ok(match write {
        Write::PutDesired(d) => records.put_op::<DesiredInstances>(&(d.node.clone(), d.id.clone()), d)?,
        Write::DeleteDesired { node, id } => records.delete_op::<DesiredInstances>(&(node.clone(), id.clone())),
        Write::PutStatus(app, status) => records.put_op::<AppStatuses>(app, status)?,
        Write::DeleteStatus(app) => records.delete_op::<AppStatuses>(app),
        Write::DeleteApp(app) => records.delete_op::<Apps>(app),
    })
}

/// Writes `actions` (nothing when they write nothing), tells `cache`, and records their events. Returns the revision
/// of the write.
pub async fn commit(
    records: &Records,
    events: &EventLog,
    cache: Option<&mut Cache>,
    actions: &Actions,
) -> Result<Option<Revision>, CommitError> {
    let mut revision = None;
    if !actions.writes.is_empty() {
        let compare = actions
            .guards
            .iter()
            .map(|g| match g {
                Guard::App(app, rev) => records.unchanged::<Apps>(app, *rev),
            })
            .collect();
        let success = actions.writes.iter().map(|w| op(records, w)).collect::<Result<Vec<_>, _>>()?;
        let result = records.store().txn(Txn { compare, success, failure: Vec::new() }).await?;
        if !result.succeeded {
            return Err(CommitError::Conflict);
        }
        if let Some(cache) = cache {
            cache.written(&actions.writes, result.revision);
        }
        revision = Some(result.revision);
    }
    events.emit_all(&actions.events).await?;
    Ok(revision)
}
