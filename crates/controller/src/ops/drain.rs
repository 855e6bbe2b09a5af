//! Draining a node: it is cordoned with `drain`, and the node reconciler moves its instances off by
//! stop-and-place-again (dependents first, `maxUnavailable` per component). Answers what is still on it.

use fos_api::wire::DrainStatus;

use super::{cordon, read, Caller, OpError};
use crate::view::ClusterView;
use crate::Context;

/// Starts draining `node` (again: nothing changes) and says what is still on it.
pub async fn drain(ctx: &Context, caller: &Caller, node: &str) -> Result<DrainStatus, OpError> {
    cordon::cordon(ctx, caller, node, true).await?;
    remaining(ctx, caller, node).await
}

/// The instances still on `node` (desired or reported there).
pub async fn remaining(ctx: &Context, caller: &Caller, node: &str) -> Result<DrainStatus, OpError> {
    caller.check_admin("drain a node")?;
    let (view, _) = ClusterView::read(&ctx.records()).await?;
    let mut left: Vec<String> = read::entity_views(&view)
        .into_iter()
        .filter(|e| {
            e.desired.as_ref().is_some_and(|d| d.node == node) || e.actual.as_ref().is_some_and(|a| a.node == node)
        })
        .map(|e| e.id.to_string())
        .collect();
    left.sort();
    Ok(DrainStatus { node: node.to_string(), remaining: left })
}
