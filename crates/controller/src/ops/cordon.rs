//! Cordoning a node (it takes nothing new) and lifting it (`system/nodes/<node>/cordon`), for administrators.

use chrono::Utc;
use fos_api::cluster::Cordon;
use fos_api::Node;
use fos_store::records::{Change, Cordons, NodeInfos};

use super::{read, Caller, OpError};
use crate::Context;

/// Cordons `node` (with `drain`: its instances are moved off too). Answers the node as it is now.
pub async fn cordon(ctx: &Context, caller: &Caller, node: &str, drain: bool) -> Result<Node, OpError> {
    caller.check_admin("cordon or drain a node")?;
    known(ctx, node).await?;
    ctx.records()
        .update::<Cordons, OpError, _>(&node.to_string(), |current| match current {
            Some(c) if c.drain || !drain => Ok(Change::Keep),
            Some(c) => Ok(Change::Put(Cordon { drain: true, since: c.since })),
            None => Ok(Change::Put(Cordon { drain, since: Utc::now() })),
        })
        .await?;
    read::node(ctx, caller, node).await
}

/// Lifts the cordon (and stops a drain) of `node`. Answers the node as it is now.
pub async fn uncordon(ctx: &Context, caller: &Caller, node: &str) -> Result<Node, OpError> {
    caller.check_admin("uncordon a node")?;
    known(ctx, node).await?;
    ctx.records()
        .update::<Cordons, OpError, _>(&node.to_string(), |current| {
            Ok(if current.is_some() { Change::Delete } else { Change::Keep })
        })
        .await?;
    read::node(ctx, caller, node).await
}

/// Refuses a node no agent ever reported.
async fn known(ctx: &Context, node: &str) -> Result<(), OpError> {
    match ctx.records().get::<NodeInfos>(&node.to_string()).await? {
        Some(_) => Ok(()),
        None => Err(OpError::NotFound(format!("node {node} not found"))),
    }
}
