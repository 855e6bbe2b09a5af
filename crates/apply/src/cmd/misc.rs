//! The smaller commands: `logs [-f]`, `events`, `store get URI` (the seed's fos-get), `node
//! list|info|cordon|uncordon|drain`, `plugin list`, and `completion bash|zsh|fish`.

use clap::{Args, Subcommand};
use clap_complete::Shell;
use fos_api::wire::{DrainStatus, EventRecord, StoreEntry};
use fos_api::Node;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::get::print_nodes;
use super::table::{age, Table};
use super::{Global, Output};
use crate::client::{encode_query, Client};

/// Arguments of `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The entity: an instance id (`db-0.wp.default`) or a standalone entity's name.
    entity: String,
    /// Keep printing what the entity writes.
    #[arg(short, long)]
    follow: bool,
    /// Only the last this many bytes of what is there already.
    #[arg(long)]
    tail_bytes: Option<u64>,
}

/// Arguments of `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only the events of this application.
    #[arg(long)]
    app: Option<String>,
    /// At most this many, the most recent.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Output format (`yaml`, `json`: the event records).
    #[arg(short, long, value_enum, default_value = "table")]
    output: Output,
    /// Keep printing new events as they happen (until interrupted).
    #[arg(short, long)]
    watch: bool,
}

/// `store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Print the keys an `afos://<sys>/…` or `dfos://<sys>/…` URI matches, with their values.
    Get {
        /// The URI (`*` matches one segment, `**` any number).
        uri: String,
    },
}

/// `node` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List the nodes.
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Show one node's information (hardware, software, status) as a `kind: Node` object.
    Info {
        /// The node.
        name: String,
        /// Output format (`yaml` by default; `table` for one row).
        #[arg(short, long, value_enum, default_value = "yaml")]
        output: Output,
    },
    /// Cordon a node: it takes nothing new (what runs there stays).
    Cordon {
        /// The node.
        name: String,
    },
    /// Lift a node's cordon (and stop draining it).
    Uncordon {
        /// The node.
        name: String,
    },
    /// Drain a node: cordon it and move every instance off (dependents first, `maxUnavailable` per component).
    Drain {
        /// The node.
        name: String,
        /// Wait until nothing is left on the node.
        #[arg(long)]
        wait: bool,
        /// How long to wait.
        #[command(flatten)]
        timeout: super::Timeout,
    },
}

/// `plugin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the plugins of every node (or of one).
    List {
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
    },
}

/// Arguments of `completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
}

/// `fosctl logs`.
pub async fn logs(client: &Client, args: LogsArgs) -> anyhow::Result<()> {
    let mut path = format!("/v1/logs/{}?follow={}", args.entity, args.follow);
    if let Some(t) = args.tail_bytes {
        path.push_str(&format!("&tail_bytes={t}"));
    }
    let resp = client.stream(&path).await?;
    let mut body = resp.bytes_stream();
    let mut out = tokio::io::stdout();
    while let Some(chunk) = body.next().await {
        out.write_all(&chunk?).await?;
        out.flush().await?;
    }
    Ok(())
}

/// `fosctl events`.
pub async fn events(client: &Client, global: &Global, args: EventsArgs) -> anyhow::Result<()> {
    let mut q = format!("limit={}", args.limit);
    if let Some(app) = &args.app {
        q.push_str(&format!("&tenant={}&app={}", encode_query(&global.tenant), encode_query(app)));
    }
    let list: Vec<EventRecord> = client.get(&format!("/v1/events?{q}")).await?;
    print_events(&list, args.output, true)?;
    if !args.watch {
        return Ok(());
    }
    // The event log is the control plane's own (not under the watchable desired/actual keys): read it again every
    // half second and print what is newer than the last event printed.
    let mut seen: Vec<EventRecord> = list;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let now: Vec<EventRecord> = client.get(&format!("/v1/events?{q}")).await?;
        let fresh = new_events(&seen, &now);
        if !fresh.is_empty() {
            print_events(&fresh, args.output, false)?;
        }
        seen = now;
    }
}

/// The events of `now` after the last one of `seen` (the log is ordered; equal times are told apart by content).
pub fn new_events(seen: &[EventRecord], now: &[EventRecord]) -> Vec<EventRecord> {
    let Some(last) = seen.last() else { return now.to_vec() };
    match now.iter().rposition(|e| e == last) {
        Some(i) => now[i + 1..].to_vec(),
        None => now.iter().filter(|e| e.time >= last.time && !seen.contains(e)).cloned().collect(),
    }
}

fn print_events(list: &[EventRecord], output: Output, header: bool) -> anyhow::Result<()> {
    match output {
        Output::Json => {
            for e in list {
                println!("{}", serde_json::to_string(e)?);
            }
        }
        Output::Yaml => {
            for e in list {
                print!("---\n{}", serde_yaml_ng::to_string(e)?);
            }
        }
        _ => {
            let mut t = Table::new(&["AGE", "APP", "REASON", "MESSAGE"]);
            for e in list {
                t.row(vec![age(e.time), e.app.clone().unwrap_or_default(), e.reason.clone(), e.message.clone()]);
            }
            let text = t.render();
            for line in text.lines().skip(if header { 0 } else { 1 }) {
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// `fosctl store get`.
pub async fn store(client: &Client, cmd: StoreCommand) -> anyhow::Result<()> {
    let StoreCommand::Get { uri } = cmd;
    let list: Vec<StoreEntry> = client.get(&format!("/v1/store?uri={}", encode_query(&uri))).await?;
    for e in &list {
        println!("{} (rev {})", e.key, e.mod_revision);
        println!("{}", serde_json::to_string_pretty(&e.value)?);
    }
    if list.is_empty() {
        eprintln!("no key matches {uri}");
    }
    Ok(())
}

/// `fosctl node`.
pub async fn node(client: &Client, cmd: NodeCommand) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::List { output } => {
            let nodes: Vec<Node> = client.get("/v1/nodes").await?;
            print_nodes(&nodes, output, false)
        }
        NodeCommand::Info { name, output } => {
            let node: Node = client.get(&format!("/v1/nodes/{name}")).await?;
            print_nodes(&[node], output, true)
        }
        NodeCommand::Cordon { name } => {
            let node: Node = client.post(&format!("/v1/nodes/{name}/cordon"), &()).await?;
            println!("node {name} cordoned ({})", node.status.phase());
            Ok(())
        }
        NodeCommand::Uncordon { name } => {
            let node: Node = client.post(&format!("/v1/nodes/{name}/uncordon"), &()).await?;
            println!("node {name} uncordoned ({})", node.status.phase());
            Ok(())
        }
        NodeCommand::Drain { name, wait, timeout } => drain(client, &name, wait, timeout.timeout).await,
    }
}

/// `fosctl node drain NAME [--wait]`: starts the drain, then (with `--wait`) prints each instance as it leaves until
/// the node is empty; the timeout exits 3.
async fn drain(client: &Client, name: &str, wait: bool, timeout: std::time::Duration) -> anyhow::Result<()> {
    let path = format!("/v1/nodes/{name}/drain");
    let mut status: DrainStatus = client.post(&path, &()).await?;
    println!("node {name} draining: {} instance(s) to move", status.remaining.len());
    if !wait {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut before = status.remaining.clone();
    while !status.remaining.is_empty() {
        if tokio::time::Instant::now() >= deadline {
            let left = status.remaining.join(", ");
            return Err(super::NotDone(format!("node {name} still holds {left} after {timeout:?}")).into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        status = client.get(&path).await?;
        for id in before.iter().filter(|id| !status.remaining.contains(id)) {
            println!("  {id} moved off");
        }
        before = status.remaining.clone();
    }
    println!("node {name} drained");
    Ok(())
}

/// `fosctl plugin list`.
pub async fn plugin(client: &Client, cmd: PluginCommand) -> anyhow::Result<()> {
    let PluginCommand::List { node } = cmd;
    let list: Vec<serde_json::Value> = client.get("/v1/plugins").await?;
    let mut t = Table::new(&["NODE", "PLUGIN", "TYPE", "ENABLED", "STATE"]);
    for p in &list {
        let s = |v: Option<&serde_json::Value>| v.and_then(|x| x.as_str()).unwrap_or("-").to_string();
        let n = s(p.get("node"));
        if node.as_ref().is_some_and(|x| x != &n) {
            continue;
        }
        t.row(vec![
            n,
            s(p.get("name")),
            s(p.pointer("/desired/spec/type").or_else(|| p.pointer("/actual/type"))),
            p.pointer("/desired/spec/enabled").map_or("-".into(), |v| v.to_string()),
            s(p.pointer("/actual/state")),
        ]);
    }
    t.print();
    Ok(())
}

/// `fosctl ui`: the web view's address; the token goes in the fragment, which browsers never send to the server.
pub async fn ui(client: &Client) -> anyhow::Result<()> {
    let _: fos_api::wire::SystemInfo = client.get("/v1/system").await?;
    match client.token() {
        Some(token) => println!("{}/ui/#token={}", client.base(), encode_query(token)),
        None => println!("{}/ui/", client.base()),
    }
    Ok(())
}

/// `fosctl completion`.
pub fn completion(args: &CompletionArgs, mut cli: clap::Command) -> anyhow::Result<()> {
    let name = cli.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cli, name, &mut script);
    match std::io::Write::write_all(&mut std::io::stdout(), &script) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
