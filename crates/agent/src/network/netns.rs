//! Network namespaces: named namespaces under a directory (`/run/netns` like `ip netns`), running code with a thread
//! inside a namespace (sockets, including netlink sockets, belong to the namespace they are created in), and the
//! `pre_exec` hook a runtime uses to start a process inside an instance's namespace.
//!
//! The directory is handled as iproute2 does: before the first namespace is named in it, it is made a shared mount
//! point (bind-mounted on itself when it is not a mount point yet), so that the namespace files mounted in it
//! propagate to the mount namespaces made afterwards (`ip netns exec`, containers) and, above all, so that removing
//! one unmounts it there too: a copy left mounted in another mount namespace would keep the network namespace, and
//! its veth ends on the node, alive.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::fstatfs;

/// The directory `ip netns` keeps named namespaces in.
pub const NETNS_DIR: &str = "/run/netns";

/// `NSFS_MAGIC`: the file system type of a namespace file.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Runs `f` on a new thread that has entered the network namespace `ns`, and returns its result.
pub fn run_in<T: Send>(ns: &File, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                Ok(f())
            })
            .join()
            .map_err(|_| io::Error::other("thread running in a network namespace panicked"))?
    })
}

/// Opens the network namespace of the calling thread.
pub fn current() -> io::Result<File> {
    File::open("/proc/thread-self/ns/net")
}

/// Whether `file` is a namespace file (a bind-mounted namespace, not a plain file).
#[allow(clippy::unnecessary_cast)] // the field's integer type differs between libcs and architectures
fn is_namespace(file: &File) -> bool {
    fstatfs(file).map(|s| s.filesystem_type().0 as i64 == NSFS_MAGIC).unwrap_or(false)
}

/// The path of the named namespace `name` in `dir`.
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Opens the named namespace `name` in `dir`, if it exists.
pub fn open_named(dir: &Path, name: &str) -> io::Result<Option<File>> {
    match File::open(path(dir, name)) {
        Ok(f) if is_namespace(&f) => Ok(Some(f)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes `dir` a shared mount point, as `ip netns add` does with `/run/netns`: `mount --make-shared`, and when
/// `dir` is not a mount point yet, `mount --bind dir dir` first. Returns whether it made that bind mount (undone by
/// [`release_dir`]).
pub fn share_dir(dir: &Path) -> io::Result<bool> {
    fs::create_dir_all(dir)?;
    let mut made = false;
    loop {
        match mount(None::<&str>, dir, Some("none"), MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>) {
            Ok(()) => return Ok(made),
            Err(nix::errno::Errno::EINVAL) if !made => {
                mount(Some(dir), dir, Some("none"), MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).map_err(|e| {
                    io::Error::new(io::Error::from(e).kind(), format!("mount --bind {0} {0}: {e}", dir.display()))
                })?;
                made = true;
            }
            Err(e) => {
                return Err(io::Error::new(
                    io::Error::from(e).kind(),
                    format!("mount --make-shared {}: {e}", dir.display()),
                ))
            }
        }
    }
}

/// The mount points at or below `dir` in this mount namespace (from `/proc/self/mountinfo`).
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Undoes [`share_dir`]'s bind mount of `dir` when nothing is mounted below it any more (another agent's or `ip
/// netns`'s namespaces keep it). Returns whether it was unmounted.
pub fn release_dir(dir: &Path) -> io::Result<bool> {
    if mounts_below(dir).iter().any(|p| p != dir) {
        return Ok(false);
    }
    match umount2(dir, MntFlags::empty()) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(io::Error::new(io::Error::from(e).kind(), format!("umount {}: {e}", dir.display()))),
    }
}

/// Creates the named namespace `name` in `dir` (a fresh network namespace bind-mounted on `dir/name`), or opens it
/// when it already exists. Returns the namespace and whether it was created. `dir` is made a shared mount point
/// first ([`share_dir`]).
pub fn create_named(dir: &Path, name: &str) -> io::Result<(File, bool)> {
    if let Some(ns) = open_named(dir, name)? {
        return Ok((ns, false));
    }
    share_dir(dir)?;
    let target = path(dir, name);
    File::create(&target)?;
    let mounted = std::thread::scope(|scope| {
        scope
            .spawn(|| -> io::Result<()> {
                unshare(CloneFlags::CLONE_NEWNET)?;
                mount(Some("/proc/thread-self/ns/net"), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
                Ok(())
            })
            .join()
            .map_err(|_| io::Error::other("thread creating a network namespace panicked"))?
    });
    if let Err(e) = mounted {
        let _ = fs::remove_file(&target);
        return Err(e);
    }
    Ok((File::open(&target)?, true))
}

/// How many mounts stacked on one namespace file are undone before giving up.
const MAX_STACKED: usize = 16;

/// Removes the named namespace `name` from `dir` (the namespace itself ends when nothing else holds it): every mount
/// on its file (several may be stacked there), then the file. Returns whether it existed.
pub fn remove_named(dir: &Path, name: &str) -> io::Result<bool> {
    let target = path(dir, name);
    if fs::symlink_metadata(&target).is_err() {
        return Ok(false);
    }
    let mut unmounted = 0;
    loop {
        match umount2(&target, MntFlags::MNT_DETACH) {
            Ok(()) if unmounted < MAX_STACKED => unmounted += 1,
            Ok(()) => {
                return Err(io::Error::other(format!("{}: more than {MAX_STACKED} mounts", target.display())));
            }
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => break,
            Err(e) => {
                return Err(io::Error::new(io::Error::from(e).kind(), format!("umount {}: {e}", target.display())))
            }
        }
    }
    match fs::remove_file(&target) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io::Error::new(e.kind(), format!("removing {}: {e}", target.display()))),
    }
}

/// The named namespaces in `dir` whose names start with `prefix`.
pub fn list_named(dir: &Path, prefix: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Makes `command` start its process inside the network namespace at `netns` (for example an instance's
/// [`super::InstanceNetworking::netns`]). The namespace file is opened now, so a missing namespace fails here.
pub fn enter_on_spawn(command: &mut Command, netns: &Path) -> io::Result<()> {
    enter_namespace_on_spawn(command, File::open(netns)?);
    Ok(())
}

/// Makes `command` start its process inside the network namespace `ns`.
pub fn enter_namespace_on_spawn(command: &mut Command, ns: File) {
    // SAFETY: the hook only calls setns(2), which is async-signal-safe, on a descriptor owned by the closure.
    unsafe {
        command.pre_exec(move || setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from));
    }
}
