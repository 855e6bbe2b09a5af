//! Instance output served by the agent: asked for an instance's output, the agent finds the runtime of this node
//! holding the instance and asks it (with the instance's context), so whoever serves logs (the API) never knows a
//! runtime's file layout.

use fos_api::record::InstanceId;
use thiserror::Error;

use crate::driver::LocalInstances;
use crate::runtime::{OutputOptions, OutputStream, RuntimeError};

/// Why an instance's output cannot be read.
#[derive(Debug, Error)]
pub enum LogsError {
    /// No runtime of this node holds the instance.
    #[error("instance {id} is not on node {node}")]
    NotHere {
        /// The instance.
        id: InstanceId,
        /// This node.
        node: String,
    },
    /// The instance has written nothing yet.
    #[error("no output of {id} on {node} yet")]
    NoOutput {
        /// The instance.
        id: InstanceId,
        /// This node.
        node: String,
    },
    /// The runtime could not read it.
    #[error("reading the output of {id}: {source}")]
    Runtime {
        /// The instance.
        id: InstanceId,
        /// The runtime's error.
        source: RuntimeError,
    },
}

/// Reads the output of this node's instances (from [`crate::AgentHandle::logs`]). Cheap to clone.
#[derive(Clone)]
pub struct InstanceLogs {
    node: String,
    local: LocalInstances,
}

impl InstanceLogs {
    /// Reads the instances of `local`, on node `node`.
    pub fn new(node: impl Into<String>, local: LocalInstances) -> Self {
        InstanceLogs { node: node.into(), local }
    }

    /// The output of instance `id`: what is there (its last `tail_bytes` per file), then what is appended when
    /// `follow`.
    pub async fn open(&self, id: &InstanceId, options: OutputOptions) -> Result<OutputStream, LogsError> {
        let local = self.local.get(id).ok_or_else(|| LogsError::NotHere { id: id.clone(), node: self.node.clone() })?;
        local.runtime.output(&local.context, options).await.map_err(|source| match source {
            RuntimeError::NoOutput(_) => LogsError::NoOutput { id: id.clone(), node: self.node.clone() },
            source => LogsError::Runtime { id: id.clone(), source },
        })
    }
}
