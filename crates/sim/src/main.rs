//! `fos-sim --nodes N --entities M [--etcd URL,…] [--kill-share 0.1]`: runs N simulated nodes against the real
//! controller, applies M instances and prints what it measured; the last line reads `all M Running in X.XX s`.

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use fos_sim::figures::{self, Figure};
use fos_sim::measure::percentile;
use fos_sim::run::{simulate, Report, SimOptions};

/// Runs many simulated fos nodes in one process against the real controller and store.
#[derive(Debug, Parser)]
#[command(name = "fos-sim", version)]
struct Args {
    /// Simulated nodes.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Instances to run (applications of five: db, api, two web replicas, a cache or a sensor).
    #[arg(long, default_value_t = 1000)]
    entities: usize,
    /// etcd endpoints (comma-separated); the embedded store when absent.
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
    /// Share of the nodes to kill (as a crash does) once everything runs, then wait for their instances elsewhere.
    #[arg(long, default_value_t = 0.0)]
    kill_share: f64,
    /// Applications per apply request.
    #[arg(long, default_value_t = 100)]
    apps_per_apply: usize,
    /// Seconds to wait for everything to run (and to run again after the kill).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Seconds a node may go without a heartbeat before it is lost (as `fosd --node-lost-after`).
    #[arg(long, default_value_t = 20)]
    node_lost_after: u64,
    /// Directory for the embedded store and the nodes' data (a temporary one when absent).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.nodes > 0, "--nodes must be at least 1");
    anyhow::ensure!((0.0..=1.0).contains(&args.kill_share), "--kill-share must be between 0 and 1");
    tracing_subscriber_init();
    let opts = SimOptions {
        nodes: args.nodes,
        entities: args.entities,
        etcd: args.etcd,
        kill_share: args.kill_share,
        apps_per_apply: args.apps_per_apply,
        timeout: Duration::from_secs(args.timeout),
        node_lost_after: Duration::from_secs(args.node_lost_after),
    };
    let temp = tempfile::tempdir().context("a temporary directory")?;
    let dir = args.data_dir.unwrap_or_else(|| temp.path().to_path_buf());
    let controller =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("fos-ctl").enable_all().build()?;
    let agents =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("fos-agents").enable_all().build()?;
    let report = agents.block_on(simulate(&opts, &dir, controller.handle().clone()));
    agents.shutdown_timeout(Duration::from_secs(5));
    controller.shutdown_timeout(Duration::from_secs(5));
    let report = report?;
    record(&report, &opts);
    println!("{report}");
    if report.all_running.is_none() {
        std::process::exit(1);
    }
    Ok(())
}

/// Warnings and errors on standard error (`RUST_LOG` overrides).
fn tracing_subscriber_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
}

/// Appends the run's figures to the benchmark results (`FOS_BENCH_RESULTS`).
fn record(report: &Report, opts: &SimOptions) {
    let scale = format!("{} over {} nodes, {}", report.instances, report.nodes, report.store);
    let goal = if opts.etcd.is_empty() { "≤ 5 s" } else { "≤ 10 s" };
    if let Some(d) = report.all_running {
        let figure = format!("fos-sim: all Running ({scale})");
        figures::record(Figure { figure: &figure, value: d.as_secs_f64(), unit: "s", goal, reference: String::new() });
    }
    let figure = format!("fos-sim: apply → Running p50 / p99 ({scale})");
    let p99 = percentile(&report.latencies, 99.0).as_secs_f64() * 1e3;
    figures::record(Figure {
        figure: &figure,
        value: percentile(&report.latencies, 50.0).as_secs_f64() * 1e3,
        unit: "ms",
        goal: "",
        reference: format!("p99 {p99:.0} ms"),
    });
    let figure = format!("fos-sim: peak RSS, controller and every agent in one process ({scale})");
    figures::record(Figure {
        figure: &figure,
        value: report.peak_rss_mib,
        unit: "MiB",
        goal: "controller ≤ 300 MiB",
        reference: String::new(),
    });
    let figure = format!("fos-sim: controller store operations per instance ({scale})");
    let agents = report.agent_store_ops as f64 / report.instances.max(1) as f64;
    figures::record(Figure {
        figure: &figure,
        value: report.controller_ops_per_instance(),
        unit: "ops",
        goal: "≤ 3",
        reference: format!("agents {agents:.2}"),
    });
    if let Some((killed, moved, Some(d))) = report.recovery {
        let figure = format!("fos-sim: {killed} nodes killed, {moved} instances running again ({scale})");
        figures::record(Figure {
            figure: &figure,
            value: d.as_secs_f64(),
            unit: "s",
            goal: "≤ node-lost-after + 5 s",
            reference: String::new(),
        });
    }
}
