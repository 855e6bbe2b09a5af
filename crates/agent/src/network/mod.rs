//! Virtual networks on a node: the [`NetworkManager`] the agent's lifecycle driver calls to bring a network up on
//! the node, attach an instance to it, detach the instance and tear the network down, and its Linux implementation.
//!
//! # What exists on a node
//!
//! For every network used on the node, a Linux bridge `fos-<hash>` and, enslaved to it, the network's segment
//! device `fosx-<hash>`:
//! - `vxlan`: a VxLAN device (UDP port 4789) on the data-plane interface (plugin configuration
//!   `dataplaneInterface`, default the interface of the default route). With `multicastAddress` it joins that group;
//!   otherwise it is unicast, with one all-zero-MAC forwarding entry per other node that has the network (their
//!   VTEP addresses are read from the store: [`NetworkManager::sync`]). Its MTU is the underlay's minus 50, and the
//!   bridge and the instances' interfaces use the same MTU, so nothing fragments.
//! - `vlan`: an 802.1Q sub-interface of `vlanInterface` with the manifest's `vlanId` or one allocated from
//!   `vlanRange`.
//! - `bridge`: no segment device (the network stays on the node).
//!
//! The VNI / VLAN id of a network, every instance address and the gateway are allocated through the store with
//! compare-and-swap ([`alloc`]), so two networks never share an id and two instances never share an address,
//! whichever nodes allocate them. One node wins the gateway address and puts it on its bridge (another takes over
//! when it leaves); when the network asks for `dhcp`, that node runs `dnsmasq` on the bridge, handing out the
//! store's allocations by MAC ([`dhcp`]).
//!
//! Each node records its state of a network under `actual/nodes/<node>/networks/<name>.<tenant>` ([`NodeNetwork`]:
//! bridge, device, segment id, MTU, VTEP, gateway; the `NodeNetworks` kind of `fos_store::records`, which also has
//! the allocation records' kinds), bound to the agent's lease
//! ([`StoreNetworkManager::with_lease`]); [`StoreNetworkManager::follow`] watches those records and the address
//! allocations and re-syncs the networks they touch, so forwarding entries follow nodes coming and going.
//!
//! # Instances
//!
//! A native instance attached to networks lives in its own named network namespace `fos-<hash>` (under
//! `/run/netns`), with one veth pair per network: the node end `fosv<hash>-<n>` on the bridge, the instance end
//! `eth<n>` with the instance's address and MAC, loopback up, and a default route via the gateway when the network
//! has one. The runtime starts the process inside it with [`netns::enter_on_spawn`] on
//! [`InstanceNetworking::netns`]. A VM gets an address reservation ([`NetworkManager::reserve`]) and the bridge to
//! put its tap on.
//!
//! # Exposed ports
//!
//! `entity.ports` are exposed by a small proxy in the agent ([`ports`]): it listens on the node (all addresses,
//! `hostPort`) and, for every TCP connection or UDP peer, opens the upstream socket *inside the instance's
//! namespace* towards `127.0.0.1:<port>`. This needs no address on the node side of the bridge, no iptables rules,
//! and stops with the instance; the instance sees connections coming from its own loopback.
//!
//! # Use from the lifecycle driver
//!
//! ```text
//! manager = StoreNetworkManager::new(store, keys, node, LinuxNetworks::new(plugin_config, None)?).with_lease(lease)
//! spawn(manager.follow())                                   // peers, DHCP reservations, gateway take-over
//! for each network an instance on the node uses:  manager.ensure(&net, &spec)
//! native instance:  net = manager.attach(&id, &nics, &entity.ports)
//!                   netns::enter_on_spawn(&mut command, &net.netns); spawn the process
//! VM:               lease = manager.reserve(&id, n, &nic)   // tap on lease.bridge with lease.mac
//! instance cleaned: manager.detach(&id)
//! network no longer used on the node: manager.teardown(&net)
//! ```
//!
//! `vlan` networks need the kernel's 802.1Q support (`8021q`); without it bringing one up fails with
//! `creating vlan <id> on <interface>: Operation not supported`.
//!
//! # Restarts and cleaning
//!
//! Every operation is idempotent: names are stable functions of the network or instance ([`names`]), so a
//! restarted agent finds the devices, namespaces, forwarding entries and `dnsmasq` it made and changes only what
//! differs. Detach and teardown remove everything they made. Kernel errors say what was being done.

pub mod alloc;
pub mod cleanup;
pub mod dhcp;
mod linux;
mod manager;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod ports;
mod types;

pub use cleanup::Swept;
pub use linux::LinuxNetworks;
pub use manager::StoreNetworkManager;
pub use types::{
    InstanceNetworking, InterfaceState, Lease, NetworkError, NetworkName, NetworkPlan, NetworkPluginConfig, NicPlan,
    NicRequest, NodeNetwork, Segment,
};

use async_trait::async_trait;
use fos_api::manifest::{NetworkSpec, PortMapping};
use fos_api::record::InstanceId;

/// What the agent's lifecycle driver calls to give instances their networks. Every method is idempotent.
#[async_trait]
pub trait NetworkManager: Send + Sync {
    /// Brings network `net` with `spec` up on this node (bridge, VxLAN/VLAN device, gateway, DHCP), allocating its
    /// segment id when the spec leaves it open, and records the node's actual state of the network.
    async fn ensure(&self, net: &NetworkName, spec: &NetworkSpec) -> Result<NodeNetwork, NetworkError>;

    /// Re-reads the store for `net` and applies what changed elsewhere: the unicast VxLAN forwarding entries (one
    /// per other node with the network), the DHCP reservations, and the gateway when the node holding it left.
    /// Call it when nodes or addresses come and go ([`StoreNetworkManager::follow`] does).
    async fn sync(&self, net: &NetworkName) -> Result<(), NetworkError>;

    /// Attaches a native instance to `nics` (networks already [`NetworkManager::ensure`]d): its namespace, one
    /// interface per network with an address (fixed or allocated) and MAC, its default route, and `ports` exposed on
    /// the node.
    async fn attach(
        &self,
        instance: &InstanceId,
        nics: &[NicRequest],
        ports: &[PortMapping],
    ) -> Result<InstanceNetworking, NetworkError>;

    /// Reserves an address and MAC for a VM's interface on `nic.network` (served by DHCP when the network has it).
    async fn reserve(&self, instance: &InstanceId, index: usize, nic: &NicRequest) -> Result<Lease, NetworkError>;

    /// Attaches a VM to `nics` (networks already [`NetworkManager::ensure`]d): one [`NetworkManager::reserve`]d lease
    /// per interface (the VM runtime puts a tap with that MAC on the lease's bridge) and `ports` exposed on the node,
    /// forwarded to the guest's first address.
    async fn attach_vm(
        &self,
        instance: &InstanceId,
        nics: &[NicRequest],
        ports: &[PortMapping],
    ) -> Result<Vec<Lease>, NetworkError>;

    /// Detaches an instance from every network: stops its exposed ports, removes its interfaces and namespace, and
    /// releases its addresses.
    async fn detach(&self, instance: &InstanceId) -> Result<(), NetworkError>;

    /// Removes network `net` from this node (devices, forwarding entries, gateway, DHCP) and its actual state; the
    /// last node to leave releases the segment id.
    async fn teardown(&self, net: &NetworkName) -> Result<(), NetworkError>;
}
