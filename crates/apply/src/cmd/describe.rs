//! `fosctl describe`: an application or entity with its components, instances and recent events (or a node), as
//! text or, with `-o yaml|json`, as one document holding the object (with its status), its instances and events.

use clap::Args;
use fos_api::wire::{AppView, EntityView, EventRecord};
use fos_api::Node;
use serde_json::json;

use super::get::phase_of;
use super::output::{app_object, node_object, print_objects};
use super::table::{age, Table};
use super::{Global, Output, Resource};
use crate::client::{encode_query, Client};

/// Arguments of `describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// What to describe (`apps` or `entities`, or `nodes`).
    #[arg(value_enum)]
    resource: Resource,
    /// Its name.
    name: String,
    /// Output format (`table`: text).
    #[arg(short, long, value_enum, default_value = "table")]
    output: Output,
}

/// `fosctl describe`.
pub async fn describe(client: &Client, global: &Global, args: DescribeArgs) -> anyhow::Result<()> {
    let structured = matches!(args.output, Output::Yaml | Output::Json);
    if args.resource == Resource::Nodes {
        let node: Node = client.get(&format!("/v1/nodes/{}", args.name)).await?;
        let text = if structured { args.output } else { Output::Yaml };
        return print_objects(&[node_object(&node)], text == Output::Json, true);
    }
    let tenant = &global.tenant;
    let app: AppView = client.get(&format!("/v1/apps/{tenant}/{}", args.name)).await?;
    let q = format!("tenant={}&app={}", encode_query(tenant), encode_query(&args.name));
    let entities: Vec<EntityView> = client.get(&format!("/v1/entities?{q}")).await?;
    let events: Vec<EventRecord> = client.get(&format!("/v1/events?{q}&limit=20")).await?;
    if structured {
        let doc = json!({"object": app_object(&app), "instances": entities, "events": events});
        return print_objects(&[doc], args.output == Output::Json, true);
    }
    println!("Name:        {}", app.record.object.name());
    println!("Tenant:      {tenant}");
    println!("Kind:        {}", app.record.object.kind());
    println!("Generation:  {}", app.record.generation);
    if let Some(created) = app.record.created {
        println!("Created:     {} ({} ago)", created.format("%Y-%m-%d %H:%M:%S UTC"), age(created));
    }
    println!("Phase:       {}", phase_of(&app));
    if let Some(s) = &app.status {
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
    super::get::print_roundings(&app);
    println!("Instances:");
    let mut t = Table::new(&["  NAME", "NODE", "DESIRED", "STATE", "READY", "RESTARTS", "ADDRESSES"]);
    for e in &entities {
        let a = e.actual.as_ref();
        t.row(vec![
            format!("  {}", e.id.short()),
            e.node.clone(),
            e.desired.as_ref().map_or("-".into(), |d| d.state.to_string()),
            if e.unknown { e.shown_state() } else { a.map_or("-".into(), super::get::instance_state) },
            a.map_or("false".into(), |a| (a.ready && !e.unknown).to_string()),
            a.map_or("0".into(), |a| a.restarts.to_string()),
            a.map_or(String::new(), |a| a.addresses.join(",")),
        ]);
    }
    t.print();
    println!("Events:");
    for e in &events {
        println!("  {:>4}  {:<13} {}", age(e.time), e.reason, e.message);
    }
    Ok(())
}
