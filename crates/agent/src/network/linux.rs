//! The kernel side of a node's networks: builds a resolved [`NetworkPlan`] or an instance's [`NicPlan`]s with
//! netlink in the node's network namespace, reads back what exists, and changes only what differs.

use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use fos_api::manifest::PortMapping;
use fos_api::record::InstanceId;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVlan, LinkVxlan};

use super::names::{self, Names};
use super::netlink::{LinkView, Netlink};
use super::ports::PortProxy;
use super::{dhcp, netns};
use super::{InstanceNetworking, InterfaceState, NetworkError, NetworkName, NetworkPlan, NetworkPluginConfig};
use super::{NicPlan, NodeNetwork, Segment};

/// The VxLAN UDP port (IANA).
pub const VXLAN_PORT: u16 = 4789;

/// What VxLAN over IPv4 adds to a frame: outer IPv4 (20) + UDP (8) + VxLAN (8) + inner Ethernet (14) headers.
pub const VXLAN_OVERHEAD: u32 = 50;

/// Where `dnsmasq` state is kept unless the plugin configuration says otherwise.
pub const DEFAULT_RUN_DIR: &str = "/run/fos/network";

/// The MTU of node-local bridges.
const LOCAL_MTU: u32 = 1500;

/// Runs `f` (which waits on a child process) off the async worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NetworkError> + Send + 'static,
) -> Result<T, NetworkError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| NetworkError::Os {
        doing: "managing dnsmasq".into(),
        source: std::io::Error::other(e.to_string()),
    })?
}

/// Builds networks and attaches instances in one node's network namespace.
pub struct LinuxNetworks {
    host_ns: Arc<File>,
    host: Netlink,
    config: NetworkPluginConfig,
    netns_dir: PathBuf,
    run_dir: PathBuf,
    names: Names,
    proxies: Mutex<HashMap<String, PortProxy>>,
}

impl LinuxNetworks {
    /// Builds in the network namespace `host_ns` (the caller's when `None`) with the plugin's `config`, naming what
    /// it makes with `names` (the agent's scope). Must be called on a tokio runtime, which runs the netlink
    /// connection.
    pub fn new(
        config: NetworkPluginConfig,
        host_ns: Option<File>,
        names: Names,
    ) -> Result<LinuxNetworks, NetworkError> {
        let host_ns = match host_ns {
            Some(ns) => ns,
            None => netns::current()
                .map_err(|source| NetworkError::Os { doing: "opening the node's network namespace".into(), source })?,
        };
        let host = Netlink::connect(Some(&host_ns))?;
        Ok(LinuxNetworks {
            host_ns: Arc::new(host_ns),
            host,
            netns_dir: config.netns_dir.clone().unwrap_or_else(|| PathBuf::from(netns::NETNS_DIR)),
            run_dir: config.run_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_RUN_DIR)),
            config,
            names,
            proxies: Mutex::new(HashMap::new()),
        })
    }

    /// The node's network namespace.
    pub fn host_namespace(&self) -> &File {
        &self.host_ns
    }

    /// The plugin configuration.
    pub fn config(&self) -> &NetworkPluginConfig {
        &self.config
    }

    /// The names of what it makes.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The directory instance namespaces are named in.
    pub fn netns_dir(&self) -> &std::path::Path {
        &self.netns_dir
    }

    /// The directory `dnsmasq` state is kept in.
    pub fn run_dir(&self) -> &std::path::Path {
        &self.run_dir
    }

    /// The node's netlink connection.
    pub fn host(&self) -> &Netlink {
        &self.host
    }

    /// The data-plane interface: the configured one, else the interface of the default route.
    async fn dataplane(&self) -> Result<LinkView, NetworkError> {
        if let Some(name) = &self.config.dataplane_interface {
            return self.host.require_link(name, "finding the data-plane interface").await;
        }
        let no_default = || NetworkError::Config {
            network: "*".into(),
            message: "no dataplaneInterface configured and no default route to take it from".into(),
        };
        let index = self.host.default_route_interface().await?.ok_or_else(no_default)?;
        self.host.link_by_index(index).await?.ok_or_else(no_default)
    }

    /// The interface VLAN sub-interfaces are made on.
    async fn vlan_parent(&self) -> Result<LinkView, NetworkError> {
        match &self.config.vlan_interface {
            Some(name) => self.host.require_link(name, "finding the VLAN interface").await,
            None => self.dataplane().await,
        }
    }

    /// This node's VxLAN endpoint: the first IPv4 address of the data-plane interface.
    pub async fn vtep(&self) -> Result<Option<Ipv4Addr>, NetworkError> {
        let dataplane = self.dataplane().await?;
        Ok(self.host.addresses(dataplane.index).await?.first().map(|(ip, _)| *ip))
    }

    /// Brings `plan` up: bridge, segment device enslaved to it, MTU, gateway address and DHCP. Idempotent.
    pub async fn ensure(&self, plan: &NetworkPlan) -> Result<NodeNetwork, NetworkError> {
        let bridge_name = self.names.bridge(&plan.name);
        let device_name = self.names.segment_device(&plan.name);
        let (lower, mtu, vtep) = match plan.segment {
            Segment::Vxlan { .. } => {
                let dataplane = self.dataplane().await?;
                let vtep = self.host.addresses(dataplane.index).await?.first().map(|(ip, _)| *ip);
                let mtu = dataplane.mtu.saturating_sub(VXLAN_OVERHEAD);
                (Some(dataplane), mtu, vtep)
            }
            Segment::Vlan { .. } => {
                let parent = self.vlan_parent().await?;
                let mtu = parent.mtu;
                (Some(parent), mtu, None)
            }
            Segment::Bridge => (None, LOCAL_MTU, None),
        };

        let bridge = self.ensure_bridge(&bridge_name, mtu).await?;
        let device = match (&plan.segment, &lower) {
            (Segment::Vxlan { vni, group }, Some(lower)) => {
                Some(self.ensure_vxlan(&device_name, *vni, *group, lower, vtep, mtu).await?)
            }
            (Segment::Vlan { id }, Some(lower)) => Some(self.ensure_vlan(&device_name, *id, lower, mtu).await?),
            _ => {
                if let Some(stale) = self.host.link(&device_name).await? {
                    self.host.delete_link(&stale).await?;
                }
                None
            }
        };
        if let Some(device) = &device {
            self.host.set_mtu(device, mtu).await?;
            self.host.set_controller(device, &bridge).await?;
            self.host.set_up(device).await?;
        }
        let gateway: Vec<(Ipv4Addr, u8)> = plan.gateway.iter().map(|g| (g.addr(), g.prefix_len())).collect();
        self.host.set_addresses(&bridge, &gateway).await?;
        self.host.set_up(&bridge).await?;

        let dhcp = match plan.gateway {
            Some(gateway) if plan.dhcp => {
                let (run_dir, host_ns, bridge) = (self.run_dir.clone(), self.host_ns.clone(), bridge_name.clone());
                blocking(move || dhcp::ensure(&run_dir, &host_ns, &bridge, gateway)).await?;
                true
            }
            _ => {
                let (run_dir, bridge) = (self.run_dir.clone(), bridge_name.clone());
                blocking(move || dhcp::stop(&run_dir, &bridge)).await?;
                false
            }
        };
        Ok(NodeNetwork {
            network: plan.name.clone(),
            bridge: bridge_name,
            device: device.map(|d| d.name),
            segment: plan.segment,
            mtu,
            vtep,
            gateway: plan.gateway,
            dhcp,
        })
    }

    async fn ensure_bridge(&self, name: &str, mtu: u32) -> Result<LinkView, NetworkError> {
        if let Some(existing) = self.host.link(name).await? {
            if existing.kind == Some(InfoKind::Bridge) {
                self.host.set_mtu(&existing, mtu).await?;
                return Ok(existing);
            }
            self.host.delete_link(&existing).await?;
        }
        let msg = LinkBridge::new(name).mtu(mtu).build();
        self.host.add_link(msg, &format!("creating bridge {name}")).await?;
        self.host.require_link(name, &format!("creating bridge {name}")).await
    }

    async fn ensure_vxlan(
        &self,
        name: &str,
        vni: u32,
        group: Option<Ipv4Addr>,
        lower: &LinkView,
        local: Option<Ipv4Addr>,
        mtu: u32,
    ) -> Result<LinkView, NetworkError> {
        if let Some(existing) = self.host.link(name).await? {
            let same = existing.kind == Some(InfoKind::Vxlan)
                && existing.vni == Some(vni)
                && existing.group == group
                && existing.lower == Some(lower.index);
            if same {
                return Ok(existing);
            }
            self.host.delete_link(&existing).await?;
        }
        let mut msg = LinkVxlan::new(name, vni).dev(lower.index).port(VXLAN_PORT).mtu(mtu);
        if let Some(local) = local {
            msg = msg.local(local);
        }
        if let Some(group) = group {
            msg = msg.group(group);
        }
        let doing = format!("creating vxlan {vni} on {}", lower.name);
        self.host.add_link(msg.build(), &doing).await?;
        self.host.require_link(name, &doing).await
    }

    async fn ensure_vlan(&self, name: &str, id: u16, lower: &LinkView, mtu: u32) -> Result<LinkView, NetworkError> {
        if let Some(existing) = self.host.link(name).await? {
            if existing.kind == Some(InfoKind::Vlan)
                && existing.vlan_id == Some(id)
                && existing.lower == Some(lower.index)
            {
                return Ok(existing);
            }
            self.host.delete_link(&existing).await?;
        }
        let doing = format!("creating vlan {id} on {}", lower.name);
        self.host.add_link(LinkVlan::new(name, lower.index, id).mtu(mtu).build(), &doing).await?;
        self.host.require_link(name, &doing).await
    }

    /// Makes the unicast VxLAN flooding entries of `net` exactly `peers` (the other nodes' VTEPs), and drops the
    /// entries the kernel learned towards nodes no longer in `peers`.
    pub async fn set_flood_destinations(&self, net: &NetworkName, peers: &[Ipv4Addr]) -> Result<(), NetworkError> {
        let device = self
            .host
            .link(&self.names.segment_device(net))
            .await?
            .ok_or_else(|| NetworkError::NotUp(net.to_string()))?;
        let entries = self.host.remote_entries(&device).await?;
        let wanted = |dst: &IpAddr| matches!(dst, IpAddr::V4(v4) if peers.contains(v4));
        // Entries to nodes that left go, the flooding ones and those the kernel learned behind them.
        for (mac, dst) in entries.iter().filter(|(_, dst)| !wanted(dst)) {
            self.host.remove_remote_entry(&device, *mac, *dst).await?;
        }
        for peer in peers.iter().filter(|p| !entries.contains(&([0; 6], IpAddr::V4(**p)))) {
            self.host.add_flood_destination(&device, IpAddr::V4(*peer)).await?;
        }
        Ok(())
    }

    /// Writes the DHCP reservations (MAC, address) of `net`, served where this node runs its DHCP.
    pub fn set_dhcp_hosts(&self, net: &NetworkName, hosts: &[(String, Ipv4Addr)]) -> Result<(), NetworkError> {
        dhcp::write_hosts(&self.run_dir, &self.names.bridge(net), hosts)
    }

    /// Removes `net` from the node: DHCP, segment device (with its forwarding entries), bridge. Idempotent.
    pub async fn teardown(&self, net: &NetworkName) -> Result<(), NetworkError> {
        let bridge = self.names.bridge(net);
        let (run_dir, dhcp_bridge) = (self.run_dir.clone(), bridge.clone());
        blocking(move || dhcp::stop(&run_dir, &dhcp_bridge).and_then(|_| dhcp::remove_state(&run_dir, &dhcp_bridge)))
            .await?;
        for name in [self.names.segment_device(net), bridge] {
            if let Some(link) = self.host.link(&name).await? {
                self.host.delete_link(&link).await?;
            }
        }
        Ok(())
    }

    /// Puts `instance` in its namespace with one interface per `nics` entry, and exposes `ports`. Idempotent.
    pub async fn attach(
        &self,
        instance: &InstanceId,
        nics: &[NicPlan],
        ports: &[PortMapping],
    ) -> Result<InstanceNetworking, NetworkError> {
        let ns_name = self.names.instance_netns(instance);
        self.share_netns_dir()?;
        let (ns, _) = netns::create_named(&self.netns_dir, &ns_name)
            .map_err(|source| NetworkError::Os { doing: format!("creating network namespace {ns_name}"), source })?;
        let inner = Netlink::connect(Some(&ns))?;
        let lo = inner.require_link("lo", "bringing loopback up").await?;
        inner.set_up(&lo).await?;

        let mut interfaces = Vec::with_capacity(nics.len());
        let mut default_route = false;
        for (index, nic) in nics.iter().enumerate() {
            let bridge = self
                .host
                .link(&self.names.bridge(&nic.network))
                .await?
                .ok_or_else(|| NetworkError::NotUp(nic.network.to_string()))?;
            let (host_end, inside) = self.ensure_veth(instance, index, &ns, &inner, nic, bridge.mtu).await?;
            self.host.set_mtu(&host_end, bridge.mtu).await?;
            self.host.set_controller(&host_end, &bridge).await?;
            self.host.set_up(&host_end).await?;
            inner.set_mtu(&inside, bridge.mtu).await?;
            let addresses: Vec<(Ipv4Addr, u8)> = nic.address.iter().map(|a| (a.addr(), a.prefix_len())).collect();
            inner.set_addresses(&inside, &addresses).await?;
            inner.set_up(&inside).await?;
            if let (Some(gateway), false) = (nic.gateway, default_route) {
                inner.set_default_route(gateway).await?;
                default_route = true;
            }
            interfaces.push(InterfaceState {
                network: nic.network.clone(),
                interface: inside.name.clone(),
                host_interface: host_end.name.clone(),
                address: nic.address,
                mac: names::format_mac(&nic.mac),
            });
        }

        let proxy = {
            let mut proxies = self.proxies.lock().unwrap_or_else(|e| e.into_inner());
            proxies.remove(&ns_name)
        };
        let proxy = match proxy {
            Some(p) if p.exposes(ports) => p,
            other => {
                drop(other);
                PortProxy::start(&self.host_ns, &ns, ports).await?
            }
        };
        self.proxies.lock().unwrap_or_else(|e| e.into_inner()).insert(ns_name.clone(), proxy);
        Ok(InstanceNetworking { netns: netns::path(&self.netns_dir, &ns_name), interfaces })
    }

    /// The veth pair of an instance's `index`-th interface: reused when both ends exist with the right MAC, else made
    /// anew with the instance end `eth<index>` created inside the namespace with its MAC.
    async fn ensure_veth(
        &self,
        instance: &InstanceId,
        index: usize,
        ns: &File,
        inner: &Netlink,
        nic: &NicPlan,
        mtu: u32,
    ) -> Result<(LinkView, LinkView), NetworkError> {
        let host_name = self.names.host_veth(instance, index);
        let inside_name = names::instance_interface(index);
        let host_end = self.host.link(&host_name).await?;
        let inside = inner.link(&inside_name).await?;
        if let (Some(host_end), Some(inside)) = (&host_end, &inside) {
            if inside.mac == nic.mac {
                return Ok((host_end.clone(), inside.clone()));
            }
        }
        if let Some(stale) = host_end {
            self.host.delete_link(&stale).await?;
        }
        if let Some(stale) = inside {
            inner.delete_link(&stale).await?;
        }
        // The instance end is made directly inside the namespace, named and addressed: moving a device between
        // namespaces afterwards costs the kernel an RCU grace period.
        let doing = format!("creating veth {host_name} for {instance}");
        let peer = LinkUnspec::new_with_name(&inside_name)
            .address(nic.mac.to_vec())
            .mtu(mtu)
            .setns_by_fd(ns.as_raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(host_name.clone())
            .mtu(mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.host.add_link(msg, &doing).await?;
        let host_end = self.host.require_link(&host_name, &doing).await?;
        let inside = inner.require_link(&inside_name, &doing).await?;
        Ok((host_end, inside))
    }

    /// Exposes a VM's `ports` on the node, forwarded from the node's namespace to the guest's address `guest`
    /// (replacing what the instance exposed before). Idempotent.
    pub async fn expose(
        &self,
        instance: &InstanceId,
        guest: Ipv4Addr,
        ports: &[PortMapping],
    ) -> Result<(), NetworkError> {
        let key = self.names.instance_netns(instance);
        let proxy = self.proxies.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        let proxy = match proxy {
            Some(p) if p.exposes(ports) => p,
            other => {
                drop(other);
                PortProxy::start_to(&self.host_ns, &self.host_ns, guest, ports).await?
            }
        };
        self.proxies.lock().unwrap_or_else(|e| e.into_inner()).insert(key, proxy);
        Ok(())
    }

    /// Removes an instance's exposed ports, interfaces and namespace. Idempotent.
    pub async fn detach(&self, instance: &InstanceId) -> Result<(), NetworkError> {
        let ns_name = self.names.instance_netns(instance);
        let proxy = self.proxies.lock().unwrap_or_else(|e| e.into_inner()).remove(&ns_name);
        drop(proxy);
        let opened = netns::open_named(&self.netns_dir, &ns_name)
            .map_err(|source| NetworkError::Os { doing: format!("opening network namespace {ns_name}"), source })?;
        if let Some(ns) = opened {
            let inner = Netlink::connect(Some(&ns))?;
            for link in inner.links().await?.iter().filter(|l| l.kind == Some(InfoKind::Veth)) {
                inner.delete_link(link).await?;
            }
        }
        let prefix = self.names.host_veth_prefix(instance);
        let ours = |name: &str| name.starts_with(&prefix);
        for link in self.host.links().await?.iter().filter(|l| ours(&l.name)) {
            self.host.delete_link(link).await?;
        }
        netns::remove_named(&self.netns_dir, &ns_name)
            .map_err(|source| NetworkError::Os { doing: format!("removing network namespace {ns_name}"), source })?;
        Ok(())
    }

    /// The addresses with prefix of a network's interfaces of an instance, as seen by the kernel (for tests and
    /// reports).
    pub async fn instance_addresses(&self, instance: &InstanceId) -> Result<Vec<Ipv4Net>, NetworkError> {
        let ns_name = self.names.instance_netns(instance);
        let Some(ns) = netns::open_named(&self.netns_dir, &ns_name)
            .map_err(|source| NetworkError::Os { doing: format!("opening network namespace {ns_name}"), source })?
        else {
            return Ok(Vec::new());
        };
        let inner = Netlink::connect(Some(&ns))?;
        let mut out = Vec::new();
        for link in inner.links().await?.iter().filter(|l| l.name != "lo") {
            for (ip, prefix) in inner.addresses(link.index).await? {
                out.extend(Ipv4Net::new(ip, prefix).ok());
            }
        }
        Ok(out)
    }
}
