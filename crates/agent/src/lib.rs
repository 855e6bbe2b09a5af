//! The node agent: discovers the node, keeps its heartbeat, and drives runtime and network plugins so that the
//! node's actual instances match its desired instances. `fosd` starts it with [`Agent::start`].

mod agent;
pub mod config;
pub mod discovery;
pub mod driver;
pub mod heartbeat;
pub mod network;
pub mod rtt;
pub mod runtime;

pub use agent::{Agent, AgentConfig, AgentError, AgentHandle, PluginRecord};
pub use config::NodeConfig;
