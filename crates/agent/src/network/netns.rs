//! Network namespaces: named namespaces under a directory (`/run/netns` like `ip netns`), running code with a thread
//! inside a namespace (sockets, including netlink sockets, belong to the namespace they are created in), and the
//! `pre_exec` hook a runtime uses to start a process inside an instance's namespace.

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

/// Creates the named namespace `name` in `dir` (a fresh network namespace bind-mounted on `dir/name`), or opens it
/// when it already exists. Returns the namespace and whether it was created.
pub fn create_named(dir: &Path, name: &str) -> io::Result<(File, bool)> {
    if let Some(ns) = open_named(dir, name)? {
        return Ok((ns, false));
    }
    fs::create_dir_all(dir)?;
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

/// Removes the named namespace `name` from `dir` (the namespace itself ends when nothing else holds it). Returns
/// whether it existed.
pub fn remove_named(dir: &Path, name: &str) -> io::Result<bool> {
    let target = path(dir, name);
    if !target.exists() {
        return Ok(false);
    }
    match umount2(&target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => return Err(e.into()),
    }
    match fs::remove_file(&target) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
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
