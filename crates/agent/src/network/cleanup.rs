//! Removing everything a node's network manager made, for an agent that stops for good (`fosd --cleanup`): every
//! instance it attached is detached (exposed ports, veths, namespace, the addresses it allocated), every network it
//! has on the node torn down (bridge, VxLAN/VLAN device with its forwarding entries, gateway, `dnsmasq`, the node's
//! network record, the segment id when it was the last node), and then whatever is still there under the agent's
//! names ([`super::names::Names`]) is swept: links, namespaces, `dnsmasq` processes, and the bind mount it made of
//! the namespace directory.

use std::fs;
use std::path::{Path, PathBuf};

use fos_api::record::InstanceId;
use fos_store::records::NodeNetworks;

use super::{dhcp, netns, LinuxNetworks, NetworkError, NetworkManager, NetworkName, StoreNetworkManager};

/// The marker (in the run directory) saying the agent made the namespace directory a mount point.
const NETNS_MOUNT_MARKER: &str = "netns-dir-mounted";

/// What a cleanup removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Networks torn down.
    pub networks: Vec<NetworkName>,
    /// Links deleted by the sweep (left behind by an earlier run or a failed teardown).
    pub links: Vec<String>,
    /// Instance namespaces removed.
    pub namespaces: Vec<String>,
    /// `dnsmasq` processes stopped by the sweep.
    pub dhcp: Vec<String>,
}

impl StoreNetworkManager {
    /// Detaches every instance with a namespace under this agent's names, tears down every network this node has
    /// up or recorded, then sweeps the kernel side ([`LinuxNetworks::sweep`]).
    pub async fn clean_all(&self) -> Result<Swept, NetworkError> {
        let linux = self.linux();
        let names = linux.names();
        let mut swept = Swept::default();
        for ns in netns::list_named(linux.netns_dir(), &names.netns_prefix()) {
            let Some(id) = ns.strip_prefix(&names.netns_prefix()).and_then(|i| i.parse::<InstanceId>().ok()) else {
                continue;
            };
            self.detach(&id).await?;
            swept.namespaces.push(ns);
        }
        let mut nets = self.up_networks();
        let (recorded, _) = self.records().list::<NodeNetworks>().await?;
        nets.extend(recorded.into_iter().filter(|((node, _), _)| node == self.node()).map(|((_, net), _)| net));
        nets.sort();
        nets.dedup();
        for net in nets {
            self.teardown(&net).await?;
            swept.networks.push(net);
        }
        let rest = linux.sweep().await?;
        swept.links = rest.links;
        swept.namespaces.extend(rest.namespaces);
        swept.dhcp = rest.dhcp;
        Ok(swept)
    }
}

impl LinuxNetworks {
    /// Makes the namespace directory a shared mount point (as `ip netns add` does) before the first namespace is
    /// named in it, remembering in the run directory when that made a mount (undone by [`LinuxNetworks::sweep`]).
    pub fn share_netns_dir(&self) -> Result<(), NetworkError> {
        let dir = self.netns_dir();
        let made = netns::share_dir(dir).map_err(|source| NetworkError::Os {
            doing: format!("making {} a shared mount point", dir.display()),
            source,
        })?;
        if made {
            let marker = self.run_dir().join(NETNS_MOUNT_MARKER);
            let written =
                fs::create_dir_all(self.run_dir()).and_then(|_| fs::write(&marker, dir.as_os_str().as_encoded_bytes()));
            written.map_err(|source| NetworkError::Os { doing: format!("writing {}", marker.display()), source })?;
        }
        Ok(())
    }

    /// Removes what is left under this agent's names in the node's namespace and the namespace directory: links
    /// named with its prefix, namespaces named with its prefix, the `dnsmasq` of its bridges, and the bind mount of
    /// the namespace directory it made (when nothing else is mounted there). Idempotent.
    pub async fn sweep(&self) -> Result<Swept, NetworkError> {
        let names = self.names();
        let mut swept = Swept::default();
        let prefix = names.link_prefix();
        let ours: Vec<_> = self.host().links().await?.into_iter().filter(|l| l.name.starts_with(&prefix)).collect();
        for link in ours {
            if self.host().link(&link.name).await?.is_some() {
                self.host().delete_link(&link).await?;
                swept.links.push(link.name);
            }
        }
        let dir = self.netns_dir().to_path_buf();
        for ns in netns::list_named(&dir, &names.netns_prefix()) {
            netns::remove_named(&dir, &ns)
                .map_err(|source| NetworkError::Os { doing: format!("removing network namespace {ns}"), source })?;
            swept.namespaces.push(ns);
        }
        let run_dir = self.run_dir().to_path_buf();
        let bridges = bridges_with_state(&run_dir, &prefix);
        for bridge in bridges {
            let (run, b) = (run_dir.clone(), bridge.clone());
            let stopped = tokio::task::spawn_blocking(move || {
                let stopped = dhcp::stop(&run, &b)?;
                dhcp::remove_state(&run, &b)?;
                Ok::<_, NetworkError>(stopped)
            })
            .await
            .map_err(|e| NetworkError::Os { doing: "stopping dnsmasq".into(), source: std::io::Error::other(e) })??;
            if stopped {
                swept.dhcp.push(bridge);
            }
        }
        let marker = run_dir.join(NETNS_MOUNT_MARKER);
        if marker.exists() {
            let released = netns::release_dir(&dir)
                .map_err(|source| NetworkError::Os { doing: format!("unmounting {}", dir.display()), source })?;
            if released || !netns::mounts_below(&dir).contains(&dir) {
                let _ = fs::remove_file(&marker);
            }
        }
        let _ = fs::remove_dir(&run_dir); // only when empty
        Ok(swept)
    }
}

/// The bridges with this prefix that have `dnsmasq` state in `run_dir`.
fn bridges_with_state(run_dir: &Path, prefix: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(run_dir) else { return Vec::new() };
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|n| {
            let rest = n.strip_prefix("dnsmasq-").or_else(|| n.strip_prefix("dhcp-hosts-"))?;
            let bridge = rest.trim_end_matches(".pid").trim_end_matches(".leases");
            bridge.starts_with(prefix).then(|| bridge.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The path of a namespace directory's mount marker (for tests).
pub fn netns_mount_marker(run_dir: &Path) -> PathBuf {
    run_dir.join(NETNS_MOUNT_MARKER)
}
