//! `fosd`, the fos daemon run on every node: the API server, the controller (leader-elected), the node agent, and
//! the embedded store, each a role that can be switched off. Logs through `tracing`; stops cleanly on SIGTERM.

mod logs;
mod options;
mod roles;

use clap::Parser;

fn main() {
    let opts = options::Options::parse();
    if let Err(e) = options::init_logging(&opts) {
        eprintln!("fosd: {e:#}");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let result = match runtime {
        Ok(rt) => rt.block_on(roles::run(opts)),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        tracing::error!("{e:#}");
        eprintln!("fosd: {e:#}");
        std::process::exit(1);
    }
}
