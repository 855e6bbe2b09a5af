//! The heartbeat: the node's status record bound to a lease the agent keeps alive (so a dead node's status vanishes
//! by itself), the info record republished when discovery changes, and round-trip times to the other nodes'
//! probes published in the status.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fos_api::node::{Node, NodeStatus};
use fos_store::records::{NodeInfos, NodeStatuses};
use fos_store::{LeaseId, Records, StoreError};
use tokio::sync::watch;

use crate::rtt::RttProbe;

/// Settings of the heartbeat.
#[derive(Clone)]
pub struct Heartbeat {
    /// The store's records.
    pub records: Records,
    /// This node's name.
    pub node: String,
    /// Lease TTL (refreshed every third of it).
    pub ttl: Duration,
    /// This agent's probe.
    pub probe: Arc<RttProbe>,
    /// The probe address other agents use (`host:port`).
    pub probe_address: String,
    /// How often round-trip times are measured.
    pub rtt_interval: Duration,
    /// Where round-trip times come from.
    pub rtt: RttSource,
}

/// Where a node's round-trip times to other nodes come from.
#[derive(Debug, Clone, Default)]
pub enum RttSource {
    /// Measured with the other nodes' probes.
    #[default]
    Probe,
    /// Given in milliseconds by node name (a simulated node), published as they are.
    Fixed(BTreeMap<String, f64>),
}

/// The heartbeat's live state: its lease and the status it publishes.
pub struct Beat {
    lease: LeaseId,
    status: NodeStatus,
}

impl Heartbeat {
    /// Grants the lease and publishes the info and status records.
    pub async fn start(&self, info: &Node) -> Result<Beat, StoreError> {
        self.put_info(info).await?;
        let status = NodeStatus {
            ready: true,
            unschedulable: false,
            address: None,
            probe_address: Some(self.probe_address.clone()),
            heartbeat: Some(Utc::now()),
            rtt_ms: BTreeMap::new(),
        };
        let mut beat = Beat { lease: self.records.store().grant(self.ttl).await?, status };
        self.put_status(&mut beat).await?;
        Ok(beat)
    }

    async fn put_info(&self, info: &Node) -> Result<(), StoreError> {
        self.records.put::<NodeInfos>(&self.node, info, None).await.map(|_| ())
    }

    async fn put_status(&self, beat: &mut Beat) -> Result<(), StoreError> {
        beat.status.heartbeat = Some(Utc::now());
        self.records.put::<NodeStatuses>(&self.node, &beat.status, Some(beat.lease)).await.map(|_| ())
    }

    /// Keeps the lease alive, refreshes the status, measures round trips and republishes changed info until
    /// `shutdown`; then revokes the lease (the status record disappears at once).
    pub async fn run(self, mut beat: Beat, mut info: watch::Receiver<Node>, mut shutdown: watch::Receiver<bool>) {
        let mut keep = tokio::time::interval(self.ttl / 3);
        let mut rtt = tokio::time::interval(self.rtt_interval);
        keep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rtt.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keep.tick().await;
        let mut info_open = true;
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = keep.tick() => self.keep_alive(&mut beat).await,
                _ = rtt.tick() => {
                    beat.status.rtt_ms = self.measure_peers().await;
                    if let Err(e) = self.put_status(&mut beat).await {
                        tracing::warn!(error = %e, "cannot publish node status");
                    }
                }
                changed = info.changed(), if info_open => {
                    if changed.is_err() {
                        // Nobody rediscovers (a given node description): the info record stays as published.
                        info_open = false;
                        continue;
                    }
                    let node = info.borrow_and_update().clone();
                    if let Err(e) = self.put_info(&node).await {
                        tracing::warn!(error = %e, "cannot publish node info");
                    }
                }
            }
        }
        if let Err(e) = self.records.store().revoke(beat.lease).await {
            tracing::warn!(error = %e, "cannot revoke heartbeat lease");
        }
    }

    async fn keep_alive(&self, beat: &mut Beat) {
        match self.records.store().keep_alive(beat.lease).await {
            Ok(()) => {}
            Err(StoreError::LeaseNotFound(_)) => {
                tracing::warn!("heartbeat lease expired; granting a new one");
                match self.records.store().grant(self.ttl).await {
                    Ok(lease) => beat.lease = lease,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot grant heartbeat lease");
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat keep-alive failed");
                return;
            }
        }
        if let Err(e) = self.put_status(beat).await {
            tracing::warn!(error = %e, "cannot publish node status");
        }
    }

    /// Round-trip times in milliseconds to every other node that publishes a probe address and answers.
    pub async fn measure_peers(&self) -> BTreeMap<String, f64> {
        if let RttSource::Fixed(given) = &self.rtt {
            return given.clone();
        }
        let Ok((statuses, _)) = self.records.list::<NodeStatuses>().await else {
            return BTreeMap::new();
        };
        let peers: Vec<(String, SocketAddr)> = statuses
            .into_iter()
            .filter(|(node, _)| *node != self.node)
            .filter_map(|(node, status)| Some((node, status.value.probe_address?.parse().ok()?)))
            .collect();
        let probes = peers.into_iter().map(|(node, addr)| async move {
            let rtt = self.probe.measure(addr, Duration::from_secs(1)).await;
            rtt.map(|d| (node, d.as_secs_f64() * 1000.0))
        });
        futures::future::join_all(probes).await.into_iter().flatten().collect()
    }
}
