//! `fosctl`, the fos command-line client: a thin dispatcher over the command modules.

mod client;
mod cmd;

use clap::{CommandFactory, Parser, Subcommand};

/// fosctl: apply, inspect and check fos applications.
#[derive(Parser)]
#[command(name = "fosctl", version, about)]
struct Cli {
    #[command(flatten)]
    global: cmd::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Client(cmd::ClientCommand),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Client(c) => cmd::run(&cli.global, c, Cli::command),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(cmd::exit_code(&e));
    }
}
