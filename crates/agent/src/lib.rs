//! The node agent: discovers the node, keeps its heartbeat, and drives runtime and network plugins so that the
//! node's actual instances match its desired instances. `fosd` starts it with [`Agent::start`]:
//!
//! ```no_run
//! # async fn example(store: std::sync::Arc<dyn fos_store::Store>) -> Result<(), Box<dyn std::error::Error>> {
//! use fos_agent::{Agent, AgentConfig, NodeConfig};
//!
//! let node = NodeConfig::load(std::path::Path::new("node.yaml"))?;
//! let agent = Agent::start(AgentConfig::new(node), store).await?;
//! println!("agent of node {} running, probe on {}", agent.node(), agent.probe_address());
//! // ... until the daemon stops:
//! agent.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! What it writes: `actual/nodes/<node>/info` (a `Node`: name, labels, discovered and declared hardware),
//! `actual/heartbeats/<node>` (a `NodeStatus` on the heartbeat lease, with round-trip times to other nodes),
//! `actual/nodes/<node>/plugins/<runtime>` ([`PluginRecord`]) and one `ActualInstance` per instance. What it reads:
//! `desired/nodes/<node>/instances/` and the node's Plugin objects; its network manager also shares the network
//! records ([`network`]). Every record goes through `fos_store::records::Records`, which knows each kind's key and
//! encoding. Instances keep running when the agent stops or dies; the next start adopts them from the state files
//! under the data directory. It serves its instances' output ([`AgentHandle::logs`]) through the runtime holding
//! each.
//!
//! Runtimes are built by the [`runtime::RuntimeRegistry`] (one registration line per runtime), each step handed the
//! instance's [`runtime::InstanceContext`]; cgroups are the node's ([`cgroup`]), shared by every runtime.

mod agent;
pub mod cgroup;
pub mod cleanup;
pub mod config;
pub mod discovery;
pub mod driver;
pub mod fence_guard;
pub mod heartbeat;
pub mod image_gc;
pub mod image_store;
pub mod images;
pub mod logs;
pub mod migration;
pub mod network;
pub mod oci;
pub mod reaper;
pub mod rtt;
pub mod runtime;

pub use agent::{Agent, AgentConfig, AgentError, AgentHandle, NodeSource};
pub use cleanup::CleanupReport;
pub use config::NodeConfig;
pub use heartbeat::RttSource;
pub use logs::{InstanceLogs, LogsError};
pub use runtime::registry::PluginRecord;
