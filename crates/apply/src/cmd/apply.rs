//! `fosctl apply`: send manifests to the API (server-side apply), show what changes and where things go, optionally
//! wait for them to run (progress on a terminal), and prune what a directory no longer holds (every kind).

use std::path::Path;

use clap::Args;
use fos_api::wire::{AppPlan, ApplyRequest, ApplyResponse, Change, SOURCE_ANNOTATION};
use fos_api::{Object, ObjectKind};

use super::load::{self, locate, Manifests};
use super::wait::{wait_deleted, wait_running, Progress};
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
    /// Delete what was applied earlier from the same files/directory and they no longer contain (applications,
    /// networks, images, plugins); a network or image still in use refuses the apply.
    #[arg(long)]
    prune: bool,
}

/// `obj` in the tenant of `--tenant` unless it names one.
pub fn with_tenant(mut obj: Object, global: &Global) -> Object {
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

/// Sends `manifests` to `POST /v1/apply` (stamped with the prune source when pruning).
pub async fn send(
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
                let md = match &mut obj {
                    Object::Application(o) => &mut o.metadata,
                    Object::Entity(o) => &mut o.metadata,
                    Object::Network(o) => &mut o.metadata,
                    Object::Plugin(o) => &mut o.metadata,
                    Object::Image(o) => &mut o.metadata,
                    Object::Node(o) => &mut o.metadata,
                    Object::Secret(o) => &mut o.metadata,
                };
                md.annotations.insert(SOURCE_ANNOTATION.into(), src.clone());
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
        let progress = Progress::new();
        for l in manifests.objects() {
            if l.object.as_application().is_some() {
                let obj = with_tenant(l.object.clone(), global);
                wait_running(client, obj.metadata().tenant(), obj.name(), deadline, &progress).await?;
            }
        }
        let pruned = resp
            .changes
            .iter()
            .filter(|c| c.change == Change::Deleted && matches!(c.kind, ObjectKind::Application | ObjectKind::Entity));
        for c in pruned {
            let tenant = c.tenant.clone().unwrap_or_else(|| global.tenant.clone());
            wait_deleted(client, &tenant, &c.name, deadline).await?;
        }
    }
    Ok(())
}
