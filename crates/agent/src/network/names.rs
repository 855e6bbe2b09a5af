//! Kernel object names derived from fos names: every device and namespace fos creates starts with `fos`, fits the
//! kernel's 15-character limit, and is a stable function of the network or instance it belongs to, so a restarted
//! agent finds what it made before.

use fos_api::record::InstanceId;

use super::NetworkName;

/// A stable 32-bit FNV-1a hash of `text`, as 8 hex digits.
pub fn short_hash(text: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// The bridge of a network: `fos-<hash>` (12 characters).
pub fn bridge(net: &NetworkName) -> String {
    format!("fos-{}", short_hash(&net.to_string()))
}

/// The VxLAN or VLAN device of a network: `fosx-<hash>` (13 characters).
pub fn segment_device(net: &NetworkName) -> String {
    format!("fosx-{}", short_hash(&net.to_string()))
}

/// The named network namespace of an instance: `fos-<hash>`.
pub fn instance_netns(instance: &InstanceId) -> String {
    format!("fos-{}", short_hash(&instance.to_string()))
}

/// The node-side end of an instance's veth pair on its `nic`-th network: `fosv<hash>-<nic>`.
pub fn host_veth(instance: &InstanceId, nic: usize) -> String {
    format!("fosv{}-{nic}", short_hash(&instance.to_string()))
}

/// The interface name of the `nic`-th network inside the instance's namespace.
pub fn instance_interface(nic: usize) -> String {
    format!("eth{nic}")
}

/// A locally administered unicast MAC derived from the instance and its interface (used when none is given).
pub fn instance_mac(instance: &InstanceId, nic: usize) -> [u8; 6] {
    let h = short_hash(&format!("{instance}#{nic}"));
    let n = u32::from_str_radix(&h, 16).unwrap_or(0).to_be_bytes();
    [0x02, 0xf0, n[0], n[1], n[2], n[3]]
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
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limit_and_are_stable() {
        let net = NetworkName::new("a-rather-long-tenant-name", "and-a-long-network-name");
        let id = InstanceId::new("default", "wordpress", "database", 12);
        for name in [bridge(&net), segment_device(&net), instance_netns(&id), host_veth(&id, 7)] {
            assert!(name.len() <= 15, "{name} is too long");
            assert!(name.starts_with("fos"));
        }
        assert_eq!(bridge(&net), bridge(&net.clone()));
        assert_ne!(bridge(&net), bridge(&NetworkName::new("default", "other")));
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
