//! Kernel object names derived from fos names. Every link, namespace and cgroup an agent creates carries its
//! [`Names::scope`], four base-32 characters of a hash of the system id, the node name and the agent's data
//! directory, so two agents on one machine (two systems, two nodes of a test, or two agents that were given the
//! same node name) never take over each other's objects, and everything one agent made
//! is found by its prefix ([`Names::link_prefix`], [`Names::netns_prefix`]), even what it lost track of. Link names
//! fit the kernel's 15-character limit; every name is a stable function of the network or instance it belongs to,
//! so a restarted agent finds what it made before.
//!
//! ```text
//! bridge of a network            fos<scope>b<7 chars of the network's hash>
//! its VxLAN or VLAN device       fos<scope>x<7 chars of the network's hash>
//! node end of an instance veth   fos<scope>v<6 chars of the instance's hash><interface index>
//! instance network namespace     fos-<scope>-<instance id>
//! instance cgroup                fos/<instance id>@<scope>
//! ```

use std::path::Path;

use fos_api::record::InstanceId;

use super::NetworkName;

/// The digits names are written in: base 32, lowercase, so a link name holds more of a hash than in hex.
const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// The kernel's limit on link names (IFNAMSIZ without the terminating NUL).
pub const MAX_LINK_NAME: usize = 15;

/// A stable 64-bit FNV-1a hash of `text`.
fn fnv1a64(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The first `len` base-32 digits of `hash` (low bits first).
fn base32(mut hash: u64, len: usize) -> String {
    (0..len)
        .map(|_| {
            let d = DIGITS[(hash & 31) as usize] as char;
            hash >>= 5;
            d
        })
        .collect()
}

/// A stable 32-bit FNV-1a hash of `text`, as 8 hex digits.
pub fn short_hash(text: &str) -> String {
    format!("{:08x}", fos_api::network::fnv1a32(text))
}

/// The names of one agent's kernel objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Names {
    scope: String,
}

impl Names {
    /// The names of the agent of `node` in system `system` keeping its state in `data_dir` (a restarted agent has
    /// the same three, so it finds what it made before).
    pub fn new(system: &str, node: &str, data_dir: &Path) -> Self {
        let key = format!("{system}/{node}/{}", data_dir.display());
        Names { scope: base32(fnv1a64(&key), 4) }
    }

    /// What tells this agent's objects apart: 4 base-32 characters of a hash of the system id, node name and data
    /// directory.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The prefix of every link this agent creates: `fos<scope>`.
    pub fn link_prefix(&self) -> String {
        format!("fos{}", self.scope)
    }

    /// The prefix of every network namespace this agent creates: `fos-<scope>-`.
    pub fn netns_prefix(&self) -> String {
        format!("fos-{}-", self.scope)
    }

    /// The bridge of a network.
    pub fn bridge(&self, net: &NetworkName) -> String {
        format!("fos{}b{}", self.scope, base32(fnv1a64(&net.to_string()), 7))
    }

    /// The VxLAN or VLAN device of a network.
    pub fn segment_device(&self, net: &NetworkName) -> String {
        format!("fos{}x{}", self.scope, base32(fnv1a64(&net.to_string()), 7))
    }

    /// The named network namespace of an instance.
    pub fn instance_netns(&self, instance: &InstanceId) -> String {
        format!("fos-{}-{instance}", self.scope)
    }

    /// The node-side end of an instance's veth pair on its `nic`-th network (`nic` below
    /// [`fos_api::manifest::MAX_NETWORKS`], written as one base-32 digit).
    pub fn host_veth(&self, instance: &InstanceId, nic: usize) -> String {
        format!("{}{}", self.host_veth_prefix(instance), DIGITS[nic % 32] as char)
    }

    /// The prefix of every node-side veth end of an instance.
    pub fn host_veth_prefix(&self, instance: &InstanceId) -> String {
        format!("fos{}v{}", self.scope, base32(fnv1a64(&instance.to_string()), 6))
    }

    /// The cgroup name suffix of this agent's instances (`<instance id>@<scope>`).
    pub fn cgroup(&self, instance: &InstanceId) -> String {
        format!("{instance}@{}", self.scope)
    }
}

/// The interface name of the `nic`-th network inside the instance's namespace.
pub fn instance_interface(nic: usize) -> String {
    format!("eth{nic}")
}

/// A locally administered unicast MAC derived from the instance and its interface (used when none is given).
pub fn instance_mac(instance: &InstanceId, nic: usize) -> [u8; 6] {
    fos_api::network::instance_mac(instance, nic)
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8]) -> String {
    fos_api::network::format_mac(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limit_and_are_stable() {
        let names = Names::new("0", "a-node-with-a-long-name", Path::new("/var/lib/fos"));
        let net = NetworkName::new("a-rather-long-tenant-name", "and-a-long-network-name");
        let id = InstanceId::new("default", "wordpress", "database", 12);
        for name in [names.bridge(&net), names.segment_device(&net), names.host_veth(&id, 31)] {
            assert_eq!(name.len(), MAX_LINK_NAME, "{name}");
            assert!(name.starts_with(&names.link_prefix()), "{name}");
        }
        assert!(names.host_veth(&id, 3).starts_with(&names.host_veth_prefix(&id)));
        assert_ne!(names.host_veth(&id, 0), names.host_veth(&id, 1));
        assert!(names.instance_netns(&id).starts_with(&names.netns_prefix()));
        assert_eq!(
            names.bridge(&net),
            Names::new("0", "a-node-with-a-long-name", Path::new("/var/lib/fos")).bridge(&net)
        );
        assert_ne!(names.bridge(&net), names.bridge(&NetworkName::new("default", "other")));
        assert_ne!(names.bridge(&net), names.segment_device(&net));
    }

    #[test]
    fn two_agents_never_share_a_name() {
        let data = Path::new("/var/lib/fos");
        let (a, b, c) = (Names::new("0", "n1", data), Names::new("1", "n1", data), Names::new("0", "n2", data));
        let d = Names::new("0", "n1", Path::new("/srv/fos"));
        assert_ne!(a.scope(), b.scope(), "another system");
        assert_ne!(a.scope(), c.scope(), "another node");
        assert_ne!(a.scope(), d.scope(), "the same node name with another data directory");
        assert_eq!(a, Names::new("0", "n1", data), "the same agent again");
        let net = NetworkName::new("default", "wp-net");
        let id = InstanceId::new("default", "wordpress", "db", 0);
        for other in [&b, &c, &d] {
            assert_ne!(a.bridge(&net), other.bridge(&net));
            assert_ne!(a.segment_device(&net), other.segment_device(&net));
            assert_ne!(a.host_veth(&id, 0), other.host_veth(&id, 0));
            assert_ne!(a.instance_netns(&id), other.instance_netns(&id));
            assert_ne!(a.cgroup(&id), other.cgroup(&id));
            assert!(!other.bridge(&net).starts_with(&a.link_prefix()));
        }
    }

    #[test]
    fn macs_parse_format_and_are_local_unicast() {
        let id = InstanceId::new("default", "wp", "db", 0);
        let mac = instance_mac(&id, 0);
        assert_eq!(mac[0] & 0x03, 0x02, "locally administered, unicast");
        assert_ne!(mac, instance_mac(&id, 1));
        assert_eq!(parse_mac(&format_mac(&mac)), Some(mac));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:00:00"), None);
        assert_eq!(parse_mac("zz:00:00:00:00:00"), None);
    }
}
