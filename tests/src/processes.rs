//! Which processes of fos instances run where on this machine, and the checker that samples them all the time a
//! test runs and records every instance seen running on two nodes at once ("never two copies", checked, not
//! assumed). A process is on the node whose network namespace it is in, else on the one its `FOS_NODE` names.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::alive;

/// The pids of the processes in network namespace `ns`.
pub fn netns_pids(ns: &str) -> Vec<u32> {
    let out = Command::new("ip").args(["netns", "pids", ns]).output().expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

/// The inode of network namespace `ns` (`/run/netns/<ns>`).
pub fn netns_inode(ns: &str) -> Option<u64> {
    std::fs::metadata(format!("/run/netns/{ns}")).ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m))
}

/// Every live process of an instance of `apps`: (instance, node) → pids, from `FOS_INSTANCE` and `FOS_NODE` in
/// their environment.
pub fn instance_processes(apps: &BTreeSet<String>) -> BTreeMap<String, BTreeMap<String, Vec<u32>>> {
    instance_processes_on(apps, &BTreeMap::new())
}

/// [`instance_processes`], each process on the node whose network namespace (inode → node in `nodes`) it is in,
/// else the one its `FOS_NODE` names (a process restored from another node keeps that node's environment).
pub fn instance_processes_on(
    apps: &BTreeSet<String>,
    nodes: &BTreeMap<u64, String>,
) -> BTreeMap<String, BTreeMap<String, Vec<u32>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<u32>>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return out };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        let (mut instance, mut node) = (None, None);
        for var in env.split(|b| *b == 0) {
            let var = String::from_utf8_lossy(var);
            if let Some(v) = var.strip_prefix("FOS_INSTANCE=") {
                instance = Some(v.to_string());
            } else if let Some(v) = var.strip_prefix("FOS_NODE=") {
                node = Some(v.to_string());
            }
        }
        let (Some(instance), Some(mut node)) = (instance, node) else { continue };
        let netns = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok();
        if let Some(on) = netns.and_then(|m| nodes.get(&std::os::unix::fs::MetadataExt::ino(&m))) {
            node = on.clone();
        }
        if !instance.split('.').nth(1).is_some_and(|a| apps.contains(a)) || !alive(pid) {
            continue;
        }
        out.entry(instance).or_default().entry(node).or_default().push(pid);
    }
    out
}

/// Instances seen running on two nodes at once, with the nodes.
pub type Twice = Vec<(String, Vec<String>)>;
/// When each (instance, node) was first and last seen running.
pub type Seen = BTreeMap<(String, String), (Instant, Instant)>;
type Shared<T> = Arc<Mutex<T>>;

/// Samples every process of the machine every 50 ms and records each time an instance runs on two nodes at once
/// (a process is on the node whose network namespace it is in, else on the one its `FOS_NODE` names).
pub struct Checker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// What was seen running twice (instance → nodes).
    pub twice: Shared<Twice>,
    /// Samples taken.
    pub samples: Arc<Mutex<u64>>,
    /// When each (instance, node) was first and last seen running.
    pub seen: Shared<Seen>,
}

impl Checker {
    pub(crate) fn start(apps: BTreeSet<String>, node_ns: BTreeMap<u64, String>) -> Checker {
        let stop = Arc::new(AtomicBool::new(false));
        let twice: Shared<Twice> = Arc::default();
        let samples: Arc<Mutex<u64>> = Arc::default();
        let seen: Shared<Seen> = Arc::default();
        let (s, t, n, w) = (stop.clone(), twice.clone(), samples.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for (instance, nodes) in instance_processes_on(&apps, &node_ns) {
                    let now = Instant::now();
                    for node in nodes.keys() {
                        let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
                        w.entry((instance.clone(), node.clone())).or_insert((now, now)).1 = now;
                    }
                    if nodes.len() > 1 {
                        t.lock().unwrap_or_else(|p| p.into_inner()).push((instance, nodes.keys().cloned().collect()));
                    }
                }
                *n.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Checker { stop, thread: Some(thread), twice, samples, seen }
    }

    /// When `instance` (full id) was first and last seen running on `node`.
    pub fn seen(&self, instance: &str, node: &str) -> Option<(Instant, Instant)> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(&(instance.to_string(), node.to_string())).copied()
    }

    /// Stops sampling; returns what ran twice and how many samples were taken.
    pub fn finish(mut self) -> (Vec<(String, Vec<String>)>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let twice = std::mem::take(&mut *self.twice.lock().unwrap_or_else(|p| p.into_inner()));
        let samples = *self.samples.lock().unwrap_or_else(|p| p.into_inner());
        (twice, samples)
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
