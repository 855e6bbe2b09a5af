//! The API-client commands of `fosctl` (apply, diff, delete, get, describe, wait, logs, migrate, events, store, node,
//! plugin, entity, completion): their arguments, and how failures map to exit codes (1 failure or an instance
//! failed for good, 3 unschedulable or timed out; clap answers usage errors with 2; `diff`: 0 no change, 1 changes,
//! 2 failure).

mod access;
mod apply;
mod delete;
mod describe;
mod diff;
mod dot;
mod entity;
mod get;
mod image;
pub mod load;
mod migrate;
mod misc;
mod output;
mod style;
mod table;
mod wait;
mod watch;

use std::fmt;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::client::Client;

/// Options every API command shares.
#[derive(Debug, Args)]
pub struct Global {
    /// The fos API server (`https://host:port`); else the configuration's `server`, else https://127.0.0.1:7887.
    #[arg(long, global = true, env = "FOS_SERVER")]
    pub server: Option<String>,
    /// The client configuration file (`server:`, `ca:`, `token:`); else `FOS_CONFIG`, else
    /// `~/.config/fos/config.yaml`. `fosd` writes one for its administrator: `<data-dir>/fosctl.yaml`.
    #[arg(long, global = true)]
    pub config: Option<std::path::PathBuf>,
    /// The bearer token (else the configuration's `token`).
    #[arg(long, global = true, env = "FOS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The CA certificate (PEM) the server is checked against (else the configuration's `ca`).
    #[arg(long, global = true)]
    pub ca: Option<std::path::PathBuf>,
    /// The tenant (default `default`).
    #[arg(long, global = true, default_value = "default")]
    pub tenant: String,
}

/// The kinds `get` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Resource {
    /// Applications (and standalone entities) with their status.
    #[value(alias = "app", alias = "application", alias = "applications")]
    Apps,
    /// Instances: what runs where, desired and actual state.
    #[value(alias = "entity", alias = "instances", alias = "instance")]
    Entities,
    /// Nodes.
    #[value(alias = "node")]
    Nodes,
    /// Networks.
    #[value(alias = "network", alias = "net")]
    Networks,
    /// Plugins per node.
    #[value(alias = "plugin")]
    Plugins,
    /// Images.
    #[value(alias = "image")]
    Images,
    /// Secrets: names and keys, never values.
    #[value(alias = "secret")]
    Secrets,
    /// Migrations: the last one of each instance, with its phase and the bytes moved.
    #[value(alias = "migration")]
    Migrations,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    /// Aligned columns.
    #[default]
    Table,
    /// More columns.
    Wide,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
    /// Graphviz (`get app NAME -o dot | dot -Tsvg`): components, edges, nodes as clusters, state as colour.
    Dot,
}

/// Manifest files to read.
#[derive(Debug, Args)]
pub struct Files {
    /// A manifest file, a directory of them, or `-` for standard input (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
}

/// How long to wait.
#[derive(Debug, Args)]
pub struct Timeout {
    /// Give up after this long (`90s`, `5m`, `500ms`; a bare number is seconds).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// The API-client commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Apply manifests: create or update what they describe (unchanged objects are left alone).
    Apply(apply::ApplyArgs),
    /// Show what `apply` would change (a unified diff per object) and the placement changes; exit 0 nothing
    /// would change, 1 something would, 2 or more on error.
    Diff(Files),
    /// Delete by manifest (`-f`), by kind and name (`delete network lan`) or by name (an application or entity).
    Delete(delete::DeleteArgs),
    /// List objects of a kind, or show one.
    Get(get::GetArgs),
    /// Show an application or entity in detail: status, instances, recent events.
    Describe(describe::DescribeArgs),
    /// Wait until an application is running or deleted.
    Wait(wait::WaitArgs),
    /// Print an entity's log (served by the node that runs it).
    Logs(misc::LogsArgs),
    /// Move an instance to another node with its volumes (cold, or live with CRIU), or stop its migration.
    Migrate(migrate::MigrateArgs),
    /// Print the control plane's recent events.
    Events(misc::EventsArgs),
    /// Read the store by `afos://` / `dfos://` URI (with `*` and `**`).
    #[command(subcommand)]
    Store(misc::StoreCommand),
    /// Nodes: list them, or show one's information.
    #[command(subcommand)]
    Node(misc::NodeCommand),
    /// Images: upload one (streamed, checked by sha256), delete one.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Plugins: list them per node.
    #[command(subcommand)]
    Plugin(misc::PluginCommand),
    /// Drive a standalone entity through its lifecycle step by step.
    #[command(subcommand)]
    Entity(entity::EntityCommand),
    /// API tokens (administrators): create one, list them, revoke one.
    #[command(subcommand)]
    Token(access::TokenCommand),
    /// Tenant policies (administrators): may a tenant's entities run as root.
    #[command(subcommand)]
    Tenant(access::TenantCommand),
    /// Print the address of fosd's web view, with this configuration's token in its fragment, to open in a browser.
    Ui,
    /// Print a shell completion script.
    Completion(misc::CompletionArgs),
}

/// The command could not place something, or gave up waiting (exit code 3).
#[derive(Debug)]
pub struct NotDone(pub String);

impl fmt::Display for NotDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotDone {}

/// The exit code for a failure.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.is::<NotDone>() {
        3
    } else if e.is::<diff::DiffFailed>() {
        2
    } else {
        1
    }
}

/// Runs an API-client command and answers its exit status; `cli` builds the whole command tree (for
/// completions).
pub fn run(global: &Global, command: ClientCommand, cli: fn() -> clap::Command) -> anyhow::Result<u8> {
    if let ClientCommand::Completion(args) = &command {
        return misc::completion(args, cli()).map(|()| 0);
    }
    if let ClientCommand::Diff(files) = command {
        return run_diff(global, files).map_err(|e| diff::DiffFailed(e).into());
    }
    run_command(global, command).map(|()| 0)
}

fn client(global: &Global) -> anyhow::Result<Client> {
    Client::new(crate::client::Connect {
        server: global.server.as_deref(),
        config: global.config.as_deref(),
        token: global.token.as_deref(),
        ca: global.ca.as_deref(),
    })
}

fn run_diff(global: &Global, files: Files) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async { Ok(u8::from(diff::diff(&client(global)?, global, files).await?)) })
}

fn run_command(global: &Global, command: ClientCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let client = client(global)?;
        match command {
            ClientCommand::Apply(a) => apply::apply(&client, global, a).await,
            ClientCommand::Diff(_) => Ok(()),
            ClientCommand::Delete(a) => delete::delete(&client, global, a).await,
            ClientCommand::Get(a) => get::get(&client, global, a).await,
            ClientCommand::Describe(a) => describe::describe(&client, global, a).await,
            ClientCommand::Wait(a) => wait::wait_cmd(&client, global, a).await,
            ClientCommand::Logs(a) => misc::logs(&client, a).await,
            ClientCommand::Migrate(a) => migrate::migrate(&client, a).await,
            ClientCommand::Events(a) => misc::events(&client, global, a).await,
            ClientCommand::Store(c) => misc::store(&client, c).await,
            ClientCommand::Node(c) => misc::node(&client, c).await,
            ClientCommand::Plugin(c) => misc::plugin(&client, c).await,
            ClientCommand::Image(c) => image::image(&client, c).await,
            ClientCommand::Entity(c) => entity::entity(&client, global, c).await,
            ClientCommand::Token(c) => access::token(&client, global, c).await,
            ClientCommand::Tenant(c) => access::tenant(&client, c).await,
            ClientCommand::Ui => misc::ui(&client).await,
            ClientCommand::Completion(_) => Ok(()),
        }
    })
}

/// Parses `90s`, `5m`, `1h`, `500ms` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration (e.g. 90s, 5m)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3d").is_err());
    }
}
