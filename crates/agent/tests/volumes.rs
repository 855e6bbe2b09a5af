//! Volumes on a real agent with real processes: a native entity finds its volume at `$FOS_VOLUME_<NAME>`, owned by
//! the user it runs as; what it writes there survives a stop and clean, a new generation and an agent restart, and
//! the volume is removed only when the instance is undefined.

mod common;

use common::Env;
use fos_api::lifecycle::State;
use fos_api::manifest::Volume;

/// Lines in `path` (0 when missing).
fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_outlives_restarts_generations_and_the_agent_and_goes_at_undefine() {
    let mut env = Env::start("n1").await;
    // Each start records where it found the volume and as whom it runs, then appends a line to it (last: once the
    // line is there, so are the others).
    let script = "echo \"$FOS_VOLUME_DB_DATA\" > \"$FOS_VOLUME_DB_DATA/where\"; id -u > \"$FOS_VOLUME_DB_DATA/uid\"; \
                  echo start >> \"$FOS_VOLUME_DB_DATA/starts\"; exec sleep 300";
    let mut d = env.desired("db", &["/bin/sh", "-c", script]);
    d.entity.volumes = vec![Volume { name: "db-data".into(), size: Some("10Mi".into()), mount_path: None }];
    let volume = env.data.path().join("volumes").join(d.id.to_string()).join("db-data");
    let starts = volume.join("starts");
    let mut w = env.watch_actual(&d.id).await;
    env.put(&d).await;
    w.state(State::Running).await;
    wait_lines(&starts, 1).await;
    let told = std::fs::read_to_string(volume.join("where")).unwrap();
    assert_eq!(told.trim(), volume.display().to_string(), "FOS_VOLUME_DB_DATA names the volume");
    let uid: u32 = std::fs::read_to_string(volume.join("uid")).unwrap().trim().parse().unwrap();
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&volume).unwrap());
    assert_eq!(owner, uid, "the volume belongs to the user the entity runs as");

    // Stopped and cleaned (working area removed): the volume stays.
    d.state = State::Defined;
    env.put(&d).await;
    w.state(State::Defined).await;
    assert!(!env.data.path().join("native").join(d.id.to_string()).join("work").exists());
    assert_eq!(lines(&starts), 1, "kept through clean");
    d.state = State::Running;
    env.put(&d).await;
    w.state(State::Running).await;
    wait_lines(&starts, 2).await;

    // A new generation restarts it on the same volume.
    d.entity.env.insert("V".into(), "2".into());
    d.generation = 2;
    env.put(&d).await;
    w.until("generation 2 running", |a| {
        a.is_some_and(|a| a.observed_generation == 2 && a.state() == Some(State::Running))
    })
    .await
    .unwrap();
    wait_lines(&starts, 3).await;

    // The agent restarts (the process is adopted); then a stop and run starts it again on the same volume.
    env.shutdown().await;
    env.restart(|_| {}).await;
    w.until("adopted", |a| a.is_some_and(|a| a.state() == Some(State::Running) && !a.unverified)).await.unwrap();
    assert_eq!(lines(&starts), 3, "adopted, not restarted: the volume is as it was");
    d.state = State::Configured;
    env.put(&d).await;
    w.state(State::Configured).await;
    d.state = State::Running;
    env.put(&d).await;
    w.state(State::Running).await;
    wait_lines(&starts, 4).await;

    // Undefined: the volume goes with it.
    env.delete(&d.id).await;
    w.deleted().await;
    assert!(!volume.exists(), "removed at undefine");
    assert!(!env.data.path().join("volumes").join(d.id.to_string()).exists());
    env.shutdown().await;
}

async fn wait_lines(path: &std::path::Path, n: usize) {
    for _ in 0..500 {
        if lines(path) >= n {
            assert_eq!(lines(path), n, "{} has more starts than expected", path.display());
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{} never had {n} lines (has {})", path.display(), lines(path));
}
