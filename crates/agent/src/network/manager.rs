//! [`StoreNetworkManager`]: the [`NetworkManager`] of a Linux node. It resolves what the store decides (segment ids,
//! addresses, who holds the gateway, which other nodes have a network) and has [`LinuxNetworks`] build it, then
//! records the node's actual state of each network under `actual/nodes/<node>/networks/<net>`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fos_api::manifest::{NetworkSpec, PortMapping};
use fos_api::record::InstanceId;
use fos_api::Keys;
use fos_store::records::{Addresses, NodeNetworks};
use fos_store::{LeaseId, Records, Store};
use futures::StreamExt;
use ipnet::Ipv4Net;

use super::alloc::{self, AddressHolder};
use super::{names, InstanceNetworking, Lease, LinuxNetworks, NetworkError, NetworkManager, NetworkName};
use super::{NetworkPlan, NicPlan, NicRequest, NodeNetwork, Segment};

/// What the manager knows of a network brought up on this node.
#[derive(Debug, Clone)]
struct UpNetwork {
    spec: NetworkSpec,
    segment: Segment,
    subnet: Option<Ipv4Net>,
    gateway: Option<Ipv4Addr>,
    gateway_here: bool,
    dhcp_here: bool,
}

/// The network manager of one node: the store's decisions built with netlink.
pub struct StoreNetworkManager {
    records: Records,
    node: String,
    linux: LinuxNetworks,
    lease: Option<LeaseId>,
    up: Mutex<HashMap<NetworkName, UpNetwork>>,
}

fn config_error(net: &NetworkName, message: String) -> NetworkError {
    NetworkError::Config { network: net.to_string(), message }
}

impl StoreNetworkManager {
    /// The manager of node `node`, building with `linux`, allocating in `store` under `keys`.
    pub fn new(store: Arc<dyn Store>, keys: Keys, node: &str, linux: LinuxNetworks) -> Self {
        let records = Records::new(store, keys);
        StoreNetworkManager { records, node: node.to_string(), linux, lease: None, up: Mutex::new(HashMap::new()) }
    }

    /// Binds the node's actual network records to `lease` (the agent's heartbeat lease), so they vanish with the
    /// node and the other nodes drop their forwarding entries to it.
    pub fn with_lease(mut self, lease: LeaseId) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Keeps the networks up on this node in step with the store until the watch ends or fails: whenever a node
    /// brings one of them up or tears it down (or its record expires with its lease), or an address allocation of
    /// one of them changes, that network is [`NetworkManager::sync`]ed. The agent runs it as a task; on an error
    /// (e.g. [`fos_store::StoreError::Compacted`]) it calls it again, which starts with a full sync.
    pub async fn follow(&self) -> Result<(), NetworkError> {
        let (store, keys) = (self.records.store(), self.records.keys());
        let from = store.revision().await? + 1;
        let mut nodes = store.watch(&keys.actual_nodes_prefix(), from).await?;
        let mut ipam = store.watch(&keys.ipam_prefix(), from).await?;
        let up: Vec<NetworkName> = self.up.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        for net in up {
            self.sync_logged(&net).await;
        }
        loop {
            let event = tokio::select! {
                e = nodes.next() => e,
                e = ipam.next() => e,
            };
            let Some(event) = event else {
                return Ok(());
            };
            let key = event?.kv.key;
            // Another node's state of a network, or an address allocation, of a network up here.
            let net = match self.records.parse::<NodeNetworks>(&key) {
                Some((node, net)) => (node != self.node).then_some(net),
                None => self.records.parse::<Addresses>(&key).map(|(net, _)| net),
            };
            let touched = net.filter(|net| self.up.lock().unwrap_or_else(|e| e.into_inner()).contains_key(net));
            if let Some(net) = touched {
                self.sync_logged(&net).await;
            }
        }
    }

    async fn sync_logged(&self, net: &NetworkName) {
        if let Err(e) = self.sync(net).await {
            tracing::warn!(network = %net, error = %e, "syncing network");
        }
    }

    /// The kernel side.
    pub fn linux(&self) -> &LinuxNetworks {
        &self.linux
    }

    /// The store's records it reads and writes.
    pub fn records(&self) -> &Records {
        &self.records
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The networks brought up on this node by this manager.
    pub fn up_networks(&self) -> Vec<NetworkName> {
        self.up.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    fn up_network(&self, net: &NetworkName) -> Result<UpNetwork, NetworkError> {
        let up = self.up.lock().unwrap_or_else(|e| e.into_inner());
        up.get(net).cloned().ok_or_else(|| NetworkError::NotUp(net.to_string()))
    }

    /// Every node's actual state of `net`, by node.
    pub async fn node_states(&self, net: &NetworkName) -> Result<Vec<(String, NodeNetwork)>, NetworkError> {
        let (listed, _) = self.records.list::<NodeNetworks>().await?;
        Ok(listed.into_iter().filter(|((_, n), _)| n == net).map(|((node, _), state)| (node, state.value)).collect())
    }

    async fn nic_address(
        &self,
        instance: &InstanceId,
        index: usize,
        nic: &NicRequest,
        up: &UpNetwork,
        mac: [u8; 6],
    ) -> Result<Option<Ipv4Net>, NetworkError> {
        let Some(subnet) = up.subnet else {
            return match nic.ip {
                Some(ip) => {
                    Err(config_error(&nic.network, format!("address {ip} given but the network has no ipRange")))
                }
                None => Ok(None),
            };
        };
        let holder = AddressHolder {
            node: self.node.clone(),
            instance: Some(instance.to_string()),
            nic: index,
            mac: Some(names::format_mac(&mac)),
            gateway: false,
            placed: false,
        };
        let ip = alloc::address(&self.records, &nic.network, subnet, nic.ip, &holder).await?;
        Ok(Some(Ipv4Net::new(ip, subnet.prefix_len()).unwrap_or(subnet)))
    }
}

#[async_trait]
impl NetworkManager for StoreNetworkManager {
    async fn ensure(&self, net: &NetworkName, spec: &NetworkSpec) -> Result<NodeNetwork, NetworkError> {
        let records = &self.records;
        let segment = alloc::segment(records, net, spec, self.linux.config().vlan_range).await?;
        let subnet = match &spec.ip_range {
            Some(text) => {
                Some(text.parse::<Ipv4Net>().map_err(|e| config_error(net, format!("ipRange {text}: {e}")))?.trunc())
            }
            None => None,
        };
        let gateway = match (&spec.gateway, subnet) {
            (Some(text), Some(subnet)) => {
                let ip: Ipv4Addr = text.parse().map_err(|e| config_error(net, format!("gateway {text}: {e}")))?;
                if !subnet.contains(&ip) {
                    return Err(config_error(net, format!("gateway {ip} is outside {subnet}")));
                }
                Some(ip)
            }
            (Some(_), None) => return Err(config_error(net, "a gateway needs an ipRange".into())),
            (None, _) => None,
        };
        if spec.dhcp && gateway.is_none() {
            return Err(config_error(net, "dhcp needs a gateway (the DHCP server's address)".into()));
        }
        let gateway_here = match (gateway, subnet) {
            (Some(ip), Some(subnet)) => alloc::claim_gateway(records, net, ip, &self.node)
                .await?
                .then(|| Ipv4Net::new(ip, subnet.prefix_len()).unwrap_or(subnet)),
            _ => None,
        };
        let plan = NetworkPlan { name: net.clone(), segment, gateway: gateway_here, dhcp: spec.dhcp };
        let state = self.linux.ensure(&plan).await?;
        records.put::<NodeNetworks>(&(self.node.clone(), net.clone()), &state, self.lease).await?;
        let up = UpNetwork {
            spec: spec.clone(),
            segment,
            subnet,
            gateway,
            gateway_here: gateway_here.is_some(),
            dhcp_here: state.dhcp,
        };
        self.up.lock().unwrap_or_else(|e| e.into_inner()).insert(net.clone(), up);
        self.sync(net).await?;
        Ok(state)
    }

    async fn sync(&self, net: &NetworkName) -> Result<(), NetworkError> {
        let up = self.up_network(net)?;
        if let (Some(gateway), false) = (up.gateway, up.gateway_here) {
            // The node holding the gateway left: the first node to claim it takes it over (and its DHCP).
            if alloc::claim_gateway(&self.records, net, gateway, &self.node).await? {
                self.ensure(net, &up.spec).await?;
                return Ok(());
            }
        }
        if let Segment::Vxlan { group: None, .. } = up.segment {
            let mut peers: Vec<Ipv4Addr> = self
                .node_states(net)
                .await?
                .into_iter()
                .filter(|(node, _)| *node != self.node)
                .filter_map(|(_, state)| state.vtep)
                .collect();
            peers.sort();
            peers.dedup();
            self.linux.set_flood_destinations(net, &peers).await?;
        }
        if up.dhcp_here {
            let hosts: Vec<(String, Ipv4Addr)> = alloc::addresses(&self.records, net)
                .await?
                .into_iter()
                .filter_map(|(ip, holder)| holder.mac.map(|mac| (mac, ip)))
                .collect();
            self.linux.set_dhcp_hosts(net, &hosts)?;
        }
        Ok(())
    }

    async fn attach(
        &self,
        instance: &InstanceId,
        nics: &[NicRequest],
        ports: &[PortMapping],
    ) -> Result<InstanceNetworking, NetworkError> {
        let mut plans = Vec::with_capacity(nics.len());
        for (index, nic) in nics.iter().enumerate() {
            let up = self.up_network(&nic.network)?;
            let mac = nic.mac.unwrap_or_else(|| names::instance_mac(instance, index));
            let address = self.nic_address(instance, index, nic, &up, mac).await?;
            plans.push(NicPlan { network: nic.network.clone(), address, mac, gateway: up.gateway });
        }
        self.linux.attach(instance, &plans, ports).await
    }

    async fn reserve(&self, instance: &InstanceId, index: usize, nic: &NicRequest) -> Result<Lease, NetworkError> {
        let up = self.up_network(&nic.network)?;
        let mac = nic.mac.unwrap_or_else(|| names::instance_mac(instance, index));
        let address = self.nic_address(instance, index, nic, &up, mac).await?;
        if up.dhcp_here {
            self.sync(&nic.network).await?;
        }
        Ok(Lease { bridge: self.linux.names().bridge(&nic.network), address, mac: names::format_mac(&mac) })
    }

    async fn attach_vm(
        &self,
        instance: &InstanceId,
        nics: &[NicRequest],
        ports: &[PortMapping],
    ) -> Result<Vec<Lease>, NetworkError> {
        let mut leases = Vec::with_capacity(nics.len());
        for (index, nic) in nics.iter().enumerate() {
            leases.push(self.reserve(instance, index, nic).await?);
        }
        if !ports.is_empty() {
            let guest = leases.iter().find_map(|l| l.address).ok_or_else(|| NetworkError::Config {
                network: nics.first().map(|n| n.network.to_string()).unwrap_or_default(),
                message: "a VM's ports are forwarded to its address: its first network needs an ipRange".into(),
            })?;
            self.linux.expose(instance, guest.addr(), ports).await?;
        }
        Ok(leases)
    }

    async fn detach(&self, instance: &InstanceId) -> Result<(), NetworkError> {
        self.linux.detach(instance).await?;
        let id = instance.to_string();
        // The addresses the controller allocated at placement stay with the instance (the controller releases them).
        // Only this node's holds: the same instance may run elsewhere now, holding the same address there.
        let ours = |h: &AddressHolder| h.instance.as_deref() == Some(&id) && !h.placed && h.node == self.node;
        alloc::release_where(&self.records, &self.records.keys().ipam_prefix(), ours).await?;
        Ok(())
    }

    async fn teardown(&self, net: &NetworkName) -> Result<(), NetworkError> {
        self.linux.teardown(net).await?;
        self.up.lock().unwrap_or_else(|e| e.into_inner()).remove(net);
        self.records.delete::<NodeNetworks>(&(self.node.clone(), net.clone())).await?;
        let prefix = self.records.keys().ipam_network_prefix(&net.tenant, &net.name);
        let node = self.node.clone();
        alloc::release_where(&self.records, &prefix, |h| h.gateway && h.node == node).await?;
        if self.node_states(net).await?.is_empty() {
            alloc::release_segment(&self.records, net).await?;
        }
        Ok(())
    }
}
