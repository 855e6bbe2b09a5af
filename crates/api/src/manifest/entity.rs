//! The entity spec: what runs (a native process, a VM, an OCI container), with its resources, network attachments,
//! exposed ports, readiness probe, restart policy and migration kind. Fields that belong to one kind only are
//! refused on the others by validation.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::application::string_enum;
use crate::granularity;
use crate::quantity::{ByteSize, CpuQuantity};

string_enum!(
    /// The kinds of entity, each run by its runtime plugin.
    EntityKind {
        /// A process started from an argv.
        Native = "native",
        /// A virtual machine (libvirt).
        Vm = "vm",
        /// An OCI container (runc).
        Container = "container",
    }
);

/// The most networks one entity attaches to (each is an interface of its own on the node).
pub const MAX_NETWORKS: usize = 32;

/// What to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntitySpec {
    /// Which runtime runs it.
    pub kind: EntityKind,

    /// native, container: the argv to run (no shell).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// native, container: environment variables, each a string or `{secretRef: <secret>/<key>}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, super::EnvValue>,
    /// native: who the processes run as (default: the node's unprivileged user; `root` only where allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<super::RunAs>,
    /// native: working directory, relative to the instance's directory (default: the instance's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// native: commands (each an argv) run once, in order, at configure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<Vec<String>>,

    /// vm, container: the image (an Image object's name, or a URI/path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// container: the tenant's Secret holding the registry credentials for `image` (keys `username` and
    /// `password`, or `.dockerconfigjson` as `kubectl create secret docker-registry` makes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<String>,
    /// vm: virtual cpus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// vm: guest memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// vm: root disk size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<ByteSize>,
    /// vm: cloud-init user data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// vm: an SSH public key to authorise in the guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<String>,
    /// vm: a kernel to boot directly (unikernels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// vm: an initrd for `kernel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<String>,
    /// vm: the kernel command line for `kernel` (the runtime adds the console and the guest's addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,

    /// Resources reserved on the node (and enforced where the runtime can).
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// Virtual networks to attach to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachment>,
    /// Ports exposed on the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    /// How to tell the entity is ready (without one: ready once running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Probe>,
    /// What to do when it exits (default `always`).
    #[serde(default)]
    pub restart: RestartPolicy,
    /// How it may move between nodes (default: `live` for vm, `cold` for container, `none` for native).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationKind>,
    /// Directories kept per instance across restarts, new generations and agent restarts, removed only when the
    /// instance is undefined, and carried along when it migrates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

impl EntitySpec {
    /// A native entity running `argv`.
    pub fn native<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        EntitySpec {
            kind: EntityKind::Native,
            command: argv.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            run_as: None,
            working_dir: None,
            setup: Vec::new(),
            image: None,
            image_pull_secret: None,
            cpu: None,
            memory: None,
            disk: None,
            user_data: None,
            ssh_key: None,
            kernel: None,
            initrd: None,
            cmdline: None,
            resources: Resources::default(),
            networks: Vec::new(),
            ports: Vec::new(),
            readiness: None,
            restart: RestartPolicy::default(),
            migration: None,
            volumes: Vec::new(),
        }
    }

    /// The migration kind in force, defaulted by entity kind.
    pub fn migration_kind(&self) -> MigrationKind {
        self.migration.unwrap_or(match self.kind {
            EntityKind::Vm => MigrationKind::Live,
            EntityKind::Container => MigrationKind::Cold,
            EntityKind::Native => MigrationKind::None,
        })
    }

    /// Millicores asked for: `resources.cpu`, else a VM's vcpus, else 0.
    pub fn requested_cpu_millis(&self) -> u64 {
        if let Some(c) = &self.resources.cpu {
            return c.millis().unwrap_or(0);
        }
        self.cpu.map(|n| u64::from(n) * 1000).unwrap_or(0)
    }

    /// Millicores reserved on the node and enforced: the request rounded up to what the kernel can enforce
    /// ([`crate::granularity::cpu_millis`]).
    pub fn cpu_millis(&self) -> u64 {
        granularity::cpu_millis(self.requested_cpu_millis())
    }

    /// Bytes of memory asked for: `resources.memory`, else a VM's memory, else 0.
    pub fn requested_memory_bytes(&self) -> u64 {
        self.resources.memory.as_ref().or(self.memory.as_ref()).and_then(|m| m.bytes().ok()).unwrap_or(0)
    }

    /// Bytes of memory reserved on the node and enforced: the request rounded up to whole pages
    /// ([`crate::granularity::memory_bytes`]).
    pub fn memory_bytes(&self) -> u64 {
        granularity::memory_bytes(self.requested_memory_bytes())
    }

    /// How the requests were rounded up to what the kernel can enforce (empty when they were not).
    pub fn roundings(&self) -> Vec<granularity::Rounding> {
        granularity::roundings(self.requested_cpu_millis(), self.requested_memory_bytes())
    }

    /// Bytes of disk reserved on the node: `resources.disk`, else a VM's disk, else 0; plus the declared size of
    /// every volume.
    pub fn disk_bytes(&self) -> u64 {
        let own = self.resources.disk.as_ref().or(self.disk.as_ref()).and_then(|m| m.bytes().ok()).unwrap_or(0);
        let volumes: u64 = self.volumes.iter().filter_map(|v| v.size.as_ref()?.bytes().ok()).sum();
        own.saturating_add(volumes)
    }
}

/// Resources reserved for an entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// CPU (`2`, `500m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuQuantity>,
    /// Memory (`256Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// Disk (`1Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<ByteSize>,
}

impl Resources {
    /// True when nothing is reserved.
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

/// An attachment to a virtual network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkAttachment {
    /// The network's name (declared in the application's `networks`, or a Network object).
    pub network: String,
    /// A fixed address inside the network's `ipRange` (default: allocated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// A fixed MAC address (default: generated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// A volume: a directory of the instance that outlives its processes (native: `$FOS_VOLUME_<NAME>`; containers:
/// bind-mounted at `mountPath`; VMs: a disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    /// Its name, a DNS label unique in the entity.
    pub name: String,
    /// How much disk it may take (reserved on the node by the scheduler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<ByteSize>,
    /// container: where it is mounted inside the container (an absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
}

impl Volume {
    /// The environment variable naming its directory for native entities: `FOS_VOLUME_<NAME>` (upper case, `-` as
    /// `_`).
    pub fn env_name(&self) -> String {
        format!("FOS_VOLUME_{}", self.name.to_ascii_uppercase().replace('-', "_"))
    }
}

/// A port exposed on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    /// The port the entity listens on.
    pub port: u16,
    /// The port on the node (default: the same as `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub protocol: Protocol,
}

string_enum!(
    /// Transport protocols for exposed ports.
    #[derive(Default)]
    Protocol {
        /// TCP.
        #[default]
        Tcp = "tcp",
        /// UDP.
        Udp = "udp",
    }
);

/// A readiness probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Probe {
    /// Ready when this TCP port accepts a connection.
    Tcp(u16),
    /// Ready when this HTTP GET answers 2xx or 3xx.
    Http(HttpProbe),
    /// Ready when this command (argv) exits 0.
    Exec(Vec<String>),
}

/// An HTTP readiness probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProbe {
    /// The port.
    pub port: u16,
    /// The path (default `/`).
    #[serde(default = "root_path")]
    pub path: String,
}

fn root_path() -> String {
    "/".to_string()
}

string_enum!(
    /// What to do when an entity's process exits.
    #[derive(Default)]
    RestartPolicy {
        /// Restart whatever the exit status.
        #[default]
        Always = "always",
        /// Restart only on a non-zero exit or a signal.
        OnFailure = "on-failure",
        /// Never restart.
        Never = "never",
    }
);

string_enum!(
    /// How an entity moves between nodes.
    MigrationKind {
        /// Moved while running (VMs through libvirt).
        Live = "live",
        /// Stopped, moved, started again.
        Cold = "cold",
        /// Never moved; rescheduled (started afresh) only when its node is lost.
        None = "none",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standalone_entity_pinned_to_a_node_is_placed_there_only() {
        let mut e =
            super::super::Typed { metadata: super::super::Metadata::named("s"), spec: EntitySpec::native(["true"]) };
        let app = super::super::Object::Entity(e.clone()).as_application().unwrap().into_owned();
        assert!(app.spec.components[0].constraints.nodes.is_empty());
        e.metadata.annotations.insert(crate::wire::NODE_ANNOTATION.into(), "edge-2".into());
        let app = super::super::Object::Entity(e).as_application().unwrap().into_owned();
        assert_eq!(app.spec.components[0].constraints.nodes, ["edge-2"]);
    }

    #[test]
    fn probes_read_as_single_key_maps() {
        let p: Probe = serde_json::from_str(r#"{"tcp": 3306}"#).unwrap();
        assert_eq!(p, Probe::Tcp(3306));
        let p: Probe = serde_json::from_str(r#"{"http": {"port": 80}}"#).unwrap();
        assert_eq!(p, Probe::Http(HttpProbe { port: 80, path: "/".into() }));
        let p: Probe = serde_json::from_str(r#"{"exec": ["true"]}"#).unwrap();
        assert_eq!(p, Probe::Exec(vec!["true".into()]));
    }

    #[test]
    fn defaults_follow_the_kind() {
        let mut e = EntitySpec::native(["sleep", "1"]);
        assert_eq!(e.migration_kind(), MigrationKind::None);
        assert_eq!(e.restart, RestartPolicy::Always);
        e.kind = EntityKind::Vm;
        e.cpu = Some(2);
        e.memory = Some("512Mi".into());
        assert_eq!(e.migration_kind(), MigrationKind::Live);
        assert_eq!(e.cpu_millis(), 2000);
        assert_eq!(e.memory_bytes(), 512 << 20);
        e.resources.cpu = Some("250m".into());
        assert_eq!(e.cpu_millis(), 250);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<EntitySpec>(r#"{"kind":"native","comand":["x"]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `comand`"), "{err}");
    }

    #[test]
    fn volumes_name_their_variable_and_reserve_their_size() {
        let mut e = EntitySpec::native(["sleep", "1"]);
        e.resources.disk = Some("1Gi".into());
        e.volumes = vec![
            Volume { name: "db-data".into(), size: Some("100Mi".into()), mount_path: None },
            Volume { name: "cache".into(), size: None, mount_path: None },
        ];
        assert_eq!(e.volumes[0].env_name(), "FOS_VOLUME_DB_DATA");
        assert_eq!(e.disk_bytes(), (1 << 30) + (100 << 20));
        let v: Volume = serde_json::from_str(r#"{"name":"d","mountPath":"/var/lib/mysql"}"#).unwrap();
        assert_eq!(v.mount_path.as_deref(), Some("/var/lib/mysql"));
    }
}
