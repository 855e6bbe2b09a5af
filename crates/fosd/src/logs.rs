//! The API's source of this node's instance output: the node agent, which asks the runtime holding the instance.
//! The API starts before the agent (and runs without one under `--no-agent`), so the agent's reader is set once it
//! has started.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use fos_agent::runtime::OutputOptions;
use fos_agent::{InstanceLogs, LogsError};
use fos_api::InstanceId;
use fos_controller::api::logs::{LogError, LogSource, LogStream};

/// The agent's output reader, once the agent runs.
#[derive(Clone, Default)]
pub struct AgentLogs(Arc<OnceLock<InstanceLogs>>);

impl AgentLogs {
    /// Serves the output `reader` reads from now on.
    pub fn set(&self, reader: InstanceLogs) {
        let _ = self.0.set(reader);
    }
}

#[async_trait]
impl LogSource for AgentLogs {
    async fn open(&self, id: &InstanceId, follow: bool, tail_bytes: Option<u64>) -> Result<LogStream, LogError> {
        let reader =
            self.0.get().ok_or_else(|| LogError::NotFound(format!("no output of {id}: this node runs no agent")))?;
        reader.open(id, OutputOptions { follow, tail_bytes }).await.map_err(|e| match e {
            LogsError::NotHere { .. } | LogsError::NoOutput { .. } => LogError::NotFound(e.to_string()),
            LogsError::Runtime { .. } => LogError::Unavailable(e.to_string()),
        })
    }
}
