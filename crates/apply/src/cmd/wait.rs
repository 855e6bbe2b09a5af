//! Waiting for applications: until running (with a progress line per component as it goes placed → starting →
//! ready) or deleted; unschedulable and timeouts end with exit code 3. A failing instance is shown and waited on
//! (its node retries it with backoff) until the timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{Args, ValueEnum};
use fos_api::wire::{AppView, ComponentStatus, EntityView, Phase};

use tokio::time::Instant;

use super::{Global, NotDone, Timeout};
use crate::client::{encode_query, Client, ServerError};

const POLL: Duration = Duration::from_millis(50);

/// What to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Condition {
    /// Every component ready.
    Running,
    /// Gone.
    Deleted,
}

/// Arguments of `wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Applications (or standalone entities) to wait for.
    #[arg(required = true)]
    names: Vec<String>,
    /// The condition.
    #[arg(long = "for", value_enum, default_value = "running")]
    condition: Condition,
    #[command(flatten)]
    timeout: Timeout,
}

/// `fosctl wait`.
pub async fn wait_cmd(client: &Client, global: &Global, args: WaitArgs) -> anyhow::Result<()> {
    let deadline = Instant::now() + args.timeout.timeout;
    for name in &args.names {
        match args.condition {
            Condition::Running => wait_running(client, &global.tenant, name, deadline).await?,
            Condition::Deleted => wait_deleted(client, &global.tenant, name, deadline).await?,
        }
    }
    Ok(())
}

fn stage(c: &ComponentStatus) -> &'static str {
    if c.ready >= c.replicas {
        "ready"
    } else if c.running > 0 || c.placed >= c.replicas {
        "starting"
    } else if c.placed > 0 {
        "placed"
    } else {
        "pending"
    }
}

/// Waits until `tenant`/`name` runs at its current generation.
pub async fn wait_running(client: &Client, tenant: &str, name: &str, deadline: Instant) -> anyhow::Result<()> {
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let view: AppView = client.get(&format!("/v1/apps/{tenant}/{name}")).await?;
        if let Some(st) = &view.status {
            for (comp, c) in &st.components {
                let line = format!("{} ({}/{} ready)", stage(c), c.ready, c.replicas);
                if shown.get(comp) != Some(&line) {
                    let why = c.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
                    eprintln!("{name}/{comp}: {line}{why}");
                    shown.insert(comp.clone(), line);
                }
            }
            let current = st.observed_generation >= view.record.generation;
            if current && st.phase == Phase::Running && all_checked(client, tenant, name).await? {
                eprintln!("{name}: Running");
                return Ok(());
            }
            if current && st.unschedulable {
                return Err(NotDone(format!("{name}: {}", st.message.as_deref().unwrap_or("cannot be placed"))).into());
            }
        }
        if Instant::now() >= deadline {
            let phase = view.status.as_ref().map(|s| s.phase.to_string()).unwrap_or_else(|| "Pending".into());
            let why =
                view.status.as_ref().and_then(|s| s.message.clone()).map(|m| format!(": {m}")).unwrap_or_default();
            return Err(NotDone(format!("timed out waiting for {name} to run (it is {phase}{why})")).into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether every instance of `tenant`/`name` was checked by the agent running on its node now: a status aggregated
/// from records an agent wrote before it restarted (marked `unverified` by the restarted agent) is not taken for
/// running, even before the controller has aggregated again.
async fn all_checked(client: &Client, tenant: &str, name: &str) -> anyhow::Result<bool> {
    let q = format!("tenant={}&app={}", encode_query(tenant), encode_query(name));
    let entities: Vec<EntityView> = client.get(&format!("/v1/entities?{q}")).await?;
    Ok(entities.iter().all(|e| e.actual.as_ref().is_none_or(|a| !a.unverified)))
}

/// Waits until `tenant`/`name` is gone.
pub async fn wait_deleted(client: &Client, tenant: &str, name: &str, deadline: Instant) -> anyhow::Result<()> {
    loop {
        match client.get::<AppView>(&format!("/v1/apps/{tenant}/{name}")).await {
            Err(e) if e.downcast_ref::<ServerError>().is_some_and(|s| s.status == 404) => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) if Instant::now() >= deadline => {
                return Err(NotDone(format!("timed out waiting for {name} to be deleted")).into())
            }
            Ok(_) => tokio::time::sleep(POLL).await,
        }
    }
}
