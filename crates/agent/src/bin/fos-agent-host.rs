//! A process hosting only the node agent on an embedded store, for restart-safety tests and the agent benchmark:
//! `fos-agent-host --store DIR --config node.yaml [--instances N --command ARGV...] [--print]`.
//!
//! With `--instances N` it creates N desired native instances (`host-<i>.bench.default`, running `--command`)
//! unless they exist. With `--print` it prints every actual instance record as one JSON line. It runs until SIGTERM
//! or SIGINT.

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;

use fos_agent::{Agent, AgentConfig, NodeConfig};
use fos_api::manifest::EntitySpec;
use fos_api::record::{DesiredInstance, InstanceId};
use fos_api::Keys;
use fos_store::records::DesiredInstances;
use fos_store::{EmbeddedConfig, EmbeddedStore, EventKind, Records, Store, Txn};
use futures::StreamExt;
use tokio::signal::unix::{signal, SignalKind};

struct Args {
    store: PathBuf,
    config: PathBuf,
    instances: u32,
    command: Vec<String>,
    print: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { store: PathBuf::new(), config: PathBuf::new(), instances: 0, command: vec![], print: false };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--store" => args.store = it.next().ok_or("--store DIR")?.into(),
            "--config" => args.config = it.next().ok_or("--config FILE")?.into(),
            "--instances" => args.instances = it.next().ok_or("--instances N")?.parse().map_err(|_| "--instances N")?,
            "--print" => args.print = true,
            "--command" => args.command = it.by_ref().collect(),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.store.as_os_str().is_empty() || args.config.as_os_str().is_empty() {
        return Err(
            "usage: fos-agent-host --store DIR --config FILE [--instances N] [--print] [--command ARGV...]".into()
        );
    }
    if args.command.is_empty() {
        args.command = vec!["sleep".into(), "3600".into()];
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run(args))
}

async fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let node = NodeConfig::load(&args.config)?;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(&args.store))?);
    let records = Records::new(store.clone(), Keys::new(node.system()));
    let agent = Agent::start(AgentConfig::new(node), store.clone()).await?;
    let name = agent.node().to_string();
    for i in 0..args.instances {
        let id = InstanceId::new("default", "bench", "host", i);
        let desired = DesiredInstance::new(id.clone(), name.clone(), EntitySpec::native(args.command.iter().cloned()));
        // Written as the controller would, unless it exists.
        let on_node = (name.clone(), id);
        let put = records.put_op::<DesiredInstances>(&on_node, &desired)?;
        let compare = vec![records.absent::<DesiredInstances>(&on_node)];
        store.txn(Txn { compare, success: vec![put], failure: vec![] }).await?;
    }
    println!("started {name}");
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let printer = async {
        if !args.print {
            return std::future::pending::<()>().await;
        }
        let prefix = records.keys().actual_instances_prefix(&name);
        let Ok(mut stream) = store.watch(&prefix, 0).await else { return std::future::pending().await };
        for kv in store.list(&prefix).await.map(|l| l.kvs).unwrap_or_default() {
            println!("{}", String::from_utf8_lossy(&kv.value));
        }
        while let Some(Ok(ev)) = stream.next().await {
            match ev.kind {
                EventKind::Put => println!("{}", String::from_utf8_lossy(&ev.kv.value)),
                EventKind::Delete => println!("{{\"deleted\":\"{}\"}}", ev.kv.key),
            }
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = printer => {}
    }
    agent.shutdown().await;
    Ok(())
}
