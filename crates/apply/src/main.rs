//! `fosctl`, the fos command-line client.

use clap::Parser;

/// fosctl: apply, inspect and check fos applications.
#[derive(Parser)]
#[command(name = "fosctl", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
