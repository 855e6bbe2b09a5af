//! Durability of the embedded store across SIGKILL: a child process (this test executable, re-invoked) writes and
//! acknowledges each write on stdout; it is killed with SIGKILL mid-stream; the reopened store must hold every
//! acknowledged write, and the dead owner's lock must be gone.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use fos_store::{EmbeddedConfig, EmbeddedStore, Store};

const CHILD_DIR: &str = "FOS_STORE_KILL_CHILD_DIR";
const WRITERS: usize = 4;
const ACKS_BEFORE_KILL: usize = 3000;

/// In the child: write forever from several tasks, printing `ack <key> <value>` after each write returns.
async fn child(dir: &str) -> ! {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir)).expect("open in child"));
    println!("ready");
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0u64.. {
                let key = format!("/k/{w}/{i:08}");
                let value = format!("v{w}-{i}");
                store.put(&key, value.clone().into_bytes(), None).await.expect("put in child");
                let mut out = std::io::stdout().lock();
                writeln!(out, "ack {key} {value}").expect("stdout");
                out.flush().expect("flush");
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    std::process::exit(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_write() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        child(&dir).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut process = Command::new(std::env::current_exe().unwrap())
        .args(["sigkill_loses_no_acknowledged_write", "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = process.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        let mut killer = Some(process);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("ack ") {
                let (key, value) = rest.split_once(' ').expect("ack line");
                acked.push((key.to_string(), value.to_string()));
                if acked.len() == ACKS_BEFORE_KILL {
                    if let Some(mut p) = killer.take() {
                        p.kill().expect("SIGKILL the owner");
                        p.wait().expect("reap");
                    }
                }
            }
        }
        if let Some(mut p) = killer {
            let _ = p.kill();
            let _ = p.wait();
        }
        acked
    });
    let acked = tokio::task::spawn_blocking(move || reader.join().unwrap()).await.unwrap();
    assert!(acked.len() >= ACKS_BEFORE_KILL, "the child acknowledged only {} writes", acked.len());

    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("reopen after SIGKILL (lock released)");
    let stored = store.list("/k/").await.unwrap();
    let stored: std::collections::HashMap<String, Vec<u8>> =
        stored.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    for (key, value) in &acked {
        assert_eq!(stored.get(key).map(Vec::as_slice), Some(value.as_bytes()), "acknowledged write {key} lost");
    }
    // The log agrees with the state: replaying history yields every acknowledged key.
    let mut history = store.watch("/k/", 1).await.unwrap();
    let mut replayed = std::collections::HashSet::new();
    while replayed.len() < stored.len() {
        let e = tokio::time::timeout(std::time::Duration::from_secs(20), futures::StreamExt::next(&mut history))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        replayed.insert(e.kv.key);
    }
    assert!(acked.iter().all(|(k, _)| replayed.contains(k)));
}
