//! The native runtime against real processes: the lifecycle steps, process groups, env, setup, pause, cgroups.

use std::time::Duration;

use fos_agent::runtime::native::{process, NativeConfig, NativeRuntime};
use fos_agent::runtime::{NodeLayout, RunState, Runtime};
use fos_api::lifecycle::State;
use fos_api::manifest::EntitySpec;
use fos_api::record::{DesiredInstance, InstanceId};

fn desired(name: &str, argv: &[&str]) -> DesiredInstance {
    DesiredInstance::new(InstanceId::new("default", "test", name, 0), "n1", EntitySpec::native(argv.iter().copied()))
}

fn config() -> NativeConfig {
    NativeConfig { stop_grace: Duration::from_secs(2), ..NativeConfig::default() }
}

/// The node's layout under `dir`, with the machine's cgroups.
fn layout(dir: &std::path::Path) -> NodeLayout {
    NodeLayout::detect(dir, true)
}

async fn running_pid(rt: &NativeRuntime, id: &InstanceId) -> u32 {
    match rt.status(id).await.unwrap() {
        RunState::Running { pid, .. } => pid,
        other => panic!("not running: {other:?}"),
    }
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test]
async fn full_lifecycle_leaves_no_process_and_no_files() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let rt = NativeRuntime::new(config(), layout.clone()).unwrap();
    // A main process with a child in its group: both must be gone after stop.
    let d = desired("group", &["/bin/sh", "-c", "sleep 300 & exec sleep 301"]);
    rt.define(&layout.context(&d), &d).await.unwrap();
    rt.configure(&layout.context(&d), &d).await.unwrap();
    let work = rt.work_dir(&d.id).unwrap();
    assert!(work.is_dir(), "working dir made at configure");
    rt.run(&layout.context(&d), &d).await.unwrap();
    let pid = running_pid(&rt, &d.id).await;
    wait_for(|| std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim() == "sleep").unwrap_or(false))
        .await;
    assert!(process::group_alive(pid as i32));
    rt.stop(&layout.context(&d)).await.unwrap();
    assert_eq!(rt.status(&d.id).await.unwrap(), RunState::Idle);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "main process gone and reaped (no zombie)");
    assert!(!process::group_alive(pid as i32), "no orphan left in its process group");
    rt.clean(&layout.context(&d)).await.unwrap();
    assert!(!work.exists(), "working dir removed at clean");
    rt.undefine(&layout.context(&d)).await.unwrap();
    assert!(!tmp.path().join("native").join(d.id.to_string()).exists());
    assert!(rt.status(&d.id).await.is_err(), "undefined");
}

#[tokio::test]
async fn env_holds_the_entity_and_injected_variables_and_setup_runs_once() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let rt = NativeRuntime::new(config(), layout.clone()).unwrap();
    let mut d = desired("env", &["/bin/sh", "-c", "echo \"$GREETING $FOS_NEED_DB_HOST $FOS_NEED_DB_NODE\"; pwd"]);
    d.entity.env.insert("GREETING".into(), "hello".into());
    d.env.insert("FOS_NEED_DB_HOST".into(), "192.0.2.7".into());
    d.env.insert("FOS_NEED_DB_NODE".into(), "n2".into());
    d.entity.setup = vec![vec!["/bin/sh".into(), "-c".into(), "echo x >> setup-count".into()]];
    d.entity.restart = fos_api::manifest::RestartPolicy::Never;
    rt.define(&layout.context(&d), &d).await.unwrap();
    rt.configure(&layout.context(&d), &d).await.unwrap();
    let work = rt.work_dir(&d.id).unwrap();
    let mut rx = rt.subscribe(&d.id).unwrap();
    rt.run(&layout.context(&d), &d).await.unwrap();
    rx.wait_for(|s| matches!(s, RunState::Exited { .. })).await.unwrap();
    assert!(matches!(rt.status(&d.id).await.unwrap(), RunState::Exited { status: Some(0), .. }));
    let out = rt.logs(&layout.context(&d), 10).await.unwrap();
    assert_eq!(out, format!("hello 192.0.2.7 n2\n{}\n", work.display()));
    assert_eq!(std::fs::read_to_string(work.join("setup-count")).unwrap(), "x\n");
    // Stopped then configured again from a clean state: setup runs again; a failing setup step fails configure.
    rt.stop(&layout.context(&d)).await.unwrap();
    rt.clean(&layout.context(&d)).await.unwrap();
    d.entity.setup.push(vec!["false".into()]);
    let err = rt.configure(&layout.context(&d), &d).await.unwrap_err();
    assert!(err.to_string().contains("setup command `false` failed"), "{err}");
    // A retried configure does not repeat the step that succeeded.
    d.entity.setup.pop();
    rt.configure(&layout.context(&d), &d).await.unwrap();
    assert_eq!(std::fs::read_to_string(work.join("setup-count")).unwrap(), "x\n");
    rt.clean(&layout.context(&d)).await.unwrap();
    rt.undefine(&layout.context(&d)).await.unwrap();
}

#[tokio::test]
async fn a_cancelled_configure_kills_everything_its_setup_started() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let rt = NativeRuntime::new(config(), layout.clone()).unwrap();
    let mut d = desired("cancel", &["sleep", "300"]);
    // The shell's child would write `late` a second after the cancel; the first configure is dropped (as the driver
    // does on a change of the desired record) once that child runs.
    d.entity.setup =
        vec![vec!["/bin/sh".into(), "-c".into(), "(sleep 1; echo late > late) & echo $! > child; wait".into()]];
    rt.define(&layout.context(&d), &d).await.unwrap();
    let work = rt.work_dir(&d.id).unwrap();
    let child = || std::fs::read_to_string(work.join("child")).ok().and_then(|s| s.trim().parse::<u32>().ok());
    let cx = layout.context(&d);
    tokio::select! {
        r = rt.configure(&cx, &d) => panic!("setup finished first: {r:?}"),
        () = wait_for(|| child().is_some()) => {}
    }
    let pid = child().unwrap();
    wait_for(|| matches!(process::proc_state(pid), None | Some('Z'))).await;
    // The next configure runs setup again, from scratch, and nothing of the cancelled one writes afterwards.
    d.entity.setup = vec![vec!["/bin/sh".into(), "-c".into(), "echo again > again".into()]];
    rt.configure(&layout.context(&d), &d).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(work.join("again").exists());
    assert!(!work.join("late").exists(), "the cancelled setup's child was killed with it");
    rt.clean(&layout.context(&d)).await.unwrap();
    rt.undefine(&layout.context(&d)).await.unwrap();
}

#[tokio::test]
async fn pause_stops_the_process_and_resume_continues_it() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let rt = NativeRuntime::new(config(), layout.clone()).unwrap();
    let d = desired("pause", &["sleep", "300"]);
    rt.define(&layout.context(&d), &d).await.unwrap();
    rt.configure(&layout.context(&d), &d).await.unwrap();
    rt.run(&layout.context(&d), &d).await.unwrap();
    let pid = running_pid(&rt, &d.id).await;
    rt.pause(&layout.context(&d)).await.unwrap();
    // Frozen (freezer: D/S with the freezer state) or stopped (T): either way it no longer runs.
    let frozen = || rt.is_frozen(&d.id) || process::proc_state(pid) == Some('T');
    wait_for(frozen).await;
    rt.resume(&layout.context(&d)).await.unwrap();
    wait_for(|| !frozen()).await;
    rt.stop(&layout.context(&d)).await.unwrap();
    assert!(!process::group_alive(pid as i32));
    rt.clean(&layout.context(&d)).await.unwrap();
    rt.undefine(&layout.context(&d)).await.unwrap();
}

#[tokio::test]
async fn a_process_ignoring_sigterm_is_killed_after_the_grace_period() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let mut c = config();
    c.stop_grace = Duration::from_millis(200);
    let rt = NativeRuntime::new(c, layout.clone()).unwrap();
    let d = desired("stubborn", &["/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"]);
    rt.define(&layout.context(&d), &d).await.unwrap();
    rt.configure(&layout.context(&d), &d).await.unwrap();
    rt.run(&layout.context(&d), &d).await.unwrap();
    let pid = running_pid(&rt, &d.id).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    rt.stop(&layout.context(&d)).await.unwrap();
    assert!(!process::group_alive(pid as i32));
    rt.clean(&layout.context(&d)).await.unwrap();
    rt.undefine(&layout.context(&d)).await.unwrap();
}

#[tokio::test]
async fn memory_limit_is_set_in_the_cgroup_when_the_machine_has_one() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let rt = NativeRuntime::new(config(), layout.clone()).unwrap();
    let mut d = desired("limited", &["sleep", "300"]);
    d.entity.resources.memory = Some("64Mi".into());
    d.entity.resources.cpu = Some("250m".into());
    rt.define(&layout.context(&d), &d).await.unwrap();
    rt.configure(&layout.context(&d), &d).await.unwrap();
    rt.run(&layout.context(&d), &d).await.unwrap();
    let pid = running_pid(&rt, &d.id).await;
    if rt.cgroups().describe() != "no cgroups" {
        assert_eq!(rt.memory_limit(&d.id), Some(64 << 20));
        assert!(!rt.cgroup_dirs(&d.id).is_empty());
        assert!(rt.cgroup_pids(&d.id).contains(&(pid as i32)), "the process runs inside its cgroup");
    }
    rt.stop(&layout.context(&d)).await.unwrap();
    let dirs = rt.cgroup_dirs(&d.id);
    rt.clean(&layout.context(&d)).await.unwrap();
    assert!(rt.cgroup_dirs(&d.id).is_empty(), "cgroups removed");
    assert!(dirs.iter().all(|d| !d.exists()));
    rt.undefine(&layout.context(&d)).await.unwrap();
}

#[tokio::test]
async fn recover_adopts_a_live_process_and_notices_a_dead_one() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let (live, dead) = (desired("live", &["sleep", "300"]), desired("dead", &["sleep", "300"]));
    let (live_pid, dead_pid);
    {
        let rt = NativeRuntime::new(config(), layout.clone()).unwrap();
        for d in [&live, &dead] {
            rt.define(&layout.context(d), d).await.unwrap();
            rt.configure(&layout.context(d), d).await.unwrap();
            rt.run(&layout.context(d), d).await.unwrap();
        }
        live_pid = running_pid(&rt, &live.id).await;
        dead_pid = running_pid(&rt, &dead.id).await;
        process::signal_group(dead_pid as i32, libc::SIGKILL).unwrap();
        wait_for(|| !std::path::Path::new(&format!("/proc/{dead_pid}")).exists()).await;
    }
    let rt = NativeRuntime::new(config(), layout.clone()).unwrap();
    let mut found = rt.recover().await.unwrap();
    found.sort_by(|a, b| a.desired.id.cmp(&b.desired.id));
    assert_eq!(found.len(), 2);
    assert_eq!((found[0].desired.id.component.as_str(), found[0].state), ("dead", State::Configured));
    assert_eq!((found[1].desired.id.component.as_str(), found[1].state), ("live", State::Running));
    assert_eq!(found[1].pid, Some(live_pid), "same process, adopted");
    // The adopted process can be stopped like our own, and its exit is seen.
    rt.stop(&layout.context(&live)).await.unwrap();
    assert!(!process::group_alive(live_pid as i32));
    for d in [&live, &dead] {
        rt.clean(&layout.context(d)).await.unwrap();
        rt.undefine(&layout.context(d)).await.unwrap();
    }
}

#[tokio::test]
async fn output_is_rotated_by_size_while_the_process_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let mut c = config();
    c.log_max_bytes = 4096;
    c.log_keep = 2;
    c.log_check_interval = Duration::from_millis(20);
    let rt = NativeRuntime::new(c, layout.clone()).unwrap();
    let d =
        desired("chatty", &["/bin/sh", "-c", "while :; do echo 0123456789abcdef0123456789abcdef; sleep 0.001; done"]);
    rt.define(&layout.context(&d), &d).await.unwrap();
    rt.configure(&layout.context(&d), &d).await.unwrap();
    rt.run(&layout.context(&d), &d).await.unwrap();
    let logs = tmp.path().join("native").join(d.id.to_string()).join("logs");
    wait_for(|| logs.join("stdout.log.2").exists()).await;
    rt.stop(&layout.context(&d)).await.unwrap();
    assert!(!logs.join("stdout.log.3").exists(), "only two rotated copies are kept");
    let rotated = std::fs::metadata(logs.join("stdout.log.1")).unwrap().len();
    assert!(rotated > 4096, "a copy is made once the file passes the limit ({rotated} bytes)");
    let tail = rt.logs(&layout.context(&d), 1).await.unwrap();
    assert!(tail.is_empty() || tail == "0123456789abcdef0123456789abcdef\n", "{tail:?}");
    rt.clean(&layout.context(&d)).await.unwrap();
    rt.undefine(&layout.context(&d)).await.unwrap();
}

#[tokio::test]
async fn a_remapped_port_is_refused_without_a_network() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let rt = NativeRuntime::new(config(), layout.clone()).unwrap();
    let mut d = desired("remapped", &["sleep", "300"]);
    d.entity.ports =
        vec![fos_api::manifest::PortMapping { port: 80, host_port: Some(8080), protocol: Default::default() }];
    let err = rt.define(&layout.context(&d), &d).await.unwrap_err().to_string();
    assert!(err.contains("another host port"), "{err}");
    d.entity.ports[0].host_port = Some(80);
    rt.define(&layout.context(&d), &d).await.unwrap();
    rt.undefine(&layout.context(&d)).await.unwrap();
    // On a virtual network the network manager's proxy exposes the port, remapped or not.
    let mut d = desired("netted", &["sleep", "300"]);
    d.entity.networks = vec![fos_api::manifest::NetworkAttachment { network: "lan".into(), ip: None, mac: None }];
    d.entity.ports =
        vec![fos_api::manifest::PortMapping { port: 80, host_port: Some(8080), protocol: Default::default() }];
    rt.define(&layout.context(&d), &d).await.unwrap();
    rt.undefine(&layout.context(&d)).await.unwrap();
}
