//! `fosd`, the fos daemon run on every node: the API server, the controller (leader-elected), the node agent, and
//! the embedded store, each a role that can be switched off. Logs through `tracing`; stops cleanly on SIGTERM.

mod advertise;
mod bootstrap;
mod images;
mod logs;
mod migration;
mod options;
mod pki;
mod roles;

use clap::Parser;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(fos_agent::fence_guard::GUARD_ARG) {
        // The node's fence guard (started by the agent, outliving it).
        if let Err(e) = fos_agent::fence_guard::run(&args[2..]) {
            eprintln!("fosd fence guard: {e}");
            std::process::exit(2);
        }
        return;
    }
    let opts = options::Options::parse();
    if let Err(e) = options::init_logging(&opts) {
        eprintln!("fosd: {e:#}");
        std::process::exit(2);
    }
    raise_file_limit();
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

/// Raises the open-file soft limit to the hard limit (the API's connection cap is derived from it).
fn raise_file_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid pointer for both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
