//! `fosctl`, the fos command-line client: a thin dispatcher over the subcommands in the `fos_apply` library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fos_apply::manifest_cmd::ManifestCommand;

/// fosctl: apply, inspect and check fos applications.
#[derive(Parser)]
#[command(name = "fosctl", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check and convert manifest files offline.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Plan an application offline against a file of nodes: where each instance goes, or why it cannot.
    Plan(fos_apply::plan_cmd::PlanArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    match cli.command {
        Command::Manifest(cmd) => cmd.run(&mut out, &mut err),
        Command::Plan(args) => ExitCode::from(fos_apply::plan_cmd::plan(&args, &mut out, &mut err)),
    }
}
