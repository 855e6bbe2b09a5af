//! The driver's use of the network manager: an instance whose entity has `networks` gets them brought up on the node
//! and is attached (namespace, interfaces, addresses, exposed ports) before its runtime configures it; at clean it
//! is detached, and a network no instance of the node uses any more is torn down.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use fos_api::manifest::EntityKind;
use fos_api::record::{DesiredInstance, InstanceId};
use tokio::sync::Mutex;

use crate::network::{names, NetworkError, NetworkManager, NetworkName, NicRequest};

/// The node's network manager and which instance uses which network. Network operations are serialised, so a
/// network is never torn down while another instance is being attached to it.
pub struct Networking {
    manager: Arc<dyn NetworkManager>,
    attached: Mutex<HashMap<InstanceId, Vec<NetworkName>>>,
}

impl Networking {
    /// Wraps the node's network manager.
    pub fn new(manager: Arc<dyn NetworkManager>) -> Self {
        Networking { manager, attached: Mutex::new(HashMap::new()) }
    }

    /// Brings up the networks of `desired` and attaches the instance to them; returns its address on each network
    /// (by network name; empty for networks without addresses). Idempotent: a restarted agent calls it again for
    /// the instances it adopts.
    pub async fn attach(&self, desired: &DesiredInstance) -> Result<BTreeMap<String, String>, NetworkError> {
        let id = &desired.id;
        let mut attached = self.attached.lock().await;
        let mut nics = Vec::with_capacity(desired.entity.networks.len());
        for a in &desired.entity.networks {
            let net = NetworkName::new(&id.tenant, &a.network);
            let spec = desired.networks.get(&a.network).ok_or_else(|| NetworkError::Config {
                network: net.to_string(),
                message: "the desired record carries no spec for this network".into(),
            })?;
            self.manager.ensure(&net, spec).await?;
            // A fixed address, else the one the controller allocated at placement, else one allocated now.
            let ip = match a.ip.as_ref().or_else(|| desired.addresses.get(&a.network)) {
                Some(text) => Some(text.parse::<Ipv4Addr>().map_err(|e| NetworkError::Config {
                    network: net.to_string(),
                    message: format!("address {text}: {e}"),
                })?),
                None => None,
            };
            let mac = match &a.mac {
                Some(text) => Some(names::parse_mac(text).ok_or_else(|| NetworkError::Config {
                    network: net.to_string(),
                    message: format!("MAC {text} is not six hex bytes"),
                })?),
                None => None,
            };
            nics.push(NicRequest { network: net, ip, mac });
        }
        attached.insert(id.clone(), nics.iter().map(|n| n.network.clone()).collect());
        if desired.entity.kind == EntityKind::Vm {
            // A VM's interfaces are taps its runtime puts on the bridges, with the reserved MACs and addresses.
            let leases = self.manager.attach_vm(id, &nics, &desired.entity.ports).await?;
            return Ok(desired
                .entity
                .networks
                .iter()
                .zip(leases)
                .filter_map(|(a, lease)| lease.address.map(|ip| (a.network.clone(), ip.addr().to_string())))
                .collect());
        }
        let built = self.manager.attach(id, &nics, &desired.entity.ports).await?;
        Ok(desired
            .entity
            .networks
            .iter()
            .zip(built.interfaces)
            .filter_map(|(a, nic)| nic.address.map(|ip| (a.network.clone(), ip.addr().to_string())))
            .collect())
    }

    /// Records that an instance a runtime recovered after a restart holds the networks of its desired record
    /// (before any instance task runs, so that no teardown of another instance removes a network it still uses).
    pub async fn adopt(&self, desired: &DesiredInstance) {
        if desired.entity.networks.is_empty() {
            return;
        }
        let nets = desired.entity.networks.iter().map(|a| NetworkName::new(&desired.id.tenant, &a.network)).collect();
        self.attached.lock().await.insert(desired.id.clone(), nets);
    }

    /// Whether the instance is attached to networks by this agent.
    pub async fn is_attached(&self, id: &InstanceId) -> bool {
        self.attached.lock().await.contains_key(id)
    }

    /// Detaches the instance (namespace, interfaces, ports, addresses) and tears down the networks no other
    /// instance of the node uses. `networks` are those its context names (the agent may have lost track of the
    /// attachment, e.g. across a restart): both are released. Nothing happens for an instance without networks.
    pub async fn release(&self, id: &InstanceId, networks: &[NetworkName]) -> Result<(), NetworkError> {
        let mut attached = self.attached.lock().await;
        let mut nets = attached.get(id).cloned().unwrap_or_default();
        for net in networks {
            if !nets.contains(net) {
                nets.push(net.clone());
            }
        }
        if nets.is_empty() {
            return Ok(());
        }
        self.manager.detach(id).await?;
        attached.remove(id);
        for net in nets {
            if !attached.values().any(|used| used.contains(&net)) {
                self.manager.teardown(&net).await?;
            }
        }
        Ok(())
    }
}
