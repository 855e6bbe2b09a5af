//! `fosctl plan -f APP --nodes NODES.yaml`: plans applications offline against a file of Node objects (the format
//! `fosctl get nodes -o yaml` prints), for CI pipelines and what-if questions. Prints where each instance would
//! go and the start order, or, for what does not fit, every node's reason and the smallest relaxation. Exit 0 when
//! everything is placed, 3 when something is unschedulable.

use std::io::Write;

use clap::{Args, ValueEnum};
use fos_api::manifest::Object;
use fos_api::Node;
use fos_scheduler::{place_application, AllocationStrategy, ClusterSnapshot, Options, Plan};
use serde::Serialize;

use crate::load::load_paths;
use crate::manifest_cmd::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::render::render_all;

/// Exit status: some instance could not be placed (the explanation is printed).
pub const EXIT_UNSCHEDULABLE: u8 = 3;

/// How the plan is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    /// A table of placements, the start order and the explanations.
    #[default]
    Table,
    /// JSON: a list of `{application, tenant, plan}`.
    Json,
    /// YAML: the same as JSON.
    Yaml,
}

/// Arguments of `fosctl plan`.
#[derive(Debug, Args)]
#[command(after_help = "Exit status: 0 everything placed, 3 something unschedulable (explained), 1 invalid \
manifests, 2 usage error.\n\nExamples:\n  \
fosctl plan -f manifests/scenarios/db-web.app.yaml --nodes manifests/scenarios/db-web.nodes.yaml\n  \
fosctl plan -f app.yaml --nodes nodes.yaml -o json --seed 7")]
pub struct PlanArgs {
    /// Application or entity manifests (files, directories, or `-` for standard input).
    #[arg(short = 'f', long = "file", required = true, value_name = "APP")]
    pub files: Vec<String>,
    /// Node manifests (`kind: Node`) to plan against.
    #[arg(long, required = true, value_name = "NODES")]
    pub nodes: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Seed of the tie-breaking hash (the same seed and input give the same plan).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Pack instances onto as few nodes as possible instead of spreading load.
    #[arg(long)]
    pub bin_pack: bool,
}

/// One application's plan, as printed by `-o json|yaml`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppPlan {
    /// The application.
    pub application: String,
    /// Its tenant.
    pub tenant: String,
    /// Its plan.
    pub plan: Plan,
}

/// `fosctl plan`: returns the exit status.
pub fn plan(args: &PlanArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let mut paths = args.files.clone();
    paths.extend(args.nodes.iter().cloned());
    let loaded = match load_paths(&paths) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(err, "fosctl: {e}");
            return EXIT_USAGE;
        }
    };
    let diagnostics = loaded.all_diagnostics();
    if !diagnostics.is_empty() {
        let _ = write!(err, "{}", render_all(&diagnostics, &loaded.sources));
        return EXIT_INVALID;
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut apps = Vec::new();
    for o in loaded.objects() {
        match &o {
            Object::Node(n) => nodes.push((**n).clone()),
            _ => apps.extend(o.as_application().map(std::borrow::Cow::into_owned)),
        }
    }
    if apps.is_empty() {
        let _ = writeln!(err, "fosctl: no Application or Entity in {}", args.files.join(" "));
        return EXIT_USAGE;
    }
    if nodes.is_empty() {
        let _ = writeln!(err, "fosctl: no Node in {}; planning against an empty cluster", args.nodes.join(" "));
    }
    let mut snapshot = match ClusterSnapshot::new(nodes, []) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "fosctl: {e}");
            return EXIT_INVALID;
        }
    };
    let options = Options {
        seed: args.seed,
        strategy: if args.bin_pack { AllocationStrategy::MostAllocated } else { AllocationStrategy::LeastAllocated },
        ..Options::default()
    };
    let mut plans = Vec::new();
    for app in &apps {
        let tenant = app.metadata.tenant().to_string();
        match place_application(&snapshot, &tenant, &app.metadata.name, &app.spec, &[], &options) {
            Ok(p) => {
                // Later applications of the same plan see what earlier ones take.
                snapshot.commit(&p);
                plans.push(AppPlan { application: app.metadata.name.clone(), tenant, plan: p });
            }
            Err(e) => {
                let _ = writeln!(err, "fosctl: application `{}`: {e}", app.metadata.name);
                return EXIT_INVALID;
            }
        }
    }
    let complete = plans.iter().all(|p| p.plan.is_complete());
    let printed = match args.output {
        OutputFormat::Table => {
            let mut text = String::new();
            for p in &plans {
                if plans.len() > 1 {
                    text.push_str(&format!("application {}/{}\n", p.tenant, p.application));
                }
                text.push_str(&p.plan.to_string());
            }
            Ok(text)
        }
        OutputFormat::Json => serde_json::to_string_pretty(&plans).map(|s| s + "\n").map_err(|e| e.to_string()),
        OutputFormat::Yaml => serde_yaml_ng::to_string(&plans).map_err(|e| e.to_string()),
    };
    match printed {
        Ok(text) => {
            let _ = write!(out, "{text}");
        }
        Err(e) => {
            let _ = writeln!(err, "fosctl: {e}");
            return EXIT_INVALID;
        }
    }
    if complete {
        return EXIT_OK;
    }
    if args.output != OutputFormat::Table {
        for p in &plans {
            for u in &p.plan.unschedulable {
                let _ = writeln!(err, "{}: {u}", p.application);
            }
        }
    }
    EXIT_UNSCHEDULABLE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(name: &str) -> (String, String) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../manifests/scenarios");
        (format!("{dir}/{name}.app.yaml"), format!("{dir}/{name}.nodes.yaml"))
    }

    fn run(name: &str, output: OutputFormat) -> (u8, String, String) {
        let (app, nodes) = scenario(name);
        let args = PlanArgs { files: vec![app], nodes: vec![nodes], output, seed: 0, bin_pack: false };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = plan(&args, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn a_plan_that_fits_exits_0_with_a_table() {
        let (code, out, err) = run("db-web", OutputFormat::Table);
        assert_eq!(code, EXIT_OK, "{err}");
        assert!(out.starts_with("INSTANCE"), "{out}");
        assert!(out.contains("db-0      db-1"), "{out}");
        assert!(out.contains("start order:\n  1. db\n  2. web\n"), "{out}");
    }

    #[test]
    fn an_unschedulable_plan_exits_3_and_explains() {
        let (code, out, _) = run("gpu-node", OutputFormat::Table);
        assert_eq!(code, EXIT_UNSCHEDULABLE);
        assert!(out.contains("inference: 1 of 2 replicas placed; no node for inference-1"), "{out}");
        assert!(out.contains("gpu-1: needs 1 cuda, has 0 free of 1"), "{out}");
        assert!(out.contains("to place it: ask for 1 replica"), "{out}");
    }

    #[test]
    fn json_and_yaml_carry_the_plan_and_the_explanation_goes_to_stderr() {
        let (code, out, err) = run("gpu-node", OutputFormat::Json);
        assert_eq!(code, EXIT_UNSCHEDULABLE);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["application"], "video-analytics");
        assert_eq!(v[0]["plan"]["placements"][0]["devices"]["accelerators"][0], "gpu0");
        assert_eq!(v[0]["plan"]["unschedulable"][0]["reasons"][0]["rejection"]["reason"], "accelerators");
        assert!(err.contains("needs 1 cuda"), "{err}");
        let (code, out, _) = run("arm-cameras", OutputFormat::Yaml);
        assert_eq!(code, EXIT_OK);
        let v: serde_json::Value = serde_yaml_ng::from_str(&out).unwrap();
        assert_eq!(v[0]["plan"]["placements"].as_array().unwrap().len(), 6);
    }

    #[test]
    fn an_invalid_manifest_is_reported_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app.yaml");
        std::fs::write(&app, "apiVersion: fos/v1\nkind: Application\nmetadata: {name: a}\nspec:\n  components:\n    - name: c\n      need: [ghost]\n      entity: {kind: native, command: [x]}\n").unwrap();
        let (_, nodes) = scenario("db-web");
        let args = PlanArgs {
            files: vec![app.display().to_string()],
            nodes: vec![nodes],
            output: OutputFormat::Table,
            seed: 0,
            bin_pack: false,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = plan(&args, &mut out, &mut err);
        let err = String::from_utf8(err).unwrap();
        assert_eq!(code, EXIT_INVALID, "{err}");
        assert!(err.contains("app.yaml:7:"), "{err}");
    }
}
