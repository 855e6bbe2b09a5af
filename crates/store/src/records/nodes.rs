//! The control plane's records about nodes, under `system/nodes/<node>/`: a cordon (and drain) set by an operator,
//! and the mark of a node declared lost; and the migrations of instances between nodes (`system/migrations/`).

use fos_api::cluster::{Cordon, NodeLoss};
use fos_api::migration::Migration;
use fos_api::{InstanceId, Keys};

use super::Kind;

kind!(
    /// `system/nodes/<node>/cordon`: the node takes nothing new ([`Cordon`]; with `drain`, its instances move off).
    Cordons, String, Cordon, "node cordon",
    key: |k, node| format!("{}{node}/cordon", k.system_prefix("nodes")), prefix: |k| k.system_prefix("nodes"),
    parse_rest: |rest| match rest.as_slice() {
        [node, "cordon"] if !node.is_empty() => Some(node.to_string()),
        _ => None,
    }
);

kind!(
    /// `system/nodes/<node>/lost`: the control plane declared the node lost ([`NodeLoss`]).
    NodeLosses, String, NodeLoss, "node loss",
    key: |k, node| format!("{}{node}/lost", k.system_prefix("nodes")), prefix: |k| k.system_prefix("nodes"),
    parse_rest: |rest| match rest.as_slice() {
        [node, "lost"] if !node.is_empty() => Some(node.to_string()),
        _ => None,
    }
);

kind!(
    /// `system/migrations/<instance>`: the last migration asked for of an instance ([`Migration`]), its phases moved
    /// forward by the controller.
    Migrations, InstanceId, Migration, "migration",
    key: |k, id| format!("{}{id}", k.system_prefix("migrations")), prefix: |k| k.system_prefix("migrations"),
    parse_rest: |rest| match rest.as_slice() {
        [id] => id.parse::<InstanceId>().ok(),
        _ => None,
    }
);
