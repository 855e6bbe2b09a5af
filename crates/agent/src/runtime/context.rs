//! What the node decided about an instance, handed to every runtime step: its directories, where its output goes,
//! its network namespace, its cgroup, its volumes and its reservations. [`NodeLayout::context`] is the one function
//! that decides it (the driver calls it for every step, runtimes for the instances they recover), so no runtime
//! recomputes a path and every runtime of a node lays its instances out the same way.
//!
//! The layout, for an instance `<id>` of kind `<kind>`:
//!
//! ```text
//! <data>/<kind>/<id>/             the instance's directory (the runtime's own files: state, markers)
//! <data>/<kind>/<id>/work/        its working area, made at configure and removed at clean
//! <data>/<kind>/<id>/logs/        stdout.log, stderr.log (and whatever else the runtime writes there)
//! <data>/volumes/<id>/<name>/      each of its volumes: made by the driver before define, kept through clean,
//!                                  restarts and new generations, removed after undefine (or sent along when it
//!                                  migrates)
//! <netns_dir>/fos-<scope>-<id>    its network namespace, when it attaches to networks
//! <cgroup root>/fos/<id>@<scope>  its cgroup under every hierarchy the node has
//! ```
//!
//! `<scope>` is the agent's [`Names::scope`] (a hash of the system id and node name), so agents sharing a machine
//! never touch each other's namespaces or groups.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fos_api::manifest::EntityKind;
use fos_api::network::NetworkName;
use fos_api::record::{AssignedDevices, DesiredInstance, InstanceId};

use crate::cgroup::{Cgroups, InstanceCgroup};
use crate::network::names::Names;
use crate::network::netns;

/// Where an instance's output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPaths {
    /// The directory of its output files.
    pub dir: PathBuf,
    /// Its standard output.
    pub stdout: PathBuf,
    /// Its standard error.
    pub stderr: PathBuf,
}

impl LogPaths {
    /// The output files in the order they are shown (stdout, then stderr).
    pub fn files(&self) -> Vec<PathBuf> {
        vec![self.stdout.clone(), self.stderr.clone()]
    }
}

/// What the node set aside for an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservations {
    /// CPU in thousandths of a core (0: unlimited).
    pub cpu_millis: u64,
    /// Memory in bytes (0: unlimited).
    pub memory_bytes: u64,
    /// The devices the scheduler assigned to it.
    pub devices: AssignedDevices,
}

/// Everything the node decided about one instance, handed to each runtime step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceContext {
    /// Which instance.
    pub id: InstanceId,
    /// The runtime that runs it.
    pub kind: EntityKind,
    /// The instance's directory (`<data>/<kind>/<id>`): the runtime's own files live here.
    pub dir: PathBuf,
    /// Its working area (`<dir>/work`), made at configure and removed at clean.
    pub work_dir: PathBuf,
    /// Where its output goes (`<dir>/logs`).
    pub logs: LogPaths,
    /// The network namespace it runs in, when it attaches to networks (the network manager makes it before
    /// configure); `None`: the node's.
    pub netns: Option<PathBuf>,
    /// The virtual networks it attaches to (its namespace has one interface on each).
    pub networks: Vec<NetworkName>,
    /// Its cgroup (named, not created: the runtime creates it at configure when [`InstanceCgroup::is_enabled`]).
    pub cgroup: InstanceCgroup,
    /// Volumes by name, each a directory on the node (`<data>/volumes/<id>/<name>`), made before define.
    pub volumes: BTreeMap<String, PathBuf>,
    /// CPU, memory and devices set aside for it.
    pub reservations: Reservations,
    /// The values of the entity's `env` entries that name a Secret (`{secretRef: name/key}`), resolved by the driver
    /// for the steps that start processes (define, configure, run); empty otherwise. Never written to disk.
    pub secret_env: SecretEnv,
    /// The Secret the entity's `imagePullSecret` names, opened by the driver for the steps that start processes
    /// (its registry credentials); `None` otherwise. Never written to disk.
    pub pull_secret: Option<crate::oci::auth::PullSecret>,
}

/// Environment values read from Secrets, by variable name. Its `Debug` output shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretEnv(pub BTreeMap<String, String>);

impl std::fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// How the node lays out its instances: the data directory, the directory of network namespaces and the cgroup
/// hierarchies. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NodeLayout {
    data_dir: PathBuf,
    netns_dir: PathBuf,
    cgroups: Arc<Cgroups>,
    names: Names,
}

impl NodeLayout {
    /// A layout under `data_dir`, with instance namespaces named in `netns_dir`, the cgroups found on the node, and
    /// kernel object names in the agent's scope (`names`).
    pub fn new(data_dir: impl Into<PathBuf>, netns_dir: impl Into<PathBuf>, cgroups: Cgroups, names: Names) -> Self {
        NodeLayout { data_dir: data_dir.into(), netns_dir: netns_dir.into(), cgroups: Arc::new(cgroups), names }
    }

    /// A layout under `data_dir` with the default namespace directory and cgroups detected (when `use_cgroups`),
    /// for the agent of `node` in the default system.
    pub fn detect(data_dir: impl Into<PathBuf>, use_cgroups: bool, node: &str) -> Self {
        let cgroups = if use_cgroups { Cgroups::detect() } else { Cgroups::default() };
        let data_dir = data_dir.into();
        let names = Names::new(fos_api::keys::DEFAULT_SYSTEM, node, &data_dir);
        Self::new(data_dir, netns::NETNS_DIR, cgroups, names)
    }

    /// The names of the agent's kernel objects.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The directory instance network namespaces are named in.
    pub fn netns_dir(&self) -> &Path {
        &self.netns_dir
    }

    /// The agent's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where a runtime keeps its instances' directories (`<data>/<kind>`).
    pub fn runtime_dir(&self, kind: EntityKind) -> PathBuf {
        self.data_dir.join(kind.as_str())
    }

    /// Where the volumes of instance `id` live (`<data>/volumes/<id>`), one directory per volume.
    pub fn volumes_dir(&self, id: &InstanceId) -> PathBuf {
        self.data_dir.join("volumes").join(id.to_string())
    }

    /// The cgroup hierarchies the node offers.
    pub fn cgroups(&self) -> &Cgroups {
        &self.cgroups
    }

    /// The context of the instance `desired` describes.
    pub fn context(&self, desired: &DesiredInstance) -> InstanceContext {
        let id = &desired.id;
        let kind = desired.entity.kind;
        let dir = self.runtime_dir(kind).join(id.to_string());
        let log_dir = dir.join("logs");
        let netns =
            (!desired.entity.networks.is_empty()).then(|| netns::path(&self.netns_dir, &self.names.instance_netns(id)));
        InstanceContext {
            id: id.clone(),
            kind,
            work_dir: dir.join("work"),
            logs: LogPaths { stdout: log_dir.join("stdout.log"), stderr: log_dir.join("stderr.log"), dir: log_dir },
            dir,
            netns,
            networks: desired.entity.networks.iter().map(|a| NetworkName::new(&id.tenant, &a.network)).collect(),
            cgroup: self.cgroups.instance(id, self.names.scope()),
            volumes: desired
                .entity
                .volumes
                .iter()
                .map(|v| (v.name.clone(), self.volumes_dir(id).join(&v.name)))
                .collect(),
            reservations: Reservations {
                cpu_millis: desired.entity.cpu_millis(),
                memory_bytes: desired.entity.memory_bytes(),
                devices: desired.devices.clone(),
            },
            secret_env: SecretEnv::default(),
            pull_secret: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fos_api::manifest::{EntitySpec, NetworkAttachment};

    fn desired() -> DesiredInstance {
        DesiredInstance::new(InstanceId::new("default", "app", "web", 0), "n1", EntitySpec::native(["sleep", "1"]))
    }

    #[test]
    fn the_layout_places_an_instance_under_its_runtime_and_names_its_cgroup() {
        let names = Names::new("0", "n1", Path::new("/var/lib/fos"));
        let layout = NodeLayout::new("/var/lib/fos", "/run/netns", Cgroups::default(), names.clone());
        let mut d = desired();
        d.entity.resources.memory = Some("64Mi".into());
        let cx = layout.context(&d);
        let dir = PathBuf::from("/var/lib/fos/native/web-0.app.default");
        assert_eq!(cx.dir, dir);
        assert_eq!(cx.work_dir, dir.join("work"));
        assert_eq!(cx.logs.files(), [dir.join("logs/stdout.log"), dir.join("logs/stderr.log")]);
        assert_eq!(cx.netns, None, "no networks: the node's namespace");
        assert_eq!(cx.reservations.memory_bytes, 64 << 20);
        assert_eq!(cx.cgroup.name(), names.cgroup(&d.id), "the group carries the agent's scope");
        assert!(!cx.cgroup.is_enabled(), "no hierarchy: no group");
        assert!(cx.volumes.is_empty());
        d.entity.volumes = vec![fos_api::manifest::Volume { name: "data".into(), size: None, mount_path: None }];
        let with_volume = layout.context(&d);
        let volume = PathBuf::from("/var/lib/fos/volumes/web-0.app.default/data");
        assert_eq!(with_volume.volumes.get("data"), Some(&volume), "outside the runtime's directory");
        d.entity.networks = vec![NetworkAttachment { network: "lan".into(), ip: None, mac: None }];
        let with_net = layout.context(&d);
        assert_eq!(with_net.netns, Some(PathBuf::from("/run/netns").join(names.instance_netns(&d.id))));
        assert_eq!(with_net.cgroup, cx.cgroup, "the same group whatever the spec");
    }
}
