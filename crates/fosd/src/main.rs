//! `fosd`, the fos daemon run on every node.

use clap::Parser;

/// fosd: the fos node daemon.
#[derive(Parser)]
#[command(name = "fosd", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
