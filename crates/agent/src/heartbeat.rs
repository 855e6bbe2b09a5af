//! The heartbeat: the node's status record (with its API address) bound to a lease the agent keeps alive (so a dead
//! node's status vanishes by itself), the info record republished when discovery changes, and round-trip times to
//! the other nodes' probes published in the status.
//!
//! **Fencing.** When the lease has not been renewed for the fence deadline (derived from `--node-lost-after`, so
//! strictly before the control plane may declare the node lost), the heartbeat asks the other nodes' probes whether
//! they reach the store. If one does, or none answers, this node is the one cut off: it raises the fence and the
//! driver stops every instance not marked `onNodeLoss: keep`. If every peer that answers cannot reach the store
//! either, the store itself is down, nobody can place the instances elsewhere, and they keep running (edge
//! autonomy). The fence drops once a renewal succeeds again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use fos_api::cluster::NodeTiming;
use fos_api::node::{Node, NodeStatus};
use fos_store::records::{NodeInfos, NodeProbes, NodeStatuses};
use fos_store::{LeaseId, Records, StoreError};
use tokio::sync::watch;

use crate::fence_guard::{boot_millis, FenceGuard};
use crate::rtt::RttProbe;

/// Settings of the heartbeat.
#[derive(Clone)]
pub struct Heartbeat {
    /// The store's records.
    pub records: Records,
    /// This node's name.
    pub node: String,
    /// Lease TTL, renewal period and fence deadline.
    pub timing: NodeTiming,
    /// The node's API address other nodes call (`host:port`).
    pub address: Option<String>,
    /// Raised while the node is fenced (its instances must not run).
    pub fence: Arc<watch::Sender<bool>>,
    /// This agent's probe.
    pub probe: Arc<RttProbe>,
    /// The probe address other agents use (`host:port`).
    pub probe_address: String,
    /// How often round-trip times are measured.
    pub rtt_interval: Duration,
    /// Where round-trip times come from.
    pub rtt: RttSource,
    /// The node's fence guard, whose deadline every renewal pushes forward (none on a node without a shared store).
    pub guard: Option<FenceGuard>,
    /// What the node warns its operators of, published in its status.
    pub warnings: Vec<String>,
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
    /// When the last successful renewal was sent.
    renewed: Instant,
    /// The other nodes and their probe addresses, as last listed.
    peers: Vec<(String, SocketAddr)>,
    /// When they were last listed (or tried to be).
    peers_listed: Option<Instant>,
    /// How long the list is kept before it is listed again (see [`Heartbeat::refresh_peers`]).
    peers_age: Duration,
    /// Where the next round-trip measurement starts in `peers` (each measures [`RTT_PEERS_PER_ROUND`]).
    rtt_cursor: usize,
}

/// Peers asked whether they reach the store when the lease goes unrenewed, at most (a random sample: in a large
/// cluster every node asking every other would flood the network just when the store is slow).
pub const FENCE_PEERS: usize = 8;

/// Peers whose round trip one measurement takes, at most: a large cluster is measured in turns (a node probing all
/// others every round is quadratic), each time measured kept until its peer's turn comes again.
pub const RTT_PEERS_PER_ROUND: usize = 64;

impl Heartbeat {
    /// Grants the lease and publishes the info and status records.
    pub async fn start(&self, info: &Node) -> Result<Beat, StoreError> {
        self.put_info(info).await?;
        let status = NodeStatus {
            ready: true,
            unschedulable: false,
            address: self.address.clone(),
            probe_address: Some(self.probe_address.clone()),
            heartbeat: Some(Utc::now()),
            rtt_ms: BTreeMap::new(),
            lost_since: None,
            draining: false,
            warnings: self.warnings.clone(),
        };
        let lease = self.records.store().grant(self.timing.ttl).await?;
        // The first list of peers at a random point before half the fence deadline (none is needed sooner):
        // agents started together (a cluster's boot) do not all list together.
        let peers_age = self.timing.fence.mul_f64(fastrand::f64() / 2.0);
        let (renewed, peers, peers_listed) = (Instant::now(), Vec::new(), Some(Instant::now()));
        let mut beat = Beat { lease, status, renewed, peers, peers_listed, peers_age, rtt_cursor: 0 };
        self.put_status(&mut beat).await?;
        Ok(beat)
    }

    /// Publishes the info record, with the node's API address in its status: the info record outlives the lease,
    /// so the address stays known (e.g. to a new controller) while the node has no heartbeat.
    async fn put_info(&self, info: &Node) -> Result<(), StoreError> {
        let mut info = info.clone();
        info.status.address = self.address.clone();
        let put = self.records.put::<NodeInfos>(&self.node, &info, None);
        match tokio::time::timeout(self.timing.period.max(Duration::from_secs(1)), put).await {
            Ok(done) => done.map(|_| ()),
            Err(_) => Err(StoreError::Unavailable("publishing the node info timed out".into())),
        }
    }

    async fn put_status(&self, beat: &mut Beat) -> Result<(), StoreError> {
        beat.status.heartbeat = Some(Utc::now());
        let put = self.records.put::<NodeStatuses>(&self.node, &beat.status, Some(beat.lease));
        match tokio::time::timeout(self.timing.period, put).await {
            Ok(done) => done.map(|_| ()),
            Err(_) => Err(StoreError::Unavailable("publishing the node status timed out".into())),
        }
    }

    /// Keeps the lease alive, refreshes the status, measures round trips and republishes changed info until
    /// `shutdown`; then revokes the lease (the status record disappears at once).
    pub async fn run(self, mut beat: Beat, mut info: watch::Receiver<Node>, mut shutdown: watch::Receiver<bool>) {
        let mut keep = tokio::time::interval(self.timing.period);
        // The first measurement at a random point of the first interval: agents started together (a cluster's
        // boot) do not all list and measure at the same moment.
        let first = self.rtt_interval.mul_f64(fastrand::f64());
        let mut rtt = tokio::time::interval_at(tokio::time::Instant::now() + first, self.rtt_interval);
        keep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rtt.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keep.tick().await;
        let mut info_open = true;
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = keep.tick() => {
                    self.keep_alive(&mut beat).await;
                    self.check_fence(&mut beat).await;
                }
                _ = rtt.tick() => {
                    let rtt_ms = self.measure_peers(&mut beat).await;
                    // Written only when the round trips changed enough to matter to placement: a status write per
                    // node per round would be most of a large cluster's store traffic.
                    if rtt_changed(&beat.status.rtt_ms, &rtt_ms) {
                        beat.status.rtt_ms = rtt_ms;
                        if let Err(e) = self.put_status(&mut beat).await {
                            tracing::warn!(error = %e, "cannot publish node status");
                        }
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
        let sent = Instant::now();
        let store = self.records.store();
        let period = self.timing.period;
        let mut regranted = false;
        let renewed = match tokio::time::timeout(period, store.keep_alive(beat.lease)).await {
            Ok(Ok(())) => true,
            Ok(Err(StoreError::LeaseNotFound(_))) => {
                tracing::warn!("heartbeat lease expired; granting a new one");
                match tokio::time::timeout(period, store.grant(self.timing.ttl)).await {
                    Ok(Ok(lease)) => {
                        beat.lease = lease;
                        regranted = true;
                        true
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot grant heartbeat lease");
                        false
                    }
                    Err(_) => false,
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "heartbeat keep-alive failed");
                false
            }
            Err(_) => {
                tracing::warn!("heartbeat keep-alive timed out");
                false
            }
        };
        if !renewed {
            self.probe.set_store_ok(beat.renewed.elapsed() < self.timing.ttl);
            return;
        }
        // The status record lives as long as the lease: written again only under a new lease (the old one took it
        // away) and with each round-trip measurement, not at every renewal (a write per node per period would be
        // most of the store's traffic in a large cluster).
        if regranted {
            if let Err(e) = self.put_status(beat).await {
                tracing::warn!(error = %e, "cannot publish node status");
                return;
            }
        }
        beat.renewed = sent;
        self.extend_guard(sent.elapsed());
        self.probe.set_store_ok(true);
        // The peers asked when fencing, listed again from time to time while the store answers.
        self.refresh_peers(beat).await;
        if *self.fence.borrow() {
            tracing::info!("the store is reachable again: fence lifted");
            self.fence.send_replace(false);
        }
    }

    /// Raises the fence when the lease has gone unrenewed for the fence deadline and this node is the one cut off
    /// from the store (a peer reaches it, or no peer answers).
    async fn check_fence(&self, beat: &mut Beat) {
        if *self.fence.borrow() || beat.renewed.elapsed() < self.timing.fence {
            return;
        }
        let wait = self.timing.period.min(Duration::from_millis(500));
        let mut sample: Vec<SocketAddr> = beat.peers.iter().map(|(_, a)| *a).collect();
        fastrand::shuffle(&mut sample);
        sample.truncate(FENCE_PEERS);
        let asks = sample.iter().map(|peer| self.probe.ask(*peer, wait));
        let answers: Vec<bool> = futures::future::join_all(asks).await.into_iter().flatten().map(|a| a.1).collect();
        if !answers.is_empty() && answers.iter().all(|ok| !ok) {
            // Edge autonomy: the instances keep running, and so the guard is kept from stopping them.
            self.extend_guard(Duration::ZERO);
            tracing::warn!(
                peers = answers.len(),
                "the store is unreachable from every node that answers: instances keep running (edge autonomy)"
            );
            return;
        }
        tracing::warn!(
            unrenewed = ?beat.renewed.elapsed(),
            peers_answering = answers.len(),
            "cannot renew the heartbeat lease while the store may be reachable elsewhere: fencing (stopping instances)"
        );
        self.fence.send_replace(true);
    }

    /// Pushes the fence guard's deadline to the fence deadline counted from `ago` before now, plus two periods: while
    /// this agent lives, it fences (or keeps running, in edge autonomy) before the guard would.
    fn extend_guard(&self, ago: Duration) {
        let Some(guard) = &self.guard else { return };
        let margin = self.timing.fence + 2 * self.timing.period;
        let at = (boot_millis() + margin.as_millis() as u64).saturating_sub(ago.as_millis() as u64);
        if let Err(e) = guard.extend_to(at) {
            tracing::warn!(error = %e, "cannot push the fence guard's deadline");
        }
    }

    /// The other nodes with a live heartbeat and their probe addresses (`None`: the store did not answer).
    async fn list_peers(&self) -> Option<Vec<(String, SocketAddr)>> {
        let listed = tokio::time::timeout(self.timing.period, self.records.list::<NodeProbes>()).await;
        let Ok(Ok((probes, _))) = listed else { return None };
        Some(
            probes
                .into_iter()
                .filter(|(node, _)| *node != self.node)
                .filter_map(|(node, probe)| Some((node, probe.value.probe_address?.parse().ok()?)))
                .collect(),
        )
    }

    /// Lists the peers again once the last list (or try) is older than its age, drawn after each list: about a
    /// period while there are none (a node that just joined is known soon), else about half of --node-lost-after or
    /// a tenth of a second per peer, whichever is longer (every node listing every other is quadratic: at 1,000
    /// nodes that keeps the whole cluster to about ten lists a second). Drawn between ½ and 1½ of that, so nodes
    /// started together do not list together. Kept as they were when the store does not answer.
    async fn refresh_peers(&self, beat: &mut Beat) {
        if beat.peers_listed.is_some_and(|at| at.elapsed() < beat.peers_age) {
            return;
        }
        if let Some(peers) = self.list_peers().await {
            beat.peers = peers;
        }
        beat.peers_listed = Some(Instant::now());
        let age = if beat.peers.is_empty() {
            self.timing.period
        } else {
            (self.timing.lost_after / 2).max(Duration::from_millis(100) * beat.peers.len() as u32)
        };
        beat.peers_age = age.mul_f64(0.5 + fastrand::f64());
    }

    /// Round-trip times in milliseconds to the other nodes that publish a probe address and answer: the next
    /// [`RTT_PEERS_PER_ROUND`] peers measured now, the others' as last measured (peers gone are dropped).
    pub async fn measure_peers(&self, beat: &mut Beat) -> BTreeMap<String, f64> {
        self.refresh_peers(beat).await;
        if let RttSource::Fixed(given) = &self.rtt {
            return given.clone();
        }
        let n = beat.peers.len();
        let round: Vec<(String, SocketAddr)> =
            (0..n.min(RTT_PEERS_PER_ROUND)).map(|k| beat.peers[(beat.rtt_cursor + k) % n].clone()).collect();
        beat.rtt_cursor = if n == 0 { 0 } else { (beat.rtt_cursor + round.len()) % n };
        let probes = round
            .iter()
            .map(|(node, addr)| async move { (node.clone(), self.probe.measure(*addr, Duration::from_secs(1)).await) });
        let measured = futures::future::join_all(probes).await;
        let mut rtt: BTreeMap<String, f64> = beat
            .status
            .rtt_ms
            .iter()
            .filter(|(node, _)| beat.peers.iter().any(|(p, _)| p == *node))
            .map(|(node, ms)| (node.clone(), *ms))
            .collect();
        for (node, took) in measured {
            match took {
                Some(d) => rtt.insert(node, d.as_secs_f64() * 1000.0),
                None => rtt.remove(&node),
            };
        }
        rtt
    }
}

/// Whether round trips changed enough to publish: a peer came or went, or one changed by more than a fifth (and
/// more than a tenth of a millisecond: loopback's jitter is not news).
pub fn rtt_changed(old: &BTreeMap<String, f64>, new: &BTreeMap<String, f64>) -> bool {
    old.len() != new.len()
        || new
            .iter()
            .any(|(node, ms)| old.get(node).is_none_or(|was| (ms - was).abs() > 0.1 && (ms - was).abs() > was * 0.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtt(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(n, ms)| (n.to_string(), *ms)).collect()
    }

    #[test]
    fn round_trips_are_published_when_a_peer_comes_goes_or_moves_by_a_fifth() {
        let was = rtt(&[("a", 1.0), ("b", 10.0)]);
        assert!(!rtt_changed(&was, &was));
        assert!(!rtt_changed(&was, &rtt(&[("a", 1.05), ("b", 11.5)])), "jitter and 15% are not news");
        assert!(rtt_changed(&was, &rtt(&[("a", 1.0), ("b", 12.5)])), "25% is");
        assert!(!rtt_changed(&was, &rtt(&[("a", 1.19), ("b", 10.0)])), "nor 19%");
        assert!(rtt_changed(&was, &rtt(&[("a", 1.0)])), "a peer gone");
        assert!(rtt_changed(&was, &rtt(&[("a", 1.0), ("b", 10.0), ("c", 3.0)])), "a peer come");
        assert!(rtt_changed(&was, &rtt(&[("a", 1.0), ("c", 10.0)])), "another peer");
    }
}
