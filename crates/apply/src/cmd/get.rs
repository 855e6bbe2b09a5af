//! `fosctl get`: tables, wide tables, YAML or JSON objects that go back into `apply` (see [`super::output`]), and
//! the Graphviz picture of an application (`-o dot`); `--selector` filters on labels, `--watch` keeps printing the
//! rows that change (driven by the API's watch stream).

use clap::Args;
use fos_api::wire::{AppView, EntityView};
use fos_api::Node;
use serde_json::Value;

use super::output::{app_object, human_bytes, node_object, print_objects, Selector};
use super::table::{age, Table};
use super::{Global, Output, Resource};
use crate::client::{encode_query, Client};

/// Arguments of `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// What to list.
    #[arg(value_enum)]
    pub resource: Resource,
    /// Only this one (an application, an entity id or its application, a node…).
    pub name: Option<String>,
    /// Output format (`dot`: an application as a Graphviz graph).
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    /// Only objects whose labels match (`app=web,tier!=db,gpu,!legacy`); instances match by their application.
    #[arg(short = 'l', long, value_parser = Selector::parse)]
    pub selector: Option<Selector>,
    /// After the list, print every row that changes (until interrupted).
    #[arg(short, long)]
    pub watch: bool,
}

/// What one listing holds: table headers and rows (the first cell names the row), and the objects.
pub struct Listing {
    /// Column headers (wide or not).
    pub headers: Vec<&'static str>,
    /// One row per object.
    pub rows: Vec<Vec<String>>,
    /// The objects, as `-o yaml|json` prints them.
    pub objects: Vec<Value>,
    /// Warnings printed to stderr under the table, as kubectl's (pipes read the table alone).
    pub warnings: Vec<String>,
}

impl Listing {
    fn new(headers: &[&'static str], wide: bool, narrow: usize) -> Listing {
        let n = if wide { headers.len() } else { narrow };
        Listing { headers: headers[..n].to_vec(), rows: Vec::new(), objects: Vec::new(), warnings: Vec::new() }
    }

    /// The table of the rows.
    pub fn table(&self, rows: &[Vec<String>]) -> Table {
        let mut t = Table::new(&self.headers);
        rows.iter().for_each(|r| t.row(r.clone()));
        t
    }
}

fn matches(name: &Option<String>, candidates: &[&str]) -> bool {
    name.as_ref().is_none_or(|n| candidates.contains(&n.as_str()))
}

fn selected(selector: &Option<Selector>, labels: &std::collections::BTreeMap<String, String>) -> bool {
    selector.as_ref().is_none_or(|s| s.matches(labels))
}

/// The phase an application shows (Deleting while marked).
pub fn phase_of(a: &AppView) -> String {
    if a.record.deleting {
        return "Deleting".into();
    }
    a.status.as_ref().map_or("Pending".to_string(), |s| s.phase.to_string())
}

/// Lists `args.resource` as rows and objects.
pub async fn list(client: &Client, global: &Global, args: &GetArgs) -> anyhow::Result<Listing> {
    let wide = args.output == Output::Wide;
    let tenant = encode_query(&global.tenant);
    let sel = &args.selector;
    let mut l;
    match args.resource {
        Resource::Apps => {
            let mut apps: Vec<AppView> = client.get(&format!("/v1/apps?tenant={tenant}")).await?;
            apps.retain(|a| {
                matches(&args.name, &[a.record.object.name()]) && selected(sel, &a.record.object.metadata().labels)
            });
            l = Listing::new(&["NAME", "KIND", "PHASE", "READY", "GEN", "AGE", "MESSAGE"], wide, 6);
            for a in &apps {
                let (ready, total) = a
                    .status
                    .as_ref()
                    .map_or((0, 0), |s| s.components.values().fold((0, 0), |(r, n), c| (r + c.ready, n + c.replicas)));
                let since = a.record.created.or(a.status.as_ref().map(|s| s.since));
                let mut row = vec![
                    a.record.object.name().to_string(),
                    a.record.object.kind().to_string(),
                    phase_of(a),
                    format!("{ready}/{total}"),
                    a.record.generation.to_string(),
                    since.map_or("-".into(), age),
                ];
                if wide {
                    row.push(a.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default());
                }
                l.rows.push(row);
                l.objects.push(app_object(a));
            }
        }
        Resource::Entities => {
            let mut list: Vec<EntityView> = client.get(&format!("/v1/entities?tenant={tenant}")).await?;
            list.retain(|e| matches(&args.name, &[&e.id.to_string(), &e.id.short(), &e.id.app]));
            if let Some(s) = sel {
                let apps: Vec<AppView> = client.get(&format!("/v1/apps?tenant={tenant}")).await?;
                let chosen: Vec<&str> = apps
                    .iter()
                    .filter(|a| s.matches(&a.record.object.metadata().labels))
                    .map(|a| a.record.object.name())
                    .collect();
                list.retain(|e| chosen.contains(&e.id.app.as_str()));
            }
            let head = ["NAME", "APP", "NODE", "DESIRED", "STATE", "READY", "RESTARTS", "PID", "GEN", "ERROR"];
            l = Listing::new(&head, wide, 7);
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
                l.rows.push(row);
                l.objects.push(serde_json::to_value(e)?);
            }
        }
        Resource::Nodes => {
            let mut nodes: Vec<Node> = client.get("/v1/nodes").await?;
            nodes.retain(|n| matches(&args.name, &[&n.metadata.name]) && selected(sel, &n.metadata.labels));
            l = node_listing(&nodes, wide);
        }
        Resource::Migrations => {
            let mut list: Vec<fos_api::migration::Migration> = client.get("/v1/migrations").await?;
            list.retain(|m| {
                m.instance.tenant == global.tenant && matches(&args.name, &[&m.instance.to_string(), &m.instance.app])
            });
            let head = ["INSTANCE", "SOURCE", "DESTINATION", "MODE", "PHASE", "MOVED", "AGE", "ID", "MESSAGE"];
            l = Listing::new(&head, wide, 7);
            for m in &list {
                let mut row = vec![
                    m.instance.to_string(),
                    m.source.clone(),
                    m.destination.clone(),
                    m.mode.to_string(),
                    m.phase.to_string(),
                    format!("{}/{}", m.bytes_moved, m.bytes_total),
                    super::table::age(m.started),
                ];
                if wide {
                    row.push(m.id.clone());
                    row.push(m.message.clone().unwrap_or_default());
                }
                l.rows.push(row);
                l.objects.push(serde_json::to_value(m)?);
            }
        }
        Resource::Secrets => {
            let mut list: Vec<fos_api::wire::SecretView> = client.get("/v1/secrets").await?;
            list.retain(|s| s.tenant == global.tenant && matches(&args.name, &[&s.name]));
            l = Listing::new(&["NAME", "KEYS"], false, 2);
            for s in &list {
                l.rows.push(vec![s.name.clone(), s.keys.join(",")]);
                l.objects.push(serde_json::to_value(s)?);
            }
        }
        Resource::Images => {
            let mut list: Vec<Value> = client.get("/v1/images").await?;
            let views: Vec<fos_api::image::ImageView> = client.get("/v1/images/status").await?;
            let name_of = |v: &Value| v.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or("").to_string();
            list.retain(|v| matches(&args.name, &[&name_of(v)]) && sel.as_ref().is_none_or(|s| s.matches_value(v)));
            l = Listing::new(&["NAME", "FORMAT", "SIZE", "SHA256", "NODES"], false, 5);
            for mut v in list {
                let name = name_of(&v);
                let Some(view) = views.iter().find(|i| i.name == name) else { continue };
                let sha = if wide { view.sha256.clone() } else { view.sha256.chars().take(12).collect() };
                let size = view.size.map_or("-".into(), |s| s.to_string());
                let nodes = if view.nodes.is_empty() { "-".into() } else { view.nodes.join(",") };
                l.rows.push(vec![name, view.format.to_string(), size, sha, nodes]);
                v["status"] = serde_json::json!({"size": view.size, "nodes": view.nodes});
                l.objects.push(v);
            }
        }
        Resource::Networks | Resource::Plugins => {
            let path = match args.resource {
                Resource::Networks => "/v1/networks",
                _ => "/v1/plugins",
            };
            let mut list: Vec<Value> = client.get(path).await?;
            if args.resource == Resource::Plugins {
                list = plugin_objects(list);
            }
            let name_of = |v: &Value| v.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or("").to_string();
            list.retain(|v| matches(&args.name, &[&name_of(v)]) && sel.as_ref().is_none_or(|s| s.matches_value(v)));
            l = Listing::new(&["NAME", "DETAIL"], false, 2);
            for v in list {
                let detail = v.get("spec").map(|s| s.to_string()).unwrap_or_default();
                l.rows.push(vec![name_of(&v), if wide { detail } else { detail.chars().take(60).collect() }]);
                l.objects.push(v);
            }
        }
    }
    Ok(l)
}

/// The plugins as objects: one Plugin object per name (the copy one node holds), with every node's report under
/// `status.nodes`.
fn plugin_objects(list: Vec<Value>) -> Vec<Value> {
    let mut by_name: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
    for p in list {
        let name = p.get("name").and_then(|n| n.as_str()).unwrap_or("").to_string();
        let node = p.get("node").and_then(|n| n.as_str()).unwrap_or("").to_string();
        let entry = by_name.entry(name.clone()).or_insert_with(|| {
            p.get("desired").cloned().unwrap_or_else(|| {
                serde_json::json!({"apiVersion": fos_api::manifest::API_VERSION, "kind": "Plugin",
                    "metadata": {"name": name}, "spec": Value::Null})
            })
        });
        if let Some(actual) = p.get("actual") {
            entry["status"]["nodes"][node] = actual.clone();
        }
    }
    by_name.into_values().collect()
}

/// `fosctl get`.
pub async fn get(client: &Client, global: &Global, args: GetArgs) -> anyhow::Result<()> {
    if args.output == Output::Dot {
        return dot(client, global, &args).await;
    }
    let l = list(client, global, &args).await?;
    if args.name.is_some() && l.rows.is_empty() {
        anyhow::bail!("{:?} {} not found", args.resource, args.name.clone().unwrap_or_default());
    }
    match args.output {
        Output::Yaml | Output::Json => {
            let single = args.name.is_some() && l.objects.len() == 1;
            print_objects(&l.objects, args.output == Output::Json, single)?
        }
        _ => {
            l.table(&l.rows).print();
            for w in &l.warnings {
                eprintln!("Warning: {w}");
            }
            if args.resource == Resource::Networks && !args.watch {
                print_node_networks(client, &args.name).await?;
            }
        }
    }
    if args.watch {
        super::watch::follow(client, global, &args, l).await?;
    }
    Ok(())
}

/// `get app NAME -o dot`.
async fn dot(client: &Client, global: &Global, args: &GetArgs) -> anyhow::Result<()> {
    let Some(name) = &args.name else { anyhow::bail!("-o dot draws one application: fosctl get app NAME -o dot") };
    if args.resource != Resource::Apps {
        anyhow::bail!("-o dot draws applications: fosctl get app {name} -o dot");
    }
    let tenant = &global.tenant;
    let app: AppView = client.get(&format!("/v1/apps/{tenant}/{name}")).await?;
    let q = format!("tenant={}&app={}", encode_query(tenant), encode_query(name));
    let entities: Vec<EntityView> = client.get(&format!("/v1/entities?{q}")).await?;
    print!("{}", super::dot::render(&app, &entities));
    Ok(())
}

/// Prints, per node, the networks it has up: bridge, VxLAN/VLAN id, addresses in use.
async fn print_node_networks(client: &Client, name: &Option<String>) -> anyhow::Result<()> {
    let list: Vec<Value> = client.get("/v1/networks/nodes").await?;
    let text = |v: &Value, p: &str| v.pointer(p).and_then(|x| x.as_str()).unwrap_or("-").to_string();
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

/// The nodes as rows (memory and disk in binary units) and as `kind: Node` objects.
pub fn node_listing(nodes: &[Node], wide: bool) -> Listing {
    let head = ["NAME", "STATUS", "ARCH", "CPUS", "MEMORY", "DISK", "RUNTIMES", "ADDRESS", "OS", "KERNEL"];
    let mut l = Listing::new(&head, wide, 8);
    let bytes = |b: &fos_api::quantity::ByteSize| b.bytes().map(human_bytes).unwrap_or_else(|_| b.to_string());
    for n in nodes {
        let runtimes: Vec<String> = n.spec.runtimes.iter().map(|r| r.to_string()).collect();
        let mut row = vec![
            n.metadata.name.clone(),
            n.status.phase(),
            n.spec.arch.to_string(),
            n.spec.cpu.count.to_string(),
            bytes(&n.spec.memory),
            bytes(&n.spec.disk),
            runtimes.join(","),
            n.status.address.clone().unwrap_or_else(|| "-".into()),
        ];
        if wide {
            row.push(n.spec.os_release.clone().unwrap_or_else(|| n.spec.os.clone()));
            row.push(n.spec.kernel.clone().unwrap_or_else(|| "-".into()));
        }
        l.rows.push(row);
        l.objects.push(node_object(n));
        l.warnings.extend(n.status.warnings.iter().map(|w| format!("node {}: {w}", n.metadata.name)));
    }
    l
}

/// An instance's state as reported, marked while its restarted agent has not checked it again, and with the
/// attempt count of a failing step.
pub(crate) fn instance_state(a: &fos_api::ActualInstance) -> String {
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
pub(crate) fn print_roundings(app: &AppView) {
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

/// Prints nodes in `output` (`single`: one node asked for by name, printed alone).
pub fn print_nodes(nodes: &[Node], output: Output, single: bool) -> anyhow::Result<()> {
    let l = node_listing(nodes, output == Output::Wide);
    match output {
        Output::Yaml | Output::Json => print_objects(&l.objects, output == Output::Json, single),
        Output::Dot => anyhow::bail!("-o dot draws applications: fosctl get app NAME -o dot"),
        _ => {
            l.table(&l.rows).print();
            for w in &l.warnings {
                eprintln!("Warning: {w}");
            }
            Ok(())
        }
    }
}
