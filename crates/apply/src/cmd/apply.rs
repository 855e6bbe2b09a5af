//! `fosctl apply`, `diff` and `delete`: send manifests to the API (server-side apply), show what changes and where
//! things go, optionally wait for them to run, prune what a directory no longer holds, and delete applications.

use std::path::Path;

use clap::Args;
use fos_api::wire::{AppPlan, AppView, ApplyRequest, ApplyResponse, Change, SOURCE_ANNOTATION};
use fos_api::Object;

use super::load::{self, locate, Manifests};
use super::wait::{wait_deleted, wait_running};
use super::{Files, Global, NotDone, Timeout};
use crate::client::Client;

/// Arguments of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    files: Files,
    /// Show what would change and the plan; store nothing.
    #[arg(long)]
    dry_run: bool,
    /// Wait until every application applied is running (progress per component).
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    timeout: Timeout,
    /// Delete the applications applied earlier from the same files/directory that they no longer contain.
    #[arg(long)]
    prune: bool,
}

/// Arguments of `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Delete what these manifests describe (a file, a directory, or `-`).
    #[arg(short = 'f', long = "filename", conflicts_with = "names")]
    files: Vec<String>,
    /// Applications (or standalone entities) to delete, by name.
    names: Vec<String>,
    /// Wait until everything is gone.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    timeout: Timeout,
}

fn with_tenant(mut obj: Object, global: &Global) -> Object {
    if global.tenant != fos_api::manifest::DEFAULT_TENANT {
        let md = match &mut obj {
            Object::Application(o) => &mut o.metadata,
            Object::Entity(o) => &mut o.metadata,
            Object::Network(o) => &mut o.metadata,
            Object::Plugin(o) => &mut o.metadata,
            Object::Image(o) => &mut o.metadata,
            Object::Node(o) => &mut o.metadata,
            Object::Secret(o) => &mut o.metadata,
        };
        md.tenant.get_or_insert_with(|| global.tenant.clone());
    }
    obj
}

/// The source a set of manifest paths is pruned within.
fn source_of(files: &[String]) -> String {
    let mut parts: Vec<String> = files
        .iter()
        .map(|f| Path::new(f).canonicalize().map(|p| p.display().to_string()).unwrap_or_else(|_| f.clone()))
        .collect();
    parts.sort();
    parts.join(",")
}

async fn send(
    client: &Client,
    manifests: &Manifests,
    global: &Global,
    dry_run: bool,
    prune: Option<String>,
) -> anyhow::Result<ApplyResponse> {
    let objects: Vec<Object> = manifests
        .objects()
        .iter()
        .map(|l| {
            let mut obj = with_tenant(l.object.clone(), global);
            if let Some(src) = &prune {
                match &mut obj {
                    Object::Application(o) => {
                        o.metadata.annotations.insert(SOURCE_ANNOTATION.into(), src.clone());
                    }
                    Object::Entity(o) => {
                        o.metadata.annotations.insert(SOURCE_ANNOTATION.into(), src.clone());
                    }
                    _ => {}
                }
            }
            obj
        })
        .collect();
    let body = ApplyRequest { dry_run, prune_source: prune, ..ApplyRequest::new(&objects) };
    client.post("/v1/apply", &body).await.map_err(|e| locate(e, manifests))
}

fn print_changes(resp: &ApplyResponse, fields: bool) {
    let suffix = if resp.dry_run { " (dry run)" } else { "" };
    for c in &resp.changes {
        println!("{}/{} {}{suffix}", c.kind.as_str().to_ascii_lowercase(), c.name, c.change);
        if fields {
            for f in &c.fields {
                println!("  ~ {f}");
            }
        }
    }
}

fn print_plan(plan: &AppPlan) {
    println!("plan for {}/{}:", plan.tenant, plan.app);
    let order: Vec<String> = plan.start_order.iter().map(|w| w.join(" + ")).collect();
    println!("  start order: {}", order.join(" → "));
    for p in &plan.placements {
        let note = if p.existing { " (kept)" } else { "" };
        println!("  {} → {}{note}", p.instance.short(), p.node);
    }
    for u in &plan.unschedulable {
        println!("  cannot place {}: {}", u.component, u.explanation());
    }
}

fn unschedulable(resp: &ApplyResponse) -> Option<NotDone> {
    let reasons: Vec<String> = resp
        .plans
        .iter()
        .flat_map(|p| {
            p.unschedulable.iter().map(move |u| format!("{}: cannot place {}: {}", p.app, u.component, u.explanation()))
        })
        .collect();
    (!reasons.is_empty()).then(|| NotDone(reasons.join("\n")))
}

/// `fosctl apply`.
pub async fn apply(client: &Client, global: &Global, args: ApplyArgs) -> anyhow::Result<()> {
    let manifests = load::load(&args.files.files)?;
    let prune = args.prune.then(|| source_of(&args.files.files));
    let resp = send(client, &manifests, global, args.dry_run, prune).await?;
    print_changes(&resp, args.dry_run);
    if args.dry_run {
        resp.plans.iter().for_each(print_plan);
    }
    if let Some(e) = unschedulable(&resp) {
        return Err(e.into());
    }
    if args.wait && !args.dry_run {
        let deadline = tokio::time::Instant::now() + args.timeout.timeout;
        for l in manifests.objects() {
            if l.object.as_application().is_some() {
                let obj = with_tenant(l.object.clone(), global);
                wait_running(client, obj.metadata().tenant(), obj.name(), deadline).await?;
            }
        }
        for c in resp.changes.iter().filter(|c| c.change == Change::Deleted) {
            let tenant = c.tenant.clone().unwrap_or_else(|| global.tenant.clone());
            wait_deleted(client, &tenant, &c.name, deadline).await?;
        }
    }
    Ok(())
}

/// `fosctl diff`.
pub async fn diff(client: &Client, files: Files) -> anyhow::Result<()> {
    let manifests = load::load(&files.files)?;
    let global =
        Global { server: None, config: None, token: None, ca: None, tenant: fos_api::manifest::DEFAULT_TENANT.into() };
    let resp = send(client, &manifests, &global, true, None).await?;
    print_changes(&resp, true);
    resp.plans.iter().for_each(print_plan);
    Ok(())
}

/// `fosctl delete`.
pub async fn delete(client: &Client, global: &Global, args: DeleteArgs) -> anyhow::Result<()> {
    let mut targets: Vec<(String, String)> = Vec::new();
    if !args.files.is_empty() {
        for l in load::load(&args.files)?.objects() {
            let obj = with_tenant(l.object.clone(), global);
            if obj.as_application().is_some() {
                targets.push((obj.metadata().tenant().to_string(), obj.name().to_string()));
            } else {
                eprintln!(
                    "{}: {} {} is kept (only applications and entities are deleted)",
                    l.file,
                    obj.kind(),
                    obj.name()
                );
            }
        }
    }
    targets.extend(args.names.iter().map(|n| (global.tenant.clone(), n.clone())));
    if targets.is_empty() {
        anyhow::bail!("nothing to delete: give names or -f FILE");
    }
    for (tenant, name) in &targets {
        let _: AppView = client.delete(&format!("/v1/apps/{tenant}/{name}")).await?;
        println!("application/{name} deleting");
    }
    if args.wait {
        let deadline = tokio::time::Instant::now() + args.timeout.timeout;
        for (tenant, name) in &targets {
            wait_deleted(client, tenant, name, deadline).await?;
            println!("application/{name} deleted");
        }
    }
    Ok(())
}
