//! Instance records: the desired record the controller writes under a node (placement, entity, desired state,
//! generation) and the actual record the node's agent writes back (state, readiness, error, addresses, observed
//! generation). An instance is one replica of one component of one application.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lifecycle::{Lifecycle, State};
use crate::manifest::{EntitySpec, NetworkSpec, OnNodeLoss};
use crate::names::validate_name;

/// An instance's identity: `<component>-<replica>.<app>.<tenant>`, most specific first like a host name. It is a
/// single store key segment (names are DNS labels, so `.` separates them unambiguously).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId {
    /// The tenant.
    pub tenant: String,
    /// The application.
    pub app: String,
    /// The component.
    pub component: String,
    /// The replica number, from 0.
    pub replica: u32,
}

impl InstanceId {
    /// The id of replica `replica` of `component` in `tenant`/`app`.
    pub fn new(tenant: &str, app: &str, component: &str, replica: u32) -> Self {
        InstanceId { tenant: tenant.into(), app: app.into(), component: component.into(), replica }
    }

    /// `<component>-<replica>`, the name shown in the application's context.
    pub fn short(&self) -> String {
        format!("{}-{}", self.component, self.replica)
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}.{}.{}", self.component, self.replica, self.app, self.tenant)
    }
}

/// A string that is not an instance id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an instance id (<component>-<replica>.<app>.<tenant>)")]
pub struct InstanceIdError(pub String);

impl FromStr for InstanceId {
    type Err = InstanceIdError;

    fn from_str(s: &str) -> Result<Self, InstanceIdError> {
        let bad = || InstanceIdError(s.to_string());
        let mut parts = s.split('.');
        let (Some(first), Some(app), Some(tenant), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let (component, replica) = first.rsplit_once('-').ok_or_else(bad)?;
        let replica: u32 = replica.parse().map_err(|_| bad())?;
        for name in [component, app, tenant] {
            validate_name(name).map_err(|_| bad())?;
        }
        Ok(InstanceId::new(tenant, app, component, replica))
    }
}

impl Serialize for InstanceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InstanceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Devices allocated to an instance by the scheduler (names of the node's I/O devices and accelerators).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedDevices {
    /// I/O device names (`gpiochip0`, `ttyUSB0`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io: Vec<String>,
    /// Accelerator names (`gpu0`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accelerators: Vec<String>,
}

impl AssignedDevices {
    /// No device is assigned.
    pub fn is_empty(&self) -> bool {
        self.io.is_empty() && self.accelerators.is_empty()
    }
}

/// The role a node plays in a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "role")]
pub enum MigrationRole {
    /// This node sends the instance to `destination`.
    Source {
        /// The node receiving the instance.
        destination: String,
        /// The migration (its record's id).
        #[serde(default)]
        id: String,
        /// Cold or live.
        #[serde(default)]
        mode: crate::migration::MigrationMode,
    },
    /// This node receives the instance from `source`.
    Destination {
        /// The node sending the instance.
        source: String,
        /// The migration (its record's id).
        #[serde(default)]
        id: String,
        /// A live migration's checkpoint (the source runtime's ticket: a directory relative to the instance's
        /// volumes, which arrived with them), restored instead of starting the instance afresh.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket: Option<String>,
    },
}

/// What the controller wants of an instance on one node (`desired/nodes/<node>/instances/<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredInstance {
    /// Which instance.
    pub id: InstanceId,
    /// The node it is placed on.
    pub node: String,
    /// What to run.
    pub entity: EntitySpec,
    /// The state to reach: Defined, Configured, Running or Paused.
    pub state: State,
    /// Bumped whenever `entity` or `env` changes; the agent restarts an instance whose running generation is older.
    pub generation: u64,
    /// Environment injected for `need` (`FOS_NEED_DB_HOST`, …), on top of the entity's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Devices allocated by the scheduler.
    #[serde(default, skip_serializing_if = "is_default")]
    pub devices: AssignedDevices,
    /// Set while the instance migrates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationRole>,
    /// The specs of the virtual networks the entity attaches to (`entity.networks`), by network name, resolved by
    /// the controller from the application's inline networks or the tenant's Network objects.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, NetworkSpec>,
    /// The instance's address on each of its networks that has an `ipRange`, by network name, allocated by the
    /// controller at placement (`system/ipam/...`), so that it is known before the instance is configured.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addresses: BTreeMap<String, String>,
    /// This placement's identity (a uuid, new each time the instance is placed on a node): a node holding a copy of
    /// another epoch tears it down before running this one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// What the node does when it cannot reach the store: stop the instance before it may be placed elsewhere
    /// (`replace`), or keep it running (`keep`).
    #[serde(default, skip_serializing_if = "OnNodeLoss::is_replace")]
    pub on_node_loss: OnNodeLoss,
}

impl DesiredInstance {
    /// A first desired record of `id` on `node` running `entity`: state Running, generation 1, nothing injected.
    pub fn new(id: InstanceId, node: impl Into<String>, entity: EntitySpec) -> Self {
        DesiredInstance {
            id,
            node: node.into(),
            entity,
            state: State::Running,
            generation: 1,
            env: BTreeMap::new(),
            devices: AssignedDevices::default(),
            migration: None,
            networks: BTreeMap::new(),
            addresses: BTreeMap::new(),
            epoch: String::new(),
            on_node_loss: OnNodeLoss::Replace,
        }
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Whether `actual` shows its `desired` record running (at its generation, on its node, checked by the agent
/// running now), and whether it is also ready. The one rule for the controller's status and `need` gating and for
/// `fosctl --wait`.
pub fn running_ready(desired: Option<&DesiredInstance>, actual: Option<&ActualInstance>) -> (bool, bool) {
    let (Some(d), Some(a)) = (desired, actual) else {
        return (false, false);
    };
    let current = a.observed_generation == d.generation && a.node == d.node && !a.unverified;
    let running = current && a.state() == Some(State::Running);
    (running, running && a.ready)
}

/// What a node's agent reports of an instance (`actual/nodes/<node>/instances/<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActualInstance {
    /// Which instance.
    pub id: InstanceId,
    /// The node reporting.
    pub node: String,
    /// Where it is in the lifecycle.
    #[serde(flatten)]
    pub lifecycle: Lifecycle,
    /// The readiness probe passes (or, without a probe, it is running).
    #[serde(default)]
    pub ready: bool,
    /// Why it is in Error, or the last failure while retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Consecutive failed attempts of the step it is retrying (0 when the last step succeeded).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// Written by an earlier run of the node's agent and not checked since it restarted: the agent has not yet
    /// adopted or restarted the instance and seen its readiness probe pass. Never counted as running or ready.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified: bool,
    /// Addresses it can be reached at (IPs on the node or its networks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Its address on each virtual network it is attached to, by network name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, String>,
    /// The desired generation this record reflects.
    pub observed_generation: u64,
    /// The main process id, for native entities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Exit status of the last run, when it has exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// Why the last run ended, when it has exited: `OOMKilled` (the kernel's OOM killer, its memory limit reached),
    /// `Completed` (status 0), `Killed` (a signal), `Error` (a non-zero status), `Unknown` (an adopted process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<String>,
    /// Restarts by the restart policy so far.
    #[serde(default)]
    pub restarts: u32,
    /// When it last started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// What this node has done of a migration it is the source of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<crate::migration::MigrationProgress>,
    /// When this record was written.
    pub updated_at: DateTime<Utc>,
}

impl ActualInstance {
    /// A record for an instance that is not defined yet.
    pub fn new(id: InstanceId, node: &str) -> Self {
        ActualInstance {
            id,
            node: node.to_string(),
            lifecycle: Lifecycle::new(),
            ready: false,
            error: None,
            attempts: 0,
            unverified: false,
            addresses: Vec::new(),
            networks: BTreeMap::new(),
            observed_generation: 0,
            pid: None,
            exit_status: None,
            exit_reason: None,
            restarts: 0,
            started_at: None,
            migration: None,
            updated_at: Utc::now(),
        }
    }

    /// The current state.
    pub fn state(&self) -> Option<State> {
        self.lifecycle.state
    }

    /// Whether its node has given up on it until its desired record changes: in Error after its process exited
    /// and the restart policy allows no new run (`… (restart policy never)`), or after a step the runtime refused
    /// (`… (held until the desired record changes)`). Other errors are retried with backoff.
    pub fn failed_for_good(&self) -> bool {
        self.state() == Some(State::Error)
            && self.error.as_deref().is_some_and(|e| e.contains(GIVEN_UP_POLICY) || e.ends_with(GIVEN_UP_HELD))
    }
}

/// How an agent's error ends when the restart policy allows no new run (`exit status 1 (restart policy never)`).
pub const GIVEN_UP_POLICY: &str = "(restart policy ";
/// How an agent's error ends when a step will not be retried until the desired record changes.
pub const GIVEN_UP_HELD: &str = "(held until the desired record changes)";

#[cfg(test)]
mod tests {
    #[test]
    fn only_errors_the_node_will_not_retry_are_final() {
        let id: super::InstanceId = "db-0.wp.default".parse().unwrap();
        let mut a = super::ActualInstance::new(id, "n");
        a.lifecycle.state = Some(super::State::Error);
        a.error = Some("exit status 1; restart 3 in 4s".into());
        assert!(!a.failed_for_good());
        a.error = Some("exit status 1 (restart policy never)".into());
        assert!(a.failed_for_good());
        a.error = Some("configure failed: no command (held until the desired record changes)".into());
        assert!(a.failed_for_good());
        a.lifecycle.state = Some(super::State::Running);
        assert!(!a.failed_for_good());
    }

    use super::*;

    #[test]
    fn instance_ids_round_trip() {
        let id = InstanceId::new("default", "wordpress", "db", 0);
        assert_eq!(id.to_string(), "db-0.wordpress.default");
        assert_eq!("db-0.wordpress.default".parse::<InstanceId>(), Ok(id.clone()));
        assert_eq!("my-web-12.app.t1".parse::<InstanceId>().unwrap().component, "my-web");
        assert_eq!(id.short(), "db-0");
    }

    #[test]
    fn malformed_instance_ids_are_refused() {
        for bad in ["db.wordpress.default", "db-x.a.b", "db-0.a", "db-0.a.b.c", "Db-0.a.b", "db-0..b", "-0.a.b"] {
            assert!(bad.parse::<InstanceId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unverified_record_is_neither_running_nor_ready() {
        let id = InstanceId::new("default", "a", "c", 0);
        let desired = DesiredInstance::new(id.clone(), "n1", crate::EntitySpec::native(["true"]));
        let mut a = ActualInstance::new(id, "n1");
        a.lifecycle = Lifecycle::at(Some(State::Running));
        a.observed_generation = 1;
        a.ready = true;
        assert_eq!(running_ready(Some(&desired), Some(&a)), (true, true));
        a.unverified = true;
        assert_eq!(running_ready(Some(&desired), Some(&a)), (false, false), "stale until checked again");
        a.unverified = false;
        a.observed_generation = 0;
        assert_eq!(running_ready(Some(&desired), Some(&a)), (false, false), "an older generation");
        assert_eq!(running_ready(Some(&desired), None), (false, false));
    }

    #[test]
    fn actual_record_serializes_lifecycle_inline() {
        let mut a = ActualInstance::new(InstanceId::new("default", "a", "c", 0), "n1");
        a.lifecycle = Lifecycle::at(Some(State::Running));
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["state"], "Running");
        assert_eq!(v["id"], "c-0.a.default");
        let back: ActualInstance = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }
}
