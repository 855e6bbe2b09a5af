//! `fosctl manifest check` (validate manifests offline, every error with its position) and `fosctl manifest
//! convert` (print the fos/v1 YAML of a manifest, e.g. one in the fog05 format).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use fos_api::manifest::{Object, ObjectKind};

use crate::load::{load_paths, Loaded};
use crate::render::render_all;
use crate::source::{Diagnostic, LoadedObject};

/// Exit status: every manifest is valid.
pub const EXIT_OK: u8 = 0;
/// Exit status: some manifest is wrong (every error printed).
pub const EXIT_INVALID: u8 = 1;
/// Exit status: the command line is wrong (a path does not exist, …).
pub const EXIT_USAGE: u8 = 2;

/// Work with manifest files offline.
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Check manifests: syntax, shape and every validation rule, all errors at once as FILE:LINE:COL: message.
    #[command(after_help = "Exit status: 0 all valid, 1 errors found, 2 usage error.\n\nExamples:\n  \
        fosctl manifest check examples/wordpress\n  fosctl manifest check -n net.json\n  \
        cat app.yaml | fosctl manifest check -")]
    Check(CheckArgs),
    /// Print a manifest (fos/v1 or fog05 JSON) as fos/v1 YAML, after checking it.
    #[command(after_help = "Example:\n  fosctl manifest convert manifests/seeds/cirros-entity.json")]
    Convert(ConvertArgs),
}

/// Arguments of `fosctl manifest check`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("expect").args(["network", "entity", "application"])))]
pub struct CheckArgs {
    /// Expect network manifests only.
    #[arg(short = 'n', long)]
    pub network: bool,
    /// Expect entity manifests only.
    #[arg(short = 'e', long)]
    pub entity: bool,
    /// Expect application manifests only.
    #[arg(short = 'a', long)]
    pub application: bool,
    /// Files, directories (searched recursively for .yaml, .yml and .json) or `-` for standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
}

/// Arguments of `fosctl manifest convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The manifest file, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: String,
}

impl ManifestCommand {
    /// Runs the command, printing results on `out` and errors on `err`; returns the exit status.
    pub fn run(&self, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode {
        ExitCode::from(match self {
            ManifestCommand::Check(a) => check(a, out, err),
            ManifestCommand::Convert(a) => convert(a, out, err),
        })
    }
}

fn load_or_report(paths: &[String], err: &mut dyn Write) -> Result<Loaded, u8> {
    load_paths(paths).map_err(|e| {
        let _ = writeln!(err, "fosctl: {e}");
        EXIT_USAGE
    })
}

fn report(diagnostics: &[Diagnostic], loaded: &Loaded, err: &mut dyn Write) -> u8 {
    let _ = write!(err, "{}", render_all(diagnostics, &loaded.sources));
    let files = diagnostics.iter().map(|d| d.file.as_str()).collect::<std::collections::BTreeSet<_>>().len();
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    let _ = writeln!(err, "\n{} in {}", plural(diagnostics.len(), "error"), plural(files, "file"));
    EXIT_INVALID
}

/// `fosctl manifest check`.
pub fn check(args: &CheckArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let loaded = match load_or_report(&args.paths, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let expected = if args.network {
        Some(ObjectKind::Network)
    } else if args.entity {
        Some(ObjectKind::Entity)
    } else if args.application {
        Some(ObjectKind::Application)
    } else {
        None
    };
    let mut diagnostics = loaded.all_diagnostics();
    if let Some(kind) = expected {
        diagnostics.extend(wrong_kinds(&loaded.objects, kind));
    }
    if loaded.sources.is_empty() {
        let _ = writeln!(err, "fosctl: no manifest files (.yaml, .yml, .json) under {}", args.paths.join(" "));
        return EXIT_USAGE;
    }
    if !diagnostics.is_empty() {
        return report(&diagnostics, &loaded, err);
    }
    let mut kinds: BTreeMap<ObjectKind, usize> = BTreeMap::new();
    for o in &loaded.objects {
        *kinds.entry(o.object.kind()).or_default() += 1;
    }
    let summary = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ");
    let files = loaded.sources.len();
    let _ = writeln!(
        out,
        "ok: {} object{} in {files} file{} valid ({summary})",
        loaded.objects.len(),
        if loaded.objects.len() == 1 { "" } else { "s" },
        if files == 1 { "" } else { "s" },
    );
    EXIT_OK
}

/// Objects not of the expected kind (a Network converted from the same document as an expected object, such as an
/// entity's bridge, is allowed).
fn wrong_kinds(objects: &[LoadedObject], kind: ObjectKind) -> Vec<Diagnostic> {
    let companion = |l: &LoadedObject| {
        l.object.kind() == ObjectKind::Network
            && objects.iter().any(|o| o.file == l.file && o.document == l.document && o.object.kind() == kind)
    };
    objects
        .iter()
        .filter(|l| l.object.kind() != kind && !companion(l))
        .map(|l| {
            l.diagnostic(
                "",
                format!("expected {kind} manifests only, found {} `{}`", l.object.kind(), l.object.name()),
                None,
            )
        })
        .collect()
}

/// `fosctl manifest convert`.
pub fn convert(args: &ConvertArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let loaded = match load_or_report(std::slice::from_ref(&args.file), err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let diagnostics = loaded.all_diagnostics();
    if !diagnostics.is_empty() {
        return report(&diagnostics, &loaded, err);
    }
    match to_yaml(&loaded.objects()) {
        Ok(text) => {
            let _ = write!(out, "{text}");
            EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(err, "fosctl: {e}");
            EXIT_INVALID
        }
    }
}

/// The objects as fos/v1 YAML documents, fields in declaration order.
pub fn to_yaml(objects: &[Object]) -> Result<String, serde_yaml_ng::Error> {
    use serde_yaml_ng::{Mapping, Value};
    let mut docs = Vec::new();
    for o in objects {
        let body = match o {
            Object::Application(x) => serde_yaml_ng::to_value(x)?,
            Object::Entity(x) => serde_yaml_ng::to_value(x)?,
            Object::Network(x) => serde_yaml_ng::to_value(x)?,
            Object::Plugin(x) => serde_yaml_ng::to_value(x)?,
            Object::Image(x) => serde_yaml_ng::to_value(x)?,
            Object::Node(x) => serde_yaml_ng::to_value(x)?,
            Object::Secret(x) => serde_yaml_ng::to_value(x)?,
        };
        let mut map = Mapping::new();
        map.insert("apiVersion".into(), fos_api::API_VERSION.into());
        map.insert("kind".into(), o.kind().as_str().into());
        if let Value::Mapping(fields) = body {
            map.extend(fields);
        }
        docs.push(serde_yaml_ng::to_string(&Value::Mapping(map))?);
    }
    Ok(docs.join("---\n"))
}
