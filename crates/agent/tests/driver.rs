//! The agent on a real embedded store with real processes: the lifecycle walk, crashes and the restart policy,
//! readiness, generation bumps, failing instances, and the heartbeat.

mod common;

use std::time::Duration;

use common::{free_port, group_alive, proc_exists, Env};
use fos_api::lifecycle::State;
use fos_api::manifest::{Probe, RestartPolicy};
use fos_store::records::{ActualPlugins, NodeInfos, NodeStatuses};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_walks_up_and_down_the_lifecycle_and_leaves_nothing() {
    let mut env = Env::start("n1").await;
    let mut d = env.desired("web", &["/bin/sh", "-c", "sleep 300 & exec sleep 301"]);
    let mut w = env.watch_actual(&d.id).await;
    env.put(&d).await;
    let running = w.state(State::Running).await;
    let pid = running.pid.expect("pid");
    assert!(proc_exists(pid));
    assert_eq!(running.observed_generation, 1);
    assert!(running.ready, "no probe: ready once running");
    assert!(running.started_at.is_some());
    let work = env.data.path().join("native").join(d.id.to_string()).join("work");
    assert!(work.is_dir());

    d.state = State::Configured;
    env.put(&d).await;
    let configured = w.state(State::Configured).await;
    assert_eq!(configured.pid, None);
    assert!(!configured.ready);
    assert!(!proc_exists(pid), "the process is gone (reaped, not a zombie)");
    assert!(!group_alive(pid), "nothing left in its process group");

    d.state = State::Defined;
    env.put(&d).await;
    w.state(State::Defined).await;
    assert!(!work.exists(), "working directory removed at clean");

    env.delete(&d.id).await;
    w.deleted().await;
    // Steps that follow each other at once are written together: the way up (define, configure, run) is one
    // write; each state the instance rests in is written.
    assert_eq!(w.states(), [Some(State::Running), Some(State::Configured), Some(State::Defined), None]);
    assert!(!env.data.path().join("native").join(d.id.to_string()).exists());
    env.shutdown().await;
}

/// The delay announced in an Error record (`...; restart N in 400ms`).
fn announced_delay(error: &str) -> Duration {
    let text = error.rsplit(" in ").next().unwrap();
    if let Some(ms) = text.strip_suffix("ms") {
        Duration::from_secs_f64(ms.parse::<f64>().unwrap() / 1000.0)
    } else {
        Duration::from_secs_f64(text.strip_suffix('s').unwrap().parse().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_command_is_restarted_with_growing_delays_and_shows_its_exit_status() {
    let mut env = Env::start("n1").await;
    let d = env.desired("crash", &["/bin/sh", "-c", "exit 3"]);
    let mut w = env.watch_actual(&d.id).await;
    env.put(&d).await;
    let mut delays = Vec::new();
    let mut restarts = Vec::new();
    while delays.len() < 4 {
        let a = w
            .until("an error", |a| {
                a.is_some_and(|a| a.state() == Some(State::Error) && a.restarts as usize == delays.len())
            })
            .await
            .unwrap();
        assert_eq!((a.exit_status, a.exit_reason.as_deref()), (Some(3), Some("Error")));
        let error = a.error.clone().unwrap();
        assert!(error.starts_with("exited with status 3; restart"), "{error}");
        delays.push(announced_delay(&error));
        restarts.push(a.restarts);
    }
    assert_eq!(restarts, [0, 1, 2, 3]);
    // Doubling from 100ms, each jittered between half and all of its ceiling (announced to a tenth of a second).
    let backoff = fos_agent::driver::Backoff { base: Duration::from_millis(100), max: Duration::from_secs(2) };
    for (n, d) in delays.iter().enumerate() {
        let ceiling = backoff.ceiling(n as u32 + 1);
        let slack = Duration::from_millis(50);
        assert!(*d + slack >= ceiling / 2 && *d <= ceiling + slack, "delay {n} of {delays:?}: ceiling {ceiling:?}");
    }
    assert!(delays[3] > delays[0], "growing delays: {delays:?}");
    env.delete(&d.id).await;
    w.deleted().await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policies_never_and_on_failure_keep_a_finished_process_down() {
    let mut env = Env::start("n1").await;
    let mut done = env.desired("done", &["true"]);
    done.entity.restart = RestartPolicy::OnFailure;
    let mut failed = env.desired("failed", &["/bin/sh", "-c", "exit 7"]);
    failed.entity.restart = RestartPolicy::Never;
    let mut wd = env.watch_actual(&done.id).await;
    let mut wf = env.watch_actual(&failed.id).await;
    env.put(&done).await;
    env.put(&failed).await;
    wd.state(State::Running).await;
    let a = wd.state(State::Configured).await;
    assert_eq!((a.exit_status, a.exit_reason.as_deref(), a.error), (Some(0), Some("Completed"), None));
    let a = wf.state(State::Error).await;
    assert_eq!(a.exit_status, Some(7));
    assert!(a.error.unwrap().contains("exited with status 7 (restart policy never)"));
    // No restart happens: the records stay as they are.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = env.actual(&failed.id).await.unwrap();
    assert_eq!((now.state(), now.restarts), (Some(State::Error), 0));
    for (d, w) in [(&done, &mut wd), (&failed, &mut wf)] {
        env.delete(&d.id).await;
        w.deleted().await;
    }
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_flips_only_when_the_port_answers() {
    let mut env = Env::start("n1").await;
    let port = free_port();
    let mut d = env.desired("probed", &["sleep", "300"]);
    d.entity.readiness = Some(Probe::Tcp(port));
    let mut w = env.watch_actual(&d.id).await;
    env.put(&d).await;
    let a = w.state(State::Running).await;
    assert!(!a.ready);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let now = env.actual(&d.id).await.unwrap();
    assert!(!now.ready, "not ready while nothing listens");
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    w.until("ready", |a| a.is_some_and(|a| a.ready)).await;
    drop(listener);
    w.until("not ready", |a| a.is_some_and(|a| !a.ready)).await;
    env.delete(&d.id).await;
    w.deleted().await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_bump_restarts_the_instance_with_the_new_spec() {
    let mut env = Env::start("n1").await;
    let mut d = env.desired("gen", &["/bin/sh", "-c", "echo v=$VERSION; exec sleep 300"]);
    d.entity.env.insert("VERSION".into(), "1".into());
    let mut w = env.watch_actual(&d.id).await;
    env.put(&d).await;
    let first = w.state(State::Running).await.pid.unwrap();
    d.entity.env.insert("VERSION".into(), "2".into());
    d.generation = 2;
    env.put(&d).await;
    let a = w
        .until("generation 2 running", |a| {
            a.is_some_and(|a| a.observed_generation == 2 && a.state() == Some(State::Running))
        })
        .await
        .unwrap();
    assert_ne!(a.pid, Some(first));
    assert!(!proc_exists(first), "the old process is stopped");
    // Read once the shell has exec'd sleep: while a process execs, its environ reads empty for a moment.
    let pid = a.pid.unwrap();
    let read = |file: &str| std::fs::read(format!("/proc/{pid}/{file}")).unwrap();
    for _ in 0..500 {
        if read("comm") == b"sleep\n" && !read("environ").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let env_of = read("environ");
    let env_of = String::from_utf8_lossy(&env_of);
    assert!(env_of.split('\0').any(|v| v == "VERSION=2"), "pid {pid} runs with {env_of:?}");
    env.delete(&d.id).await;
    w.deleted().await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_failing_instance_does_not_hold_up_the_others() {
    let mut env = Env::start("n1").await;
    let mut slow = env.desired("slow", &["sleep", "300"]);
    slow.entity.setup = vec![vec!["sleep".into(), "30".into()]];
    let broken = env.desired("broken", &["/nonexistent/program"]);
    let fine = env.desired("fine", &["sleep", "300"]);
    let mut ws = env.watch_actual(&slow.id).await;
    let mut wb = env.watch_actual(&broken.id).await;
    let mut wf = env.watch_actual(&fine.id).await;
    env.put(&slow).await;
    env.put(&broken).await;
    env.put(&fine).await;
    wf.state(State::Running).await;
    let b = wb.state(State::Error).await;
    assert!(b.error.unwrap().contains("cannot start `/nonexistent/program`"));
    let s = env.actual(&slow.id).await.unwrap();
    assert_eq!(s.state(), Some(State::Defined), "still configuring");
    for d in [&slow, &broken, &fine] {
        env.delete(&d.id).await;
    }
    for w in [&mut ws, &mut wb, &mut wf] {
        w.deleted().await;
    }
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_publishes_status_on_a_lease_and_measures_round_trips() {
    let store_dir = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn fos_store::Store> =
        std::sync::Arc::new(fos_store::EmbeddedStore::open(fos_store::EmbeddedConfig::new(store_dir.path())).unwrap());
    let mut n1 = Env::start_on("n1", store.clone(), tempfile::tempdir().unwrap()).await;
    let mut n2 = Env::start_on("n2", store.clone(), tempfile::tempdir().unwrap()).await;
    let kv = store.get(&n1.records.key::<NodeStatuses>(&"n1".into())).await.unwrap().expect("status record");
    assert_ne!(kv.lease, 0, "bound to a lease");
    let node = n1.records.get::<NodeInfos>(&"n1".into()).await.unwrap().expect("info record").value;
    assert_eq!(node.metadata.name, "n1");
    // Native always; containers too where runc works (root).
    assert_eq!(node.spec.runtimes.first(), Some(&fos_api::EntityKind::Native), "{:?}", node.spec.runtimes);
    assert!(!node.spec.runtimes.contains(&fos_api::EntityKind::Vm), "VMs are switched off in these tests");
    assert!(n1.records.get::<ActualPlugins>(&("n1".into(), "native".into())).await.unwrap().is_some());
    let mut rtt = None;
    for _ in 0..100 {
        let status = n1.records.get::<NodeStatuses>(&"n1".into()).await.unwrap().unwrap().value;
        if let Some(ms) = status.rtt_ms.get("n2") {
            rtt = Some(*ms);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rtt.is_some_and(|ms| ms >= 0.0), "n1 measured its round trip to n2");
    n2.shutdown().await;
    assert!(n1.records.get::<NodeStatuses>(&"n2".into()).await.unwrap().is_none(), "status gone with the lease");
    n1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_instance_is_suspended_and_resumed() {
    let mut env = Env::start("n1").await;
    let mut d = env.desired("pausable", &["sleep", "300"]);
    let mut w = env.watch_actual(&d.id).await;
    env.put(&d).await;
    let pid = w.state(State::Running).await.pid.unwrap();
    d.state = State::Paused;
    env.put(&d).await;
    let paused = w.state(State::Paused).await;
    assert!(!paused.ready, "a paused instance is not ready");
    assert_eq!(paused.pid, Some(pid));
    d.state = State::Running;
    env.put(&d).await;
    let resumed = w.state(State::Running).await;
    assert_eq!(resumed.pid, Some(pid), "the same process continues");
    assert!(resumed.ready);
    env.delete(&d.id).await;
    w.deleted().await;
    assert!(!proc_exists(pid));
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_an_instance_is_unverified_until_its_probe_passes_again() {
    let mut env = Env::start("n1").await;
    let flag = env.data.path().join("ready-flag");
    let mut d = env.desired("checked", &["sleep", "600"]);
    d.entity.readiness = Some(Probe::Exec(vec!["test".into(), "-f".into(), flag.display().to_string()]));
    std::fs::write(&flag, "").unwrap();
    let mut w = env.watch_actual(&d.id).await;
    env.put(&d).await;
    let before = w.until("ready", |a| a.is_some_and(|a| a.ready && !a.unverified)).await.unwrap();
    let pid = before.pid.unwrap();

    // The agent goes away (its process keeps running) and the instance stops answering its probe meanwhile.
    env.shutdown().await;
    std::fs::remove_file(&flag).unwrap();
    let mut w = env.watch_actual(&d.id).await;
    env.restart(|_| {}).await;
    let marked = w.until("marked unverified", |a| a.is_some_and(|a| a.unverified)).await.unwrap();
    assert!(!marked.ready, "an unverified record never says ready");
    let adopted = w.until("adopted", |a| a.is_some_and(|a| a.pid == Some(pid))).await.unwrap();
    assert_eq!(adopted.state(), Some(State::Running));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let now = env.actual(&d.id).await.unwrap();
    assert!(now.unverified && !now.ready, "still unverified while its probe fails: {now:?}");
    assert!(
        !fos_api::record::running_ready(Some(&d), Some(&now)).0,
        "neither running nor ready by the one rule the controller and --wait use"
    );

    std::fs::write(&flag, "").unwrap();
    let checked = w.until("checked again", |a| a.is_some_and(|a| a.ready && !a.unverified)).await.unwrap();
    assert_eq!(checked.pid, Some(pid), "adopted, not restarted");
    assert_eq!(fos_api::record::running_ready(Some(&d), Some(&checked)), (true, true));
    env.delete(&d.id).await;
    w.deleted().await;
    env.shutdown().await;
}
