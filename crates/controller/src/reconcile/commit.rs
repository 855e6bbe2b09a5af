//! Commits one reconcile's [`Actions`]: the writes through the typed records in guarded transactions (the records
//! the decision was read from must be unchanged), then the events in one batch. The runner tells the cache how it
//! ended.

use fos_store::records::{
    ActualInstances, Addresses, AppStatuses, Apps, DesiredInstances, Migrations, NodeLosses, NodeStatuses,
};
use fos_store::{Compare, Records, Revision, Txn, TxnOp, MAX_TXN_OPS};

use super::{Actions, CommitError, Guard, Write};
use crate::events::EventLog;

/// The transaction operation of one write.
fn op(records: &Records, write: &Write) -> Result<TxnOp, CommitError> {
    Ok(match write {
        Write::PutDesired(d) => records.put_op::<DesiredInstances>(&(d.node.clone(), d.id.clone()), d)?,
        Write::DeleteDesired { node, id } => records.delete_op::<DesiredInstances>(&(node.clone(), id.clone())),
        Write::DeleteActual { node, id } => records.delete_op::<ActualInstances>(&(node.clone(), id.clone())),
        Write::PutLoss(node, loss) => records.put_op::<NodeLosses>(node, loss)?,
        Write::DeleteLoss(node) => records.delete_op::<NodeLosses>(node),
        Write::PutStatus(app, status) => records.put_op::<AppStatuses>(app, status)?,
        Write::DeleteStatus(app) => records.delete_op::<AppStatuses>(app),
        Write::DeleteApp(app) => records.delete_op::<Apps>(app),
        Write::PutApp(app, record) => records.put_op::<Apps>(app, record)?,
        Write::PutMigration(m) => records.put_op::<Migrations>(&m.instance, m)?,
        Write::TakeAddress { network, ip, holder } => records.put_op::<Addresses>(&(network.clone(), *ip), holder)?,
        Write::ReleaseAddress { network, ip } => records.delete_op::<Addresses>(&(network.clone(), *ip)),
    })
}

/// Writes `actions` (nothing when they write nothing) and records their events. Writes beyond what
/// one transaction may hold ([`MAX_TXN_OPS`]) go in several, each under the same guards: a change of a guarded
/// record stops the rest, and the next reconcile finishes from what went in. Returns the revision of the last write.
pub async fn commit(records: &Records, events: &EventLog, actions: &Actions) -> Result<Option<Revision>, CommitError> {
    let mut revision = None;
    let compare: Vec<Compare> = actions
        .guards
        .iter()
        .map(|g| match g {
            Guard::App(app, rev) => records.unchanged::<Apps>(app, *rev),
            Guard::NodeGone(node) => records.absent::<NodeStatuses>(node),
        })
        .collect();
    let takes = actions.writes.iter().filter(|w| matches!(w, Write::TakeAddress { .. })).count();
    let per_txn = MAX_TXN_OPS.saturating_sub(compare.len() + takes).max(1);
    for writes in actions.writes.chunks(per_txn) {
        let success = writes.iter().map(|w| op(records, w)).collect::<Result<Vec<_>, _>>()?;
        // An address is taken only if nobody took it since the view was read (an agent, or another controller).
        let mut compare = compare.clone();
        compare.extend(writes.iter().filter_map(|w| match w {
            Write::TakeAddress { network, ip, .. } => Some(records.absent::<Addresses>(&(network.clone(), *ip))),
            _ => None,
        }));
        let txn = Txn { compare, success, failure: Vec::new() };
        let result = records.store().txn(txn).await?;
        if !result.succeeded {
            return Err(CommitError::Conflict);
        }
        revision = Some(result.revision);
    }
    events.emit_all(&actions.events).await?;
    Ok(revision)
}
