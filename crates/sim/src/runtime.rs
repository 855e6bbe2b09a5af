//! The simulated runtime: every lifecycle step succeeds at once and an instance "runs" without a process. It is a
//! real [`Runtime`] registered under the `native` kind, so the agent's driver, its actual records and the
//! controller's gating all run as on a real node; only the operating system's work is left out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use fos_agent::runtime::{InstanceContext, Recovered, RunState, Runtime, RuntimeEnv, RuntimeError};
use fos_api::manifest::EntityKind;
use fos_api::record::{DesiredInstance, InstanceId};
use tokio::sync::watch;

/// Instances "run" in memory: one run-state channel each.
#[derive(Default)]
pub struct SimRuntime {
    instances: Mutex<HashMap<InstanceId, watch::Sender<RunState>>>,
}

impl SimRuntime {
    /// The factory registered in the agent's runtime registry for the `native` kind.
    pub fn factory(_env: &RuntimeEnv) -> Result<Arc<dyn Runtime>, RuntimeError> {
        Ok(Arc::new(SimRuntime::default()))
    }

    fn set(&self, id: &InstanceId, state: RunState) -> Result<(), RuntimeError> {
        let instances = self.instances.lock().map_err(|_| RuntimeError::Failed("runtime state poisoned".into()))?;
        match instances.get(id) {
            Some(tx) => {
                tx.send_replace(state);
                Ok(())
            }
            None => Err(RuntimeError::NotDefined(id.clone())),
        }
    }

    fn state(&self, id: &InstanceId) -> Option<RunState> {
        let instances = self.instances.lock().ok()?;
        instances.get(id).map(|tx| tx.borrow().clone())
    }

    /// Makes a running instance exit as a crash would (status 1), for tests of the restart policy.
    pub fn crash(&self, id: &InstanceId) -> Result<(), RuntimeError> {
        self.set(id, RunState::Exited { status: Some(1), signal: None, oom_killed: false, at: Utc::now() })
    }
}

#[async_trait]
impl Runtime for SimRuntime {
    fn kind(&self) -> EntityKind {
        EntityKind::Native
    }

    fn detail(&self) -> Option<String> {
        Some("simulated: no processes".into())
    }

    async fn probe(&self) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        Ok(Vec::new())
    }

    async fn define(&self, cx: &InstanceContext, _desired: &DesiredInstance) -> Result<(), RuntimeError> {
        let mut instances = self.instances.lock().map_err(|_| RuntimeError::Failed("runtime state poisoned".into()))?;
        instances.entry(cx.id.clone()).or_insert_with(|| watch::channel(RunState::Idle).0);
        Ok(())
    }

    async fn configure(&self, cx: &InstanceContext, _desired: &DesiredInstance) -> Result<(), RuntimeError> {
        self.set(&cx.id, RunState::Idle)
    }

    async fn run(&self, cx: &InstanceContext, _desired: &DesiredInstance) -> Result<(), RuntimeError> {
        self.set(&cx.id, RunState::Running { pid: 0, started_at: Utc::now() })
    }

    async fn stop(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        self.set(&cx.id, RunState::Idle)
    }

    async fn pause(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        self.state(&cx.id).map(|_| ()).ok_or_else(|| RuntimeError::NotDefined(cx.id.clone()))
    }

    async fn resume(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        self.state(&cx.id).map(|_| ()).ok_or_else(|| RuntimeError::NotDefined(cx.id.clone()))
    }

    async fn clean(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        self.set(&cx.id, RunState::Idle)
    }

    async fn undefine(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let mut instances = self.instances.lock().map_err(|_| RuntimeError::Failed("runtime state poisoned".into()))?;
        instances.remove(&cx.id);
        Ok(())
    }

    async fn status(&self, id: &InstanceId) -> Result<RunState, RuntimeError> {
        self.state(id).ok_or_else(|| RuntimeError::NotDefined(id.clone()))
    }

    fn subscribe(&self, id: &InstanceId) -> Option<watch::Receiver<RunState>> {
        self.instances.lock().ok()?.get(id).map(watch::Sender::subscribe)
    }

    async fn ready(&self, cx: &InstanceContext, _desired: &DesiredInstance) -> bool {
        matches!(self.state(&cx.id), Some(RunState::Running { .. }))
    }

    fn addresses(&self, _id: &InstanceId) -> Vec<String> {
        Vec::new()
    }
}
