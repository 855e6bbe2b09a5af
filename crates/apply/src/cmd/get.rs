//! `fosctl get` (tables, wide tables, YAML or JSON of every kind) and `fosctl describe` (an application with its
//! components, instances and recent events).

use clap::Args;
use fos_api::wire::{AppView, EntityView, EventRecord};
use fos_api::Node;
use serde::Serialize;

use super::table::{age, Table};
use super::{Global, Output, Resource};
use crate::client::{encode_query, Client};

/// Arguments of `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// What to list.
    #[arg(value_enum)]
    resource: Resource,
    /// Only this one (an application, an entity id or its application, a node…).
    name: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Output,
}

/// Arguments of `describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// What to describe (`apps` or `entities`, or `nodes`).
    #[arg(value_enum)]
    resource: Resource,
    /// Its name.
    name: String,
}

fn emit<T: Serialize>(items: &T, output: Output) -> anyhow::Result<bool> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(items)?),
        Output::Yaml => print!("{}", serde_yaml_ng::to_string(items)?),
        _ => return Ok(false),
    }
    Ok(true)
}

fn matches(name: &Option<String>, candidates: &[&str]) -> bool {
    name.as_ref().is_none_or(|n| candidates.contains(&n.as_str()))
}

/// `fosctl get`.
pub async fn get(client: &Client, global: &Global, args: GetArgs) -> anyhow::Result<()> {
    let wide = args.output == Output::Wide;
    let tenant = encode_query(&global.tenant);
    match args.resource {
        Resource::Apps => {
            let mut apps: Vec<AppView> = client.get(&format!("/v1/apps?tenant={tenant}")).await?;
            apps.retain(|a| matches(&args.name, &[a.record.object.name()]));
            if args.name.is_some() && apps.is_empty() {
                anyhow::bail!("application {} not found", args.name.unwrap_or_default());
            }
            if emit(&apps, args.output)? {
                return Ok(());
            }
            let mut t =
                Table::new(&["NAME", "KIND", "PHASE", "READY", "GEN", "AGE", "MESSAGE"][..if wide { 7 } else { 6 }]);
            for a in &apps {
                let (ready, total) = a
                    .status
                    .as_ref()
                    .map_or((0, 0), |s| s.components.values().fold((0, 0), |(r, n), c| (r + c.ready, n + c.replicas)));
                let phase = a.status.as_ref().map_or("Pending".to_string(), |s| s.phase.to_string());
                let phase = if a.record.deleting { "Deleting".to_string() } else { phase };
                let mut row = vec![
                    a.record.object.name().to_string(),
                    a.record.object.kind().to_string(),
                    phase,
                    format!("{ready}/{total}"),
                    a.record.generation.to_string(),
                    a.status.as_ref().map_or("-".into(), |s| age(s.since)),
                ];
                if wide {
                    row.push(a.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default());
                }
                t.row(row);
            }
            t.print();
        }
        Resource::Entities => {
            let mut list: Vec<EntityView> = client.get(&format!("/v1/entities?tenant={tenant}")).await?;
            list.retain(|e| matches(&args.name, &[&e.id.to_string(), &e.id.short(), &e.id.app]));
            if emit(&list, args.output)? {
                return Ok(());
            }
            let head = ["NAME", "APP", "NODE", "DESIRED", "STATE", "READY", "RESTARTS", "PID", "GEN", "ERROR"];
            let mut t = Table::new(&head[..if wide { 10 } else { 7 }]);
            for e in &list {
                let a = e.actual.as_ref();
                let mut row = vec![
                    e.id.short(),
                    e.id.app.clone(),
                    e.node.clone(),
                    e.desired.as_ref().map_or("-".into(), |d| d.state.to_string()),
                    if e.unknown { e.shown_state() } else { a.map_or("-".into(), instance_state) },
                    a.map_or("false".into(), |a| (a.ready && !e.unknown).to_string()),
                    a.map_or("0".into(), |a| a.restarts.to_string()),
                ];
                if wide {
                    row.push(a.and_then(|a| a.pid).map_or("-".into(), |p| p.to_string()));
                    row.push(e.desired.as_ref().map_or("-".into(), |d| d.generation.to_string()));
                    row.push(a.and_then(|a| a.error.clone()).unwrap_or_default());
                }
                t.row(row);
            }
            t.print();
        }
        Resource::Nodes => {
            let mut nodes: Vec<Node> = client.get("/v1/nodes").await?;
            nodes.retain(|n| matches(&args.name, &[&n.metadata.name]));
            print_nodes(&nodes, args.output)?;
        }
        Resource::Secrets => {
            let mut list: Vec<fos_api::wire::SecretView> = client.get("/v1/secrets").await?;
            list.retain(|s| s.tenant == global.tenant && matches(&args.name, &[&s.name]));
            if emit(&list, args.output)? {
                return Ok(());
            }
            let mut t = Table::new(&["NAME", "KEYS"]);
            for s in &list {
                t.row(vec![s.name.clone(), s.keys.join(",")]);
            }
            t.print();
        }
        Resource::Networks | Resource::Images | Resource::Plugins => {
            let path = match args.resource {
                Resource::Networks => "/v1/networks",
                Resource::Images => "/v1/images",
                _ => "/v1/plugins",
            };
            let mut list: Vec<serde_json::Value> = client.get(path).await?;
            let name_of = |v: &serde_json::Value| {
                v.pointer("/metadata/name").or_else(|| v.get("name")).and_then(|n| n.as_str()).unwrap_or("").to_string()
            };
            list.retain(|v| matches(&args.name, &[&name_of(v)]));
            if emit(&list, args.output)? {
                return Ok(());
            }
            let mut t = Table::new(&["NAME", "DETAIL"]);
            for v in &list {
                let detail = v.get("spec").or_else(|| v.get("node")).map(|s| s.to_string()).unwrap_or_default();
                t.row(vec![name_of(v), if wide { detail } else { detail.chars().take(60).collect() }]);
            }
            t.print();
            if args.resource == Resource::Networks {
                print_node_networks(client, &args.name).await?;
            }
        }
    }
    Ok(())
}

/// Prints, per node, the networks it has up: bridge, VxLAN/VLAN id, addresses in use.
async fn print_node_networks(client: &Client, name: &Option<String>) -> anyhow::Result<()> {
    let list: Vec<serde_json::Value> = client.get("/v1/networks/nodes").await?;
    let text = |v: &serde_json::Value, p: &str| v.pointer(p).and_then(|x| x.as_str()).unwrap_or("-").to_string();
    let mut t = Table::new(&["NETWORK", "NODE", "BRIDGE", "SEGMENT", "ADDRESSES"]);
    let mut rows = 0;
    for v in &list {
        let net = text(v, "/network/name");
        if !matches(name, &[&net]) {
            continue;
        }
        let segment = match (text(v, "/segment/type").as_str(), v.pointer("/segment")) {
            ("vxlan", Some(s)) => format!("vxlan {}", s.get("vni").map(|n| n.to_string()).unwrap_or_default()),
            ("vlan", Some(s)) => format!("vlan {}", s.get("id").map(|n| n.to_string()).unwrap_or_default()),
            (other, _) => other.to_string(),
        };
        let addresses: Vec<&str> = v
            .get("addresses")
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        t.row(vec![
            format!("{}.{}", net, text(v, "/network/tenant")),
            text(v, "/node"),
            text(v, "/bridge"),
            segment,
            if addresses.is_empty() { "-".into() } else { addresses.join(", ") },
        ]);
        rows += 1;
    }
    if rows > 0 {
        println!();
        t.print();
    }
    Ok(())
}

/// Prints nodes in `output`.
pub fn print_nodes(nodes: &[Node], output: Output) -> anyhow::Result<()> {
    if emit(&nodes, output)? {
        return Ok(());
    }
    let mut t = Table::new(&["NAME", "STATUS", "ARCH", "CPUS", "MEMORY", "RUNTIMES", "ADDRESS"]);
    for n in nodes {
        let runtimes: Vec<String> = n.spec.runtimes.iter().map(|r| r.to_string()).collect();
        t.row(vec![
            n.metadata.name.clone(),
            n.status.phase(),
            n.spec.arch.to_string(),
            n.spec.cpu.count.to_string(),
            n.spec.memory.to_string(),
            runtimes.join(","),
            n.status.address.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t.print();
    Ok(())
}

/// An instance's state as reported, marked while its restarted agent has not checked it again, and with the
/// attempt count of a failing step.
fn instance_state(a: &fos_api::ActualInstance) -> String {
    let mut state = a.state().map_or("-".into(), |s| s.to_string());
    if a.unverified {
        state.push_str(" (unverified)");
    }
    if a.attempts > 0 {
        state.push_str(&format!(" (attempt {})", a.attempts));
    }
    state
}

/// Prints, per component, how its resource requests were rounded up to what the kernel enforces (nothing when
/// none was).
fn print_roundings(app: &AppView) {
    let Some(spec) = app.record.object.as_application() else { return };
    let lines: Vec<String> = spec
        .spec
        .components
        .iter()
        .flat_map(|c| c.entity.roundings().into_iter().map(move |r| format!("  {}: {r}", c.name)))
        .collect();
    if !lines.is_empty() {
        println!("Resources:");
        for l in lines {
            println!("{l}");
        }
    }
}

/// `fosctl describe`.
pub async fn describe(client: &Client, global: &Global, args: DescribeArgs) -> anyhow::Result<()> {
    if args.resource == Resource::Nodes {
        let node: Node = client.get(&format!("/v1/nodes/{}", args.name)).await?;
        print!("{}", serde_yaml_ng::to_string(&node)?);
        return Ok(());
    }
    let tenant = &global.tenant;
    let app: AppView = client.get(&format!("/v1/apps/{tenant}/{}", args.name)).await?;
    println!("Name:        {}", app.record.object.name());
    println!("Tenant:      {tenant}");
    println!("Kind:        {}", app.record.object.kind());
    println!("Generation:  {}", app.record.generation);
    if let Some(s) = &app.status {
        println!("Phase:       {}{}", s.phase, if app.record.deleting { " (deleting)" } else { "" });
        if let Some(m) = &s.message {
            println!("Message:     {m}");
        }
        println!("Components:");
        let mut t = Table::new(&["  NAME", "REPLICAS", "PLACED", "RUNNING", "READY", "MESSAGE"]);
        for (name, c) in &s.components {
            t.row(vec![
                format!("  {name}"),
                c.replicas.to_string(),
                c.placed.to_string(),
                c.running.to_string(),
                c.ready.to_string(),
                c.message.clone().unwrap_or_default(),
            ]);
        }
        t.print();
    }
    print_roundings(&app);
    let q = format!("tenant={}&app={}", encode_query(tenant), encode_query(&args.name));
    let entities: Vec<EntityView> = client.get(&format!("/v1/entities?{q}")).await?;
    println!("Instances:");
    let mut t = Table::new(&["  NAME", "NODE", "DESIRED", "STATE", "READY", "ADDRESSES"]);
    for e in &entities {
        let a = e.actual.as_ref();
        t.row(vec![
            format!("  {}", e.id.short()),
            e.node.clone(),
            e.desired.as_ref().map_or("-".into(), |d| d.state.to_string()),
            if e.unknown { e.shown_state() } else { a.map_or("-".into(), instance_state) },
            a.map_or("false".into(), |a| (a.ready && !e.unknown).to_string()),
            a.map_or(String::new(), |a| a.addresses.join(",")),
        ]);
    }
    t.print();
    let events: Vec<EventRecord> = client.get(&format!("/v1/events?{q}&limit=20")).await?;
    println!("Events:");
    for e in &events {
        println!("  {:>4}  {:<13} {}", age(e.time), e.reason, e.message);
    }
    Ok(())
}
