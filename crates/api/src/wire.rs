//! The records and bodies the control plane speaks besides manifests: the stored application record, the aggregated
//! application status, apply requests/results and plans, events, and the JSON error body of the HTTP API. Shared by
//! the API server and `fosctl` so both read the same shapes.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::manifest::{Object, ObjectKind};
use crate::plan::Unschedulable;
use crate::record::{ActualInstance, AssignedDevices, DesiredInstance, InstanceId};

/// The annotation holding the lifecycle state a standalone entity is asked to reach (`Defined`, `Configured`,
/// `Running`, `Paused`); absent means `Running`. Set by the imperative `entity` verbs.
pub const STATE_ANNOTATION: &str = "fos/state";

/// The annotation pinning a standalone entity to one node (its name), as the seed's `fos entity -u <node>
/// --define` and fog05's `define(fdu, node)` do: the entity is placed there or nowhere.
pub const NODE_ANNOTATION: &str = "fos/node";

/// The annotation naming where an object was applied from (`fosctl apply --prune` only prunes within one source).
pub const SOURCE_ANNOTATION: &str = "fos/source";

/// What is stored at `desired/apps/<tenant>/<app>`: the applied object (an Application or a standalone Entity),
/// its generation (bumped on every change) and whether it is being deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRecord {
    /// The object as applied.
    pub object: Object,
    /// 1 on creation, +1 on every change of the object.
    pub generation: u64,
    /// Set by delete: the controller tears the application down in reverse dependency order, then removes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
    /// When it was first applied (kept through updates; absent on records written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
}

/// An application's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Not every component is placed yet (or cannot be placed).
    Pending,
    /// Placed; not every instance is ready yet.
    Deploying,
    /// Every instance is ready.
    Running,
    /// It was running, and some instance is no longer ready or failed.
    Degraded,
    /// Some instance failed and none of its component is ready.
    Failed,
    /// Being torn down.
    Deleting,
    /// A standalone entity stopped on purpose (`fosctl entity stop`): every instance is placed and held stopped.
    Stopped,
    /// A standalone entity paused on purpose (`fosctl entity pause`).
    Paused,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Pending => "Pending",
            Phase::Deploying => "Deploying",
            Phase::Running => "Running",
            Phase::Degraded => "Degraded",
            Phase::Failed => "Failed",
            Phase::Deleting => "Deleting",
            Phase::Stopped => "Stopped",
            Phase::Paused => "Paused",
        })
    }
}

/// How one component is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Instances wanted.
    pub replicas: u32,
    /// Instances placed on a node.
    pub placed: u32,
    /// Instances running (at the current generation).
    pub running: u32,
    /// Instances ready.
    pub ready: u32,
    /// Why it is not progressing (unschedulable, waiting for a need, an instance error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An application's aggregated status (`actual/apps/<tenant>/<app>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// The phase.
    pub phase: Phase,
    /// The application generation this status reflects.
    pub observed_generation: u64,
    /// Per component, by name.
    pub components: BTreeMap<String, ComponentStatus>,
    /// Some component cannot be placed; `message` says why.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
    /// A summary of what holds the application back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the phase last changed.
    pub since: DateTime<Utc>,
}

/// An application as the API shows it: record plus status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppView {
    /// The stored record.
    #[serde(flatten)]
    pub record: AppRecord,
    /// The status, once the controller has aggregated one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AppStatus>,
}

/// An instance as the API shows it: what is wanted of it and what its node reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityView {
    /// Which instance.
    pub id: InstanceId,
    /// The node it is placed on (or was reported by).
    pub node: String,
    /// The desired record, while there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<DesiredInstance>,
    /// The actual record, once the node has reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<ActualInstance>,
    /// Its node has no live heartbeat: what the instance does is unknown (state shown as `Unknown`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
}

/// What a drain still has to move off a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainStatus {
    /// The node.
    pub node: String,
    /// The instances still on it (full ids).
    pub remaining: Vec<String>,
}

impl EntityView {
    /// The state to show: the actual record's, `Unknown` while the node has no heartbeat, `-` before any report.
    pub fn shown_state(&self) -> String {
        if self.unknown {
            return "Unknown".into();
        }
        self.actual.as_ref().and_then(|a| a.state()).map_or("-".into(), |s| s.to_string())
    }
}

/// The body of `POST /v1/apply`: the objects as JSON, so that the server can decode them one by one and name the
/// index of the one at fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    /// The objects, in manifest order (errors refer to them by index).
    pub objects: Vec<serde_json::Value>,
    /// Compute and return the changes and the plan; store nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Delete the applications of this source (see [`SOURCE_ANNOTATION`]) that `objects` no longer contains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_source: Option<String>,
}

impl ApplyRequest {
    /// A request to apply `objects`.
    pub fn new<'a>(objects: impl IntoIterator<Item = &'a Object>) -> Self {
        ApplyRequest {
            objects: objects.into_iter().map(Object::to_value).collect(),
            dry_run: false,
            prune_source: None,
        }
    }
}

/// The imperative lifecycle verbs of a standalone entity (`POST /v1/entities/{tenant}/{name}/{verb}`), as in the
/// seed's `fos entity …`.
pub const ENTITY_VERBS: [crate::lifecycle::Action; 8] = [
    crate::lifecycle::Action::Define,
    crate::lifecycle::Action::Configure,
    crate::lifecycle::Action::Run,
    crate::lifecycle::Action::Stop,
    crate::lifecycle::Action::Pause,
    crate::lifecycle::Action::Resume,
    crate::lifecycle::Action::Clean,
    crate::lifecycle::Action::Undefine,
];

/// What an apply does to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// It did not exist.
    Created,
    /// It existed and differs.
    Updated,
    /// It exists as given; nothing is written.
    Unchanged,
    /// It is deleted (prune).
    Deleted,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
            Change::Deleted => "deleted",
        })
    }
}

/// One object's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectChange {
    /// Its kind.
    pub kind: ObjectKind,
    /// Its tenant, for tenant-scoped kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Its name.
    pub name: String,
    /// What happens to it.
    pub change: Change,
    /// For an update: the top-level fields that differ (`spec.components[1].entity`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// Where one instance goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedInstance {
    /// The instance.
    pub instance: InstanceId,
    /// The node.
    pub node: String,
    /// Already placed there (not a new placement).
    #[serde(default)]
    pub existing: bool,
    /// Devices assigned to a new placement on that node.
    #[serde(default, skip_serializing_if = "AssignedDevices::is_empty")]
    pub devices: AssignedDevices,
}

/// The plan for one application: placements, start order, and the scheduler's explanation of what cannot be placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppPlan {
    /// Tenant.
    pub tenant: String,
    /// Application.
    pub app: String,
    /// Components in start order: each wave starts once the previous ones are ready.
    pub start_order: Vec<Vec<String>>,
    /// Where each instance goes (instances already placed first, then new placements in placement order).
    pub placements: Vec<PlannedInstance>,
    /// What cannot be placed, with the scheduler's reasons per node and the relaxation that would help.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unschedulable: Vec<Unschedulable>,
}

/// The answer to an apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResponse {
    /// One entry per object given (and per pruned application).
    pub changes: Vec<ObjectChange>,
    /// The plan of every application created or updated (and of all of them on a dry run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<AppPlan>,
    /// Whether anything was stored.
    pub dry_run: bool,
    /// The store revision after the apply.
    pub revision: i64,
}

/// The filters of the API's list calls (`?tenant=&app=&limit=`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Only this tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Only this application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// At most this many (events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// A control-plane event (`system/events/<seq>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Tenant of the application concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Application concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// A short machine-friendly reason (`Scheduled`, `Waiting`, `Unschedulable`, `Released`, `Deleted`).
    pub reason: String,
    /// What happened, in words.
    pub message: String,
}

/// The error body of every failed API call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What went wrong.
    pub message: String,
    /// The index of the object at fault in an apply request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The kind of the object at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The name of the object at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The field at fault inside the object (`spec.components[1].need[0]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A store key-value as the store view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreEntry {
    /// The key.
    pub key: String,
    /// The value (JSON when it parses as JSON, else a string).
    pub value: serde_json::Value,
    /// The key's last change.
    pub mod_revision: i64,
}

/// A change seen by the API's watch stream (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchEvent {
    /// `put` or `delete`.
    pub kind: String,
    /// The entry after the change (for a delete: the key with a null value).
    #[serde(flatten)]
    pub entry: StoreEntry,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{EntitySpec, Metadata, Typed};

    #[test]
    fn app_record_round_trips_with_kind() {
        let rec = AppRecord {
            object: Object::Entity(Typed { metadata: Metadata::named("e"), spec: EntitySpec::native(["true"]) }),
            generation: 3,
            deleting: false,
            created: None,
        };
        let v = serde_json::to_value(&rec).unwrap();
        assert_eq!(v["object"]["kind"], "Entity");
        assert!(v.get("deleting").is_none());
        let back: AppRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, rec);
    }
}

/// A Secret as listed: its name and keys, never its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    /// Its tenant.
    pub tenant: String,
    /// Its name.
    pub name: String,
    /// The keys of its data.
    pub keys: Vec<String>,
}

/// What `GET /v1/system` answers: the system id that store URIs name (`afos://<system>/…`), for clients that watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemInfo {
    /// The system id.
    pub system: String,
    /// The server's version.
    pub version: String,
}
