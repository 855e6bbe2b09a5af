//! `fosctl`, the fos command-line client: a thin dispatcher over the `manifest` subcommands of the `fos_apply`
//! library and the API-client commands of [`cmd`].

mod client;
mod cmd;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use fos_apply::manifest_cmd::ManifestCommand;

/// fosctl: apply, inspect and check fos applications.
#[derive(Parser)]
#[command(name = "fosctl", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: cmd::Global,
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
    #[command(flatten)]
    Client(cmd::ClientCommand),
}

/// A closed pipe ends `fosctl` quietly, as it does `cat` or `grep` (`fosctl get entities | head -1`): the default
/// action of SIGPIPE is restored, which Rust's runtime turns into an error that `println!` panics on.
fn quiet_pipes() {
    // SAFETY: setting a signal's disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    quiet_pipes();
    let cli = Cli::parse();
    match cli.command {
        Command::Manifest(cmd) => {
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            cmd.run(&mut out, &mut err)
        }
        Command::Plan(args) => {
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            ExitCode::from(fos_apply::plan_cmd::plan(&args, &mut out, &mut err))
        }
        Command::Client(c) => match cmd::run(&cli.global, c, Cli::command) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(cmd::exit_code(&e))
            }
        },
    }
}
