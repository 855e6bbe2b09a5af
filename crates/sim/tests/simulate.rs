//! A small simulation end to end: real agents with given node descriptions and the simulated runtime, the real
//! controller, the embedded store: every instance runs, on a node that satisfies its constraints.

use std::time::Duration;

use fos_sim::run::{simulate, SimOptions};

#[test]
fn every_instance_runs_on_a_node_that_can_hold_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let opts = SimOptions {
        nodes: 30,
        entities: 105,
        etcd: Vec::new(),
        kill_share: 0.0,
        apps_per_apply: 5,
        timeout: Duration::from_secs(60),
        node_lost_after: Duration::from_secs(20),
    };
    let controller = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("fos-ctl")
        .enable_all()
        .build()
        .expect("controller runtime");
    let agents = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let report = agents.block_on(simulate(&opts, dir.path(), controller.handle().clone())).expect("simulation");
    assert_eq!(report.instances, 105);
    assert!(report.all_running.is_some(), "only {} of 105 ran:\n{report}", report.running);
    assert_eq!(report.latencies.len(), 105, "one apply → Running figure per instance");
    assert!(report.controller_store_ops > 0 && report.agent_store_ops > 0, "store operations are counted");
    assert!(report.controller_cpu > Duration::ZERO, "the controller's threads are measured");
    assert!(report.to_string().lines().last().is_some_and(|l| l.starts_with("all 105 Running in ")));
    for (id, node) in &report.placements {
        let n: usize = node.trim_start_matches("sim-").parse().expect("a simulated node name");
        match id.component.as_str() {
            "sensor" => assert!(n.is_multiple_of(7), "{id} holds a GPIO line but runs on {node}, which has none"),
            "cache" if id.app.trim_start_matches("app-").parse::<usize>().is_ok_and(|a| a.is_multiple_of(3)) => {
                assert!(n.is_multiple_of(5), "{id} must run on aarch64, runs on {node}")
            }
            _ => {}
        }
    }
    agents.shutdown_timeout(Duration::from_secs(5));
    controller.shutdown_timeout(Duration::from_secs(5));
}
