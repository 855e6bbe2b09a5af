//! The agent's runtime seams with a small scripted runtime registered beside the native one: the registry publishes
//! both and the node configuration can switch one off; a step a runtime does not support is held, not retried in a
//! loop, while a failure that may pass is retried; and an instance's output is read through the agent.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::Env;
use fos_agent::runtime::registry::RuntimeSettings;
use fos_agent::runtime::{InstanceContext, OutputOptions, Recovered, RunState, Runtime, RuntimeEnv, RuntimeError};
use fos_agent::{AgentConfig, LogsError, PluginRecord};
use fos_api::lifecycle::State;
use fos_api::manifest::EntityKind;
use fos_api::record::{DesiredInstance, InstanceId};
use fos_store::records::{ActualPlugins, NodeInfos};
use futures::StreamExt;
use tokio::sync::watch;

/// A container runtime that answers `define` as the entity's `ANSWER` env says (`unsupported`, `retry`, else ok)
/// and counts the defines of each instance.
struct Scripted {
    defines: Arc<Mutex<BTreeMap<String, usize>>>,
}

#[async_trait]
impl Runtime for Scripted {
    fn kind(&self) -> EntityKind {
        EntityKind::Container
    }
    async fn probe(&self) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        Ok(Vec::new())
    }
    async fn define(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        *self.defines.lock().unwrap().entry(cx.id.component.clone()).or_default() += 1;
        match desired.entity.env.get("ANSWER").and_then(|v| v.as_plain()) {
            Some("unsupported") => Err(RuntimeError::Unsupported("this image format")),
            Some("retry") => Err(RuntimeError::Failed("registry unreachable".into())),
            _ => Ok(()),
        }
    }
    async fn configure(&self, _: &InstanceContext, _: &DesiredInstance) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn run(&self, _: &InstanceContext, _: &DesiredInstance) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn stop(&self, _: &InstanceContext) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn pause(&self, _: &InstanceContext) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn resume(&self, _: &InstanceContext) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn clean(&self, _: &InstanceContext) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn undefine(&self, _: &InstanceContext) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn status(&self, _: &InstanceId) -> Result<RunState, RuntimeError> {
        Ok(RunState::Idle)
    }
    fn subscribe(&self, _: &InstanceId) -> Option<watch::Receiver<RunState>> {
        None
    }
    async fn ready(&self, _: &InstanceContext, _: &DesiredInstance) -> bool {
        true
    }
    fn addresses(&self, _: &InstanceId) -> Vec<String> {
        Vec::new()
    }
}

type Defines = Arc<Mutex<BTreeMap<String, usize>>>;

/// Registers the scripted runtime in `config`; returns its define counts.
fn with_scripted(config: &mut AgentConfig) -> Defines {
    let defines = Defines::default();
    let counts = defines.clone();
    config.runtimes.register(EntityKind::Container, move |_: &RuntimeEnv| {
        Ok(Arc::new(Scripted { defines: counts.clone() }) as Arc<dyn Runtime>)
    });
    defines
}

async fn start(node: &str, configure: impl FnOnce(&mut AgentConfig)) -> (Env, Defines) {
    let store_dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn fos_store::Store> =
        Arc::new(fos_store::EmbeddedStore::open(fos_store::EmbeddedConfig::new(store_dir.path())).unwrap());
    let mut defines = None;
    let env = Env::start_configured(node, store, store_dir, |c| {
        defines = Some(with_scripted(c));
        configure(c);
    })
    .await;
    (env, defines.unwrap())
}

fn container(env: &Env, name: &str, answer: &str) -> DesiredInstance {
    let mut d = env.desired(name, &["app"]);
    d.entity.kind = EntityKind::Container;
    d.entity.env.insert("ANSWER".into(), answer.into());
    d
}

fn count(defines: &Defines, name: &str) -> usize {
    defines.lock().unwrap().get(name).copied().unwrap_or(0)
}

async fn plugin(env: &Env, kind: &str) -> PluginRecord {
    let id = (env.node.clone(), kind.to_string());
    env.records.get::<ActualPlugins>(&id).await.unwrap().expect("plugin record").value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_step_is_held_until_the_record_changes_while_a_failure_that_may_pass_is_retried() {
    let (mut env, defines) = start("n1", |_| {}).await;
    let node = env.records.get::<NodeInfos>(&"n1".into()).await.unwrap().unwrap().value;
    assert_eq!(node.spec.runtimes, [EntityKind::Native, EntityKind::Container], "both registered runtimes ready");
    assert!(plugin(&env, "container").await.ready);

    let mut held = container(&env, "held", "unsupported");
    let retried = container(&env, "retried", "retry");
    let mut wh = env.watch_actual(&held.id).await;
    let mut wr = env.watch_actual(&retried.id).await;
    env.put(&held).await;
    env.put(&retried).await;
    let a = wh.state(State::Error).await;
    let error = a.error.unwrap();
    assert!(error.contains("this image format is not supported"), "{error}");
    assert!(error.contains("held until the desired record changes"), "{error}");
    assert!(wr.state(State::Error).await.error.unwrap().contains("(retry in"));
    // Backoff starts at 100 ms: a retried step runs several times in a second, a held one never again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(&defines, "held"), 1, "not retried");
    assert!(count(&defines, "retried") >= 3, "retried: {}", count(&defines, "retried"));

    // A new desired record is tried once more; one the runtime accepts runs.
    held.generation = 2;
    env.put(&held).await;
    for _ in 0..100 {
        if count(&defines, "held") == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&defines, "held"), 2, "tried once for the new record");
    held.generation = 3;
    held.entity.env.insert("ANSWER".into(), "ok".into());
    env.put(&held).await;
    wh.state(State::Running).await;

    for (d, w) in [(&held, &mut wh), (&retried, &mut wr)] {
        env.delete(&d.id).await;
        w.deleted().await;
    }
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_switched_off_in_the_node_configuration_is_not_started() {
    let (mut env, _) = start("n1", |c| {
        c.node.runtimes.insert(EntityKind::Native, RuntimeSettings { enabled: false, ..Default::default() });
    })
    .await;
    let node = env.records.get::<NodeInfos>(&"n1".into()).await.unwrap().unwrap().value;
    assert_eq!(node.spec.runtimes, [EntityKind::Container]);
    let native = plugin(&env, "native").await;
    assert!(!native.ready);
    assert_eq!(native.error.as_deref(), Some("disabled in the node configuration"));

    // An instance of a kind this node does not run is held in Error with the reason (not retried in a loop).
    let d = env.desired("orphan", &["sleep", "300"]);
    let mut w = env.watch_actual(&d.id).await;
    env.put(&d).await;
    let a = w.state(State::Error).await;
    assert!(a.error.as_deref().is_some_and(|e| e.contains("no native runtime on this node")), "{a:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = env.actual(&d.id).await.unwrap();
    assert_eq!(now.updated_at, a.updated_at, "no retry rewrote the record");
    env.delete(&d.id).await;
    w.deleted().await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instances_output_is_read_through_the_agent() {
    let mut env = Env::start("n1").await;
    let d =
        env.desired("talk", &["/bin/sh", "-c", "echo first; echo oops >&2; sleep 0.5; echo second; exec sleep 300"]);
    let mut w = env.watch_actual(&d.id).await;
    env.put(&d).await;
    w.state(State::Running).await;
    let agent = env.agent.as_ref().unwrap();
    let mut followed = agent.logs(&d.id, OutputOptions { follow: true, tail_bytes: None }).await.unwrap();
    let mut seen = String::new();
    while !seen.contains("second") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), followed.next()).await.unwrap().unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.starts_with("first\n") && seen.contains("oops\n"), "{seen:?}");
    let tail = agent.logs(&d.id, OutputOptions { follow: false, tail_bytes: Some(7) }).await.unwrap();
    let tail: Vec<u8> = tail.map(|c| c.unwrap()).concat().await;
    assert_eq!(String::from_utf8_lossy(&tail), "second\noops\n", "the last 7 bytes of each file");
    let elsewhere = InstanceId::new("default", "test", "absent", 0);
    let err = agent.logs(&elsewhere, OutputOptions::default()).await.err().unwrap();
    assert!(matches!(err, LogsError::NotHere { .. }), "{err}");
    env.delete(&d.id).await;
    w.deleted().await;
    env.shutdown().await;
}
