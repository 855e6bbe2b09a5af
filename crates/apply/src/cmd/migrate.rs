//! `fosctl migrate INSTANCE [--to NODE] [--live|--cold] [--wait] [--timeout] [--abort]`: asks the API to move an
//! instance (by its full id, or a standalone entity's name) to another node, or to stop its migration; `--wait`
//! follows the migration record until it ends (on a terminal a bar of the bytes moved with the phase, elsewhere a
//! line per phase).

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use fos_api::migration::{MigrateRequest, Migration, MigrationMode, MigrationPhase};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use super::{NotDone, Timeout};
use crate::client::Client;

/// How often a waiting `migrate` reads the migration.
const POLL: Duration = Duration::from_millis(100);

/// `fosctl migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The instance (`<component>-<replica>.<app>.<tenant>`) or standalone entity to move.
    pub instance: String,
    /// The destination node (default: the scheduler's choice under the component's constraints and proximity).
    #[arg(long)]
    pub to: Option<String>,
    /// Move it while running (CRIU for processes; both nodes must publish the `criu` plugin).
    #[arg(long, conflicts_with = "cold")]
    pub live: bool,
    /// Stop it, move its volumes, start it on the destination.
    #[arg(long)]
    pub cold: bool,
    /// Stop the instance's migration in progress (before the destination owns it): it runs on the source again.
    #[arg(long, conflicts_with_all = ["to", "live", "cold"])]
    pub abort: bool,
    /// Wait until the migration ends, showing its phase and the bytes moved.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub timeout: Timeout,
}

/// Starts (or aborts) the migration, then waits for it when asked.
pub async fn migrate(client: &Client, args: MigrateArgs) -> anyhow::Result<()> {
    let mode = match (args.live, args.cold) {
        (true, _) => Some(MigrationMode::Live),
        (_, true) => Some(MigrationMode::Cold),
        _ => None,
    };
    let req = MigrateRequest { to: args.to.clone(), mode, abort: args.abort };
    let m: Migration = client.post(&format!("/v1/migrations/{}", args.instance), &req).await?;
    if args.abort {
        println!("aborting the migration of {} ({} → {})", m.instance, m.source, m.destination);
    } else {
        println!("migrating {} from {} to {} ({}), migration {}", m.instance, m.source, m.destination, m.mode, m.id);
    }
    if !args.wait {
        return Ok(());
    }
    let end = wait(client, &m, Instant::now() + args.timeout.timeout).await?;
    match end.phase {
        MigrationPhase::Completed => {
            let downtime = match (end.stopped_at, end.finished) {
                (Some(a), Some(b)) => format!(", down {} ms", (b - a).num_milliseconds()),
                _ => String::new(),
            };
            let total = end.finished.map(|f| (f - end.started).num_milliseconds()).unwrap_or(0);
            println!(
                "{} runs on {} ({} bytes moved, {total} ms{downtime})",
                end.instance, end.destination, end.bytes_moved
            );
            Ok(())
        }
        MigrationPhase::Aborted if args.abort => {
            println!("{} runs on {} again", end.instance, end.source);
            Ok(())
        }
        phase => bail!("migration of {} {phase}: {}", end.instance, end.message.unwrap_or_default()),
    }
}

/// Follows migration `m` until it is over or `deadline` passes.
async fn wait(client: &Client, m: &Migration, deadline: Instant) -> anyhow::Result<Migration> {
    let path = format!("/v1/migrations/{}", m.instance);
    let bar = super::style::stderr_is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template("{msg:30} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    let mut last = None;
    loop {
        let now: Migration = client.get(&path).await?;
        if now.id != m.id {
            bail!("{} was migrated again meanwhile (migration {})", m.instance, now.id);
        }
        match &bar {
            Some(b) => {
                b.set_length(now.bytes_total);
                b.set_position(now.bytes_moved);
                b.set_message(format!("{}: {}", now.instance.short(), now.phase));
            }
            None if last != Some(now.phase) => {
                println!("{}: {} ({} of {} bytes)", now.instance, now.phase, now.bytes_moved, now.bytes_total)
            }
            None => {}
        }
        last = Some(now.phase);
        if now.phase.is_final() {
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            return Ok(now);
        }
        if Instant::now() >= deadline {
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            return Err(
                NotDone(format!("timed out waiting for the migration of {} ({})", m.instance, now.phase)).into()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
