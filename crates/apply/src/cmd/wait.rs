//! Waiting for applications: until running or deleted. On a terminal each component gets a progress bar (ready
//! instances of its replicas, and its stage: pending → placed → starting → ready); elsewhere a plain line is
//! printed whenever a component moves. An unschedulable status or the timeout ends with exit code 3; an instance
//! its node has given up on (failed past its restart policy) ends at once with exit code 1, its reason and the
//! last lines of its log.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{Args, ValueEnum};
use fos_api::wire::{AppView, ComponentStatus, EntityView, Phase};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use super::style::stderr_is_terminal;
use super::{Global, NotDone, Timeout};
use crate::client::{encode_query, Client, ServerError};

const POLL: Duration = Duration::from_millis(50);
/// How much of a failed instance's log is shown.
const LOG_TAIL_BYTES: u64 = 2048;
/// How many of its last lines.
const LOG_TAIL_LINES: usize = 10;

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

/// An instance failed past its restart policy (exit code 1): which, why, and the end of its log.
#[derive(Debug)]
pub struct InstanceFailed(pub String);

impl std::fmt::Display for InstanceFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InstanceFailed {}

/// `fosctl wait`.
pub async fn wait_cmd(client: &Client, global: &Global, args: WaitArgs) -> anyhow::Result<()> {
    let deadline = Instant::now() + args.timeout.timeout;
    let progress = Progress::new();
    for name in &args.names {
        match args.condition {
            Condition::Running => wait_running(client, &global.tenant, name, deadline, &progress).await?,
            Condition::Deleted => wait_deleted(client, &global.tenant, name, deadline).await?,
        }
    }
    Ok(())
}

/// A component's stage.
pub fn stage(c: &ComponentStatus) -> &'static str {
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

/// Where progress goes: bars on a terminal, lines otherwise.
pub struct Progress {
    bars: Option<MultiProgress>,
    by_component: std::sync::Mutex<BTreeMap<String, ProgressBar>>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// Bars when standard error is a terminal, else plain lines.
    pub fn new() -> Progress {
        let bars = stderr_is_terminal().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { bars, by_component: Default::default() }
    }

    /// Shows that `app`/`comp` moved to `c` (its bar, or a plain line).
    fn update(&self, app: &str, comp: &str, c: &ComponentStatus) {
        let why = c.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
        let Some(multi) = &self.bars else {
            eprintln!("{app}/{comp}: {} ({}/{} ready){why}", stage(c), c.ready, c.replicas);
            return;
        };
        let mut bars = self.by_component.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bars.entry(format!("{app}/{comp}")).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(u64::from(c.replicas.max(1))));
            let style = ProgressStyle::with_template("{prefix:>24} [{bar:20.green/white}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar.set_prefix(format!("{app}/{comp}"));
            bar
        });
        bar.set_length(u64::from(c.replicas.max(1)));
        bar.set_position(u64::from(c.ready));
        bar.set_message(format!("{}{why}", stage(c)));
    }

    /// Prints a line above the bars (or plainly).
    pub fn println(&self, line: &str) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// Ends the bars of `app`, leaving them drawn.
    fn finish(&self, app: &str) {
        let bars = self.by_component.lock().unwrap_or_else(|p| p.into_inner());
        for (k, b) in bars.iter() {
            if k.starts_with(&format!("{app}/")) {
                b.finish();
            }
        }
    }
}

/// The instances of `tenant`/`name` their node has given up on, each with its reason and the end of its log.
async fn failed_for_good(client: &Client, tenant: &str, name: &str) -> anyhow::Result<Option<String>> {
    let q = format!("tenant={}&app={}", encode_query(tenant), encode_query(name));
    let entities: Vec<EntityView> = client.get(&format!("/v1/entities?{q}")).await?;
    let mut out = Vec::new();
    for e in entities.iter().filter(|e| e.actual.as_ref().is_some_and(|a| a.failed_for_good())) {
        let reason = e.actual.as_ref().and_then(|a| a.error.clone()).unwrap_or_default();
        let mut text = format!("{name}: instance {} on {} failed: {reason}", e.id.short(), e.node);
        match log_tail(client, &e.id.to_string()).await {
            Ok(lines) if !lines.is_empty() => {
                text.push_str(&format!("\nlast lines of its log:\n{}", lines.join("\n")));
            }
            Ok(_) => text.push_str("\n(its log is empty)"),
            Err(err) => text.push_str(&format!("\n(its log cannot be read: {err})")),
        }
        out.push(text);
    }
    Ok((!out.is_empty()).then(|| out.join("\n")))
}

/// The last lines of an instance's log.
async fn log_tail(client: &Client, id: &str) -> anyhow::Result<Vec<String>> {
    let resp = client.stream(&format!("/v1/logs/{id}?follow=false&tail_bytes={LOG_TAIL_BYTES}")).await?;
    let mut body = resp.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text.lines().map(|l| format!("  | {l}")).collect();
    Ok(lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].to_vec())
}

/// Waits until `tenant`/`name` runs at its current generation.
pub async fn wait_running(
    client: &Client,
    tenant: &str,
    name: &str,
    deadline: Instant,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut shown: BTreeMap<String, ComponentStatus> = BTreeMap::new();
    loop {
        let view: AppView = client.get(&format!("/v1/apps/{tenant}/{name}")).await?;
        if let Some(st) = &view.status {
            for (comp, c) in &st.components {
                if shown.get(comp) != Some(c) {
                    progress.update(name, comp, c);
                    shown.insert(comp.clone(), c.clone());
                }
            }
            let current = st.observed_generation >= view.record.generation;
            if current && st.phase == Phase::Running && all_checked(client, tenant, name).await? {
                progress.finish(name);
                progress.println(&format!("{name}: Running"));
                return Ok(());
            }
            if current && st.unschedulable {
                progress.finish(name);
                return Err(NotDone(format!("{name}: {}", st.message.as_deref().unwrap_or("cannot be placed"))).into());
            }
            let troubled = matches!(st.phase, Phase::Failed | Phase::Degraded)
                || st.components.values().any(|c| c.message.is_some());
            if troubled {
                if let Some(why) = failed_for_good(client, tenant, name).await? {
                    progress.finish(name);
                    return Err(InstanceFailed(why).into());
                }
            }
        }
        if Instant::now() >= deadline {
            progress.finish(name);
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
    let spinner = stderr_is_terminal().then(|| {
        let s = ProgressBar::new_spinner();
        s.set_message(format!("{name}: deleting"));
        s.enable_steady_tick(Duration::from_millis(100));
        s
    });
    let result = loop {
        match client.get::<AppView>(&format!("/v1/apps/{tenant}/{name}")).await {
            Err(e) if e.downcast_ref::<ServerError>().is_some_and(|s| s.status == 404) => break Ok(()),
            Err(e) => break Err(e),
            Ok(_) if Instant::now() >= deadline => {
                break Err(NotDone(format!("timed out waiting for {name} to be deleted")).into())
            }
            Ok(view) => {
                if let (Some(s), Some(st)) = (&spinner, &view.status) {
                    let left: u32 = st.components.values().map(|c| c.placed).sum();
                    s.set_message(format!("{name}: deleting ({left} instances left)"));
                }
                tokio::time::sleep(POLL).await
            }
        }
    };
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    result
}
