//! The generated fog: node descriptions (arch, OS, I/O, accelerators, position, sites with round-trip times) and a
//! workload of applications with `need` chains, proximity, device and arch constraints, and replicas. Generation
//! is deterministic: the same sizes give the same fog.

use std::collections::BTreeMap;

use anyhow::Context as _;
use fos_api::node::NodeInfo;
use fos_api::Object;

/// Nodes per site: nodes of one site are within a few milliseconds of each other; sites are far apart.
pub const SITE_SIZE: usize = 10;

/// Instances per generated application (db, api, two web replicas, and a cache or a sensor).
pub const APP_INSTANCES: usize = 5;

/// One simulated node: its name, description, labels and round-trip times to the other nodes of its site.
#[derive(Debug, Clone)]
pub struct SimNode {
    /// The node's name (`sim-0042`).
    pub name: String,
    /// What the node has, as discovery would report it.
    pub info: NodeInfo,
    /// Its labels (`site`).
    pub labels: BTreeMap<String, String>,
    /// Round-trip times in milliseconds to the other nodes of its site.
    pub rtt_ms: BTreeMap<String, f64>,
}

/// The name of node `i`.
pub fn node_name(i: usize) -> String {
    format!("sim-{i:04}")
}

/// `n` nodes in sites of [`SITE_SIZE`]: one in five is aarch64, one in seven has a GPIO line, one in twenty a CUDA
/// accelerator.
pub fn nodes(n: usize) -> anyhow::Result<Vec<SimNode>> {
    (0..n).map(|i| node(i, n)).collect()
}

fn node(i: usize, n: usize) -> anyhow::Result<SimNode> {
    let site = i / SITE_SIZE;
    let arch = if i.is_multiple_of(5) { "aarch64" } else { "x86_64" };
    let io = if i.is_multiple_of(7) {
        serde_json::json!([{"type": "gpio", "name": "gpio0", "lines": 8}])
    } else {
        serde_json::json!([])
    };
    let accelerators = if i.is_multiple_of(20) {
        serde_json::json!([{"type": "cuda", "name": "gpu0"}])
    } else {
        serde_json::json!([])
    };
    let info = serde_json::json!({
        "arch": arch,
        "os": "linux",
        "hostname": node_name(i),
        "cpu": {"model": "simulated", "count": 16},
        "memory": "32Gi",
        "disk": "256Gi",
        "io": io,
        "accelerators": accelerators,
        "runtimes": ["native"],
        "position": {"lat": 45.0 + (site % 100) as f64 * 0.1, "lon": 7.0 + (site / 100) as f64 * 0.1},
    });
    let info: NodeInfo = serde_json::from_value(info).context("a generated node description")?;
    let peers = (site * SITE_SIZE..((site + 1) * SITE_SIZE).min(n)).filter(|&j| j != i);
    let rtt_ms = peers.map(|j| (node_name(j), 0.5 + ((i + j) % 4) as f64 * 0.5)).collect();
    let labels = BTreeMap::from([("site".to_string(), format!("site-{site}"))]);
    Ok(SimNode { name: node_name(i), info, labels, rtt_ms })
}

/// Applications totalling `instances` instances: `db` ← `api` ← `web` (2 replicas) chains, plus a `cache` that
/// must be within 5 ms of `api` (on aarch64 in one application of three) or, in one application of twenty, a
/// `sensor` holding a GPIO line. The last application is cut short when `instances` is not a multiple of
/// [`APP_INSTANCES`].
pub fn applications(instances: usize) -> anyhow::Result<Vec<Object>> {
    let mut apps = Vec::new();
    let mut left = instances;
    while left > 0 {
        let take = left.min(APP_INSTANCES);
        apps.push(application(apps.len(), take)?);
        left -= take;
    }
    Ok(apps)
}

fn entity() -> serde_json::Value {
    serde_json::json!({"kind": "native", "command": ["sleep", "infinity"], "resources": {"cpu": "100m", "memory": "64Mi"}})
}

fn application(i: usize, instances: usize) -> anyhow::Result<Object> {
    let fifth = if i.is_multiple_of(20) {
        serde_json::json!({"name": "sensor", "need": ["api"], "entity": entity(),
            "constraints": {"io": [{"type": "gpio", "number": 1}]}})
    } else if i.is_multiple_of(3) {
        serde_json::json!({"name": "cache", "need": ["db"], "entity": entity(), "constraints": {"arch": "aarch64"},
            "proximity": {"to": "api", "within": "5ms", "required": true}})
    } else {
        serde_json::json!({"name": "cache", "need": ["db"], "entity": entity(),
            "proximity": {"to": "api", "within": "5ms", "required": true}})
    };
    let mut components = vec![
        serde_json::json!({"name": "db", "entity": entity()}),
        serde_json::json!({"name": "api", "need": ["db"], "entity": entity()}),
        serde_json::json!({"name": "web", "need": ["api"], "replicas": 2, "entity": entity()}),
        fifth,
    ];
    // Cut to `instances`: web counts twice.
    match instances {
        1 => components.truncate(1),
        2 => components.truncate(2),
        3 => {
            components.truncate(3);
            components[2]["replicas"] = serde_json::json!(1);
        }
        4 => components.truncate(3),
        _ => {}
    }
    let app = serde_json::json!({
        "apiVersion": fos_api::API_VERSION,
        "kind": "Application",
        "metadata": {"name": format!("app-{i:05}")},
        "spec": {"components": components},
    });
    serde_json::from_value(app).context("a generated application")
}

/// How many instances `apps` start (replicas counted).
pub fn instance_count(apps: &[Object]) -> usize {
    apps.iter()
        .filter_map(|o| o.as_application())
        .map(|a| a.spec.components.iter().map(|c| c.replicas as usize).sum::<usize>())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workload_has_the_instances_asked_for() {
        for n in [1, 4, 5, 7, 23, 100] {
            let apps = applications(n).expect("applications");
            assert_eq!(instance_count(&apps), n, "{n} instances asked");
        }
    }

    #[test]
    fn nodes_know_only_their_sites_round_trips() {
        let nodes = nodes(25).expect("nodes");
        assert_eq!(nodes[0].rtt_ms.len(), SITE_SIZE - 1);
        assert_eq!(nodes[24].rtt_ms.len(), 4, "the last site has five nodes");
        assert!(nodes[12].rtt_ms.keys().all(|peer| peer.as_str() >= "sim-0010" && peer.as_str() < "sim-0020"));
        assert_eq!(nodes.iter().filter(|n| !n.info.io.is_empty()).count(), 4);
    }
}
