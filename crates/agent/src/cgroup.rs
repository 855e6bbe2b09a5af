//! Control groups of instances, shared by every runtime: the node detects its hierarchies once ([`Cgroups`]), the
//! driver names one group per instance under `fos/` ([`InstanceCgroup`], handed to runtimes in the instance's
//! context), on cgroup v2 (unified) or v1 (per-controller hierarchies), for cpu and memory limits, freezing (pause)
//! and killing everything an instance started, including processes that left its process group.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use fos_api::granularity;
use fos_api::record::InstanceId;

/// CFS period used for cpu limits, in microseconds.
const CPU_PERIOD_US: u64 = granularity::CPU_PERIOD_US;

/// The group under each hierarchy's root that holds every instance's group.
pub const PARENT: &str = "fos";

/// The cgroup hierarchies this machine offers to fos.
#[derive(Debug, Clone, Default)]
pub struct Cgroups {
    /// cgroup v2: the `fos` group under the unified root.
    v2: Option<PathBuf>,
    /// cgroup v1: the `fos` group under the cpu hierarchy.
    cpu: Option<PathBuf>,
    /// cgroup v1: the `fos` group under the memory hierarchy.
    memory: Option<PathBuf>,
    /// cgroup v1: the `fos` group under the freezer hierarchy.
    freezer: Option<PathBuf>,
    /// The `fos` groups detection created (they did not exist before).
    created: Vec<PathBuf>,
}

/// Creates `dir` (and its parents); whether it did not exist before.
fn create(dir: &Path) -> io::Result<bool> {
    let existed = dir.is_dir();
    fs::create_dir_all(dir)?;
    Ok(!existed)
}

impl Cgroups {
    /// Finds the usable hierarchies under `/sys/fs/cgroup` (creating the `fos` groups); none when not root.
    pub fn detect() -> Self {
        Self::detect_at(Path::new("/sys/fs/cgroup"))
    }

    /// Finds the usable hierarchies under `root` (a cgroup file system mount point).
    pub fn detect_at(root: &Path) -> Self {
        let mut created = Vec::new();
        if root.join("cgroup.controllers").exists() {
            let fos = root.join(PARENT);
            let made = create(&fos);
            if let Ok(true) = made {
                created.push(fos.clone());
            }
            let ok = made.is_ok()
                && fs::write(root.join("cgroup.subtree_control"), "+cpu +memory").is_ok()
                && fs::write(fos.join("cgroup.subtree_control"), "+cpu +memory").is_ok();
            return Cgroups { v2: ok.then_some(fos), created, ..Default::default() };
        }
        let mut v1 = |ctl: &str| {
            let base = root.join(ctl);
            let fos = base.join(PARENT);
            if !base.join("cgroup.procs").exists() {
                return None;
            }
            match create(&fos) {
                Ok(made) => {
                    if made {
                        created.push(fos.clone());
                    }
                    Some(fos)
                }
                Err(_) => None,
            }
        };
        let (cpu, memory, freezer) = (v1("cpu"), v1("memory"), v1("freezer"));
        Cgroups { v2: None, cpu, memory, freezer, created }
    }

    /// The `fos` groups detection created (they did not exist before this agent started).
    pub fn created(&self) -> &[PathBuf] {
        &self.created
    }

    /// The `fos` group of every hierarchy in use.
    pub fn parents(&self) -> Vec<PathBuf> {
        [&self.v2, &self.cpu, &self.memory, &self.freezer].into_iter().flatten().cloned().collect()
    }

    /// Removes every instance group whose name ends with `@<scope>` (one agent's), killing what runs in it first;
    /// returns the groups removed and the errors met.
    pub fn sweep(&self, scope: &str) -> (Vec<PathBuf>, Vec<String>) {
        let suffix = format!("@{scope}");
        let mut names: Vec<String> = self
            .parents()
            .iter()
            .filter_map(|p| fs::read_dir(p).ok())
            .flat_map(|d| d.flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)).collect::<Vec<_>>())
            .filter(|n| n.ends_with(&suffix))
            .collect();
        names.sort();
        names.dedup();
        let (mut removed, mut errors) = (Vec::new(), Vec::new());
        for name in names {
            let group = self.named(&name);
            let dirs = group.existing();
            match group.kill_and_remove(std::time::Duration::from_secs(5)) {
                Ok(()) => removed.extend(dirs),
                Err(e) => errors.push(format!("cgroup {name}: {e}")),
            }
        }
        (removed, errors)
    }

    /// Describes what was found, for logs and node info.
    pub fn describe(&self) -> String {
        if self.v2.is_some() {
            return "cgroup v2".to_string();
        }
        let v1: Vec<&str> = [("cpu", &self.cpu), ("memory", &self.memory), ("freezer", &self.freezer)]
            .iter()
            .filter(|(_, p)| p.is_some())
            .map(|(n, _)| *n)
            .collect();
        if v1.is_empty() {
            "no cgroups".to_string()
        } else {
            format!("cgroup v1 ({})", v1.join(", "))
        }
    }

    /// Whether any hierarchy is usable.
    pub fn is_enabled(&self) -> bool {
        [&self.v2, &self.cpu, &self.memory, &self.freezer].iter().any(|p| p.is_some())
    }

    /// The (not yet created) groups of one instance, `<id>@<scope>` under [`PARENT`]. `scope` tells apart agents
    /// sharing the machine (each has its own data directory), so two agents never touch each other's groups.
    pub fn instance(&self, id: &InstanceId, scope: &str) -> InstanceCgroup {
        self.named(&format!("{id}@{scope}"))
    }

    /// The groups named `name` under [`PARENT`].
    fn named(&self, name: &str) -> InstanceCgroup {
        let name = name.to_string();
        let sub = |p: &Option<PathBuf>| p.as_ref().map(|p| p.join(&name));
        InstanceCgroup {
            v2: sub(&self.v2),
            cpu: sub(&self.cpu),
            memory: sub(&self.memory),
            freezer: sub(&self.freezer),
            name,
        }
    }
}

/// One instance's groups (the same name under every hierarchy the node has; none without cgroups).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceCgroup {
    /// The group's name under [`PARENT`] (also what an OCI runtime's `cgroupsPath` is made of).
    name: String,
    v2: Option<PathBuf>,
    cpu: Option<PathBuf>,
    memory: Option<PathBuf>,
    freezer: Option<PathBuf>,
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    fs::write(dir.join(file), value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.join(file).display())))
}

impl InstanceCgroup {
    /// The group's name under [`PARENT`] in every hierarchy.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path relative to a hierarchy's root (`fos/<name>`).
    pub fn relative_path(&self) -> PathBuf {
        Path::new(PARENT).join(&self.name)
    }

    fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.v2, &self.cpu, &self.memory, &self.freezer].into_iter().flatten()
    }

    /// The `cgroup.procs` file of each of the instance's groups that exists (writing `0` there moves the writer in).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs().filter(|d| d.exists()).map(|d| d.join("cgroup.procs")).collect()
    }

    /// Whether the instance has any group at all.
    pub fn is_enabled(&self) -> bool {
        self.dirs().next().is_some()
    }

    /// Creates the groups and sets the limits (`cpu_millis` = 0 / `memory_bytes` = 0: unlimited). On cgroup v1 the
    /// cpu and memory groups are made only when limited; the freezer group always (pause, and finding every process).
    pub fn create(&self, cpu_millis: u64, memory_bytes: u64) -> io::Result<()> {
        // Rounded up to what the kernel accepts (the scheduler accounted the same rounding).
        let quota = (cpu_millis > 0).then(|| granularity::cpu_quota_us(granularity::cpu_millis(cpu_millis)));
        let memory_bytes = granularity::memory_bytes(memory_bytes);
        if let Some(dir) = &self.v2 {
            fs::create_dir_all(dir)?;
            let cpu = quota.map(|q| format!("{q} {CPU_PERIOD_US}")).unwrap_or_else(|| format!("max {CPU_PERIOD_US}"));
            write(dir, "cpu.max", &cpu)?;
            write(dir, "memory.max", &if memory_bytes > 0 { memory_bytes.to_string() } else { "max".into() })?;
        }
        if let (Some(dir), Some(quota)) = (&self.cpu, quota) {
            fs::create_dir_all(dir)?;
            write(dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
            write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
        }
        if let (Some(dir), true) = (&self.memory, memory_bytes > 0) {
            fs::create_dir_all(dir)?;
            write(dir, "memory.limit_in_bytes", &memory_bytes.to_string())?;
        }
        if let Some(dir) = &self.freezer {
            fs::create_dir_all(dir)?;
        }
        Ok(())
    }

    /// Moves process `pid` into every group that exists (called right after spawn, before the program can fork).
    pub fn add(&self, pid: u32) -> io::Result<()> {
        for dir in self.dirs().filter(|d| d.exists()) {
            write(dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Freezes or thaws the instance; `Ok(false)` when there is no freezer to do it.
    pub fn freeze(&self, frozen: bool) -> io::Result<bool> {
        if let Some(dir) = &self.v2 {
            write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
            return Ok(true);
        }
        if let Some(dir) = &self.freezer {
            write(dir, "freezer.state", if frozen { "FROZEN" } else { "THAWED" })?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Every process in the instance's groups.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs()
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect::<Vec<i32>>())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Sends SIGKILL to every process in the instance's groups.
    pub fn kill_all(&self) {
        for pid in self.pids().into_iter().filter(|pid| *pid > 1) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// Thaws the groups, kills every process in them until none is left (at most `patience`), and removes them.
    pub fn kill_and_remove(&self, patience: std::time::Duration) -> io::Result<()> {
        let _ = self.freeze(false);
        let deadline = std::time::Instant::now() + patience;
        loop {
            let pids = self.pids();
            if pids.is_empty() {
                return self.remove();
            }
            if std::time::Instant::now() > deadline {
                return Err(io::Error::other(format!("processes {pids:?} survive SIGKILL")));
            }
            self.kill_all();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Removes the groups (they must be empty); missing groups are fine.
    pub fn remove(&self) -> io::Result<()> {
        for dir in self.dirs() {
            match fs::remove_dir(dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// The groups that exist now.
    pub fn existing(&self) -> Vec<PathBuf> {
        self.dirs().filter(|d| d.exists()).cloned().collect()
    }

    /// Whether the instance is frozen by its freezer group.
    pub fn is_frozen(&self) -> bool {
        let read = |d: &PathBuf, f: &str| fs::read_to_string(d.join(f)).map(|s| s.trim().to_string()).ok();
        self.v2.as_ref().and_then(|d| read(d, "cgroup.freeze")).is_some_and(|s| s == "1")
            || self.freezer.as_ref().and_then(|d| read(d, "freezer.state")).is_some_and(|s| s == "FROZEN")
    }

    /// The memory limit in force, in bytes (`None`: no memory group or unlimited).
    pub fn memory_limit(&self) -> Option<u64> {
        let read = |d: &PathBuf, f: &str| fs::read_to_string(d.join(f)).ok()?.trim().parse::<u64>().ok();
        self.v2.as_ref().and_then(|d| read(d, "memory.max")).or_else(|| {
            self.memory.as_ref().and_then(|d| read(d, "memory.limit_in_bytes")).filter(|v| *v < (1u64 << 62))
        })
    }
}

/// Watches an instance's memory groups for OOM kills over one run: the kill counters at the start (v2
/// `memory.events`, counting its subgroups too) and, on cgroup v1, where `memory.oom_control` counts only the group's
/// own kills (a runtime's subgroup, removed when the container ends, takes them), an OOM notification registered on the
/// instance's group (`cgroup.event_control` with an eventfd), which the kernel sends to the group whose limit was hit.
#[derive(Debug)]
pub struct OomWatch {
    kills_before: u64,
    notification: Option<std::os::fd::OwnedFd>,
}

impl InstanceCgroup {
    /// OOM kills counted in the instance's memory groups (v1 `memory.oom_control`, v2 `memory.events`).
    pub fn oom_kills(&self) -> u64 {
        let mut total = 0;
        for dir in [&self.v2, &self.memory].into_iter().flatten() {
            for file in ["memory.oom_control", "memory.events"] {
                let Ok(text) = fs::read_to_string(dir.join(file)) else { continue };
                for line in text.lines() {
                    if let Some(n) = line.strip_prefix("oom_kill ") {
                        total += n.trim().parse::<u64>().unwrap_or(0);
                    }
                }
            }
        }
        total
    }

    /// Starts watching for OOM kills (called before the instance's processes start).
    pub fn watch_oom(&self) -> OomWatch {
        let notification = self.memory.as_ref().filter(|d| d.join("memory.limit_in_bytes").exists()).and_then(|dir| {
            use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
            // SAFETY: eventfd takes an initial value and flags and returns a new descriptor or -1.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if fd < 0 {
                return None;
            }
            // SAFETY: fd is a new descriptor nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let control = fs::File::open(dir.join("memory.oom_control")).ok()?;
            let line = format!("{} {}", fd.as_raw_fd(), control.as_raw_fd());
            match write(dir, "cgroup.event_control", &line) {
                Ok(()) => Some(fd),
                Err(e) => {
                    tracing::debug!(group = %dir.display(), error = %e, "no OOM notification");
                    None
                }
            }
        });
        OomWatch { kills_before: self.oom_kills(), notification }
    }
}

impl OomWatch {
    /// Whether the kernel's OOM killer acted on the instance's memory since the watch began.
    pub fn killed(&self, cgroup: &InstanceCgroup) -> bool {
        if cgroup.oom_kills() > self.kills_before {
            return true;
        }
        let Some(fd) = &self.notification else { return false };
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a buffer of 8 from a descriptor this watch owns (non-blocking).
        let n = unsafe { libc::read(std::os::fd::AsRawFd::as_raw_fd(fd), count.as_mut_ptr().cast(), count.len()) };
        n == 8 && u64::from_ne_bytes(count) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_hierarchies_are_found_and_an_instance_gets_its_limits() {
        let root = tempfile::tempdir().unwrap();
        for ctl in ["cpu", "freezer"] {
            fs::create_dir_all(root.path().join(ctl)).unwrap();
            fs::write(root.path().join(ctl).join("cgroup.procs"), "").unwrap();
        }
        let cgroups = Cgroups::detect_at(root.path());
        assert_eq!(cgroups.describe(), "cgroup v1 (cpu, freezer)");
        assert!(cgroups.is_enabled());
        let id = InstanceId::new("default", "app", "web", 0);
        let group = cgroups.instance(&id, "0123abcd");
        assert_eq!(group.name(), "web-0.app.default@0123abcd");
        assert_eq!(group.relative_path(), Path::new("fos/web-0.app.default@0123abcd"));
        group.create(250, 0).unwrap();
        let cpu = root.path().join("cpu/fos/web-0.app.default@0123abcd");
        assert_eq!(fs::read_to_string(cpu.join("cpu.cfs_quota_us")).unwrap(), "25000");
        assert_eq!(group.existing(), [cpu, root.path().join("freezer/fos/web-0.app.default@0123abcd")]);
        assert!(!Cgroups::default().is_enabled());
        assert!(!Cgroups::default().instance(&id, "x").is_enabled());
    }
}
