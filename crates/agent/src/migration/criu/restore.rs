//! `criu restore`: brings a checkpointed process tree back from its images, detached (`criu` exits once the tree
//! runs; the root's pid is read from a pid file). The tree is restored inside the instance's cgroups (`criu` joins
//! them before it starts; it leaves cgroups alone otherwise), and the files it had open under the node's own
//! directories are handed to it already open where this node keeps them (`--inherit-fd`): its output files, its
//! working directory, the files of its volumes. Everything else is reopened at the same path.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::images::{self, RegFile};
use super::{binary, run, CriuError, COMMON};

/// The lowest descriptor number the inherited files get in `criu` (above every descriptor they are copied from,
/// so that no copy overwrites another's source).
const FIRST_INHERITED: RawFd = 200;

/// A directory the checkpoint's files lived under, and where this node keeps what was there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The directory on the node the checkpoint was made on.
    pub from: PathBuf,
    /// The same directory here.
    pub to: PathBuf,
}

/// Where file `name` of the checkpoint is here, when it was under one of `moved`.
fn moved_path(name: &str, moved: &[Moved]) -> Option<PathBuf> {
    let name = Path::new(name);
    moved.iter().find_map(|m| name.strip_prefix(&m.from).ok().map(|rest| m.to.join(rest)))
}

/// Opens `path` as the checkpointed file `file` was open (its access mode, append, directory), at its position;
/// an output file that is not there yet is made.
fn reopen(path: &Path, file: &RegFile) -> Result<OwnedFd, CriuError> {
    let keep = libc::O_ACCMODE | libc::O_APPEND | libc::O_NONBLOCK | libc::O_DIRECTORY | libc::O_PATH | libc::O_SYNC;
    let mut flags = (file.flags as i32 & keep) | libc::O_CLOEXEC | libc::O_NOCTTY;
    if path.is_dir() {
        flags = (flags & !libc::O_ACCMODE) | libc::O_RDONLY | libc::O_DIRECTORY;
    } else if flags & libc::O_ACCMODE != libc::O_RDONLY && !path.exists() {
        flags |= libc::O_CREAT;
    }
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| CriuError::Io { path: path.to_path_buf(), source: std::io::Error::other(e) })?;
    // SAFETY: `c` is a valid NUL-terminated path; open(2) returns a new descriptor or -1.
    let fd = unsafe { libc::open(c.as_ptr(), flags, 0o644 as libc::c_uint) };
    if fd < 0 {
        return Err(CriuError::io(path)(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if flags & (libc::O_APPEND | libc::O_DIRECTORY) == 0 && file.pos > 0 {
        // SAFETY: lseek(2) on a descriptor we own.
        unsafe { libc::lseek(fd.as_raw_fd(), file.pos as libc::off_t, libc::SEEK_SET) };
    }
    Ok(fd)
}

/// What restoring the checkpoint in `images` hands to `criu`: each file under one of `moved`, opened where it is
/// here, with the key CRIU knows it by (its old path without the leading `/`).
pub fn inherited(images: &Path, moved: &[Moved]) -> Result<Vec<(String, OwnedFd)>, CriuError> {
    let mut out: Vec<(String, OwnedFd)> = Vec::new();
    for file in images::reg_files(images)? {
        let Some(here) = moved_path(&file.name, moved) else { continue };
        let key = file.name.trim_start_matches('/').to_string();
        if out.iter().any(|(k, _)| *k == key) {
            continue;
        }
        out.push((key, reopen(&here, &file)?));
    }
    Ok(out)
}

/// Restores the checkpoint in `images` (detached), its files under `moved` reopened here, inside the cgroups whose
/// `cgroup.procs` files are `cgroups`; logs to `log`. Answers the restored root's pid.
pub async fn restore(images: &Path, moved: &[Moved], cgroups: &[PathBuf], log: &Path) -> Result<u32, CriuError> {
    let criu = binary().ok_or(CriuError::NoBinary)?;
    let inherit = inherited(images, moved)?;
    let mut procs = Vec::new();
    for path in cgroups {
        procs.push(std::fs::OpenOptions::new().write(true).open(path).map_err(CriuError::io(path))?);
    }
    let pidfile = images.join("restored.pid");
    let _ = std::fs::remove_file(&pidfile);
    let mut cmd = tokio::process::Command::new(criu);
    cmd.arg("restore").arg("--images-dir").arg(images).arg("--log-file").arg(log);
    cmd.args(COMMON).args(["--restore-detached", "--manage-cgroups=ignore"]).arg("--pidfile").arg(&pidfile);
    let mut moves: Vec<(RawFd, RawFd)> = Vec::new();
    let first = inherit.iter().map(|(_, fd)| fd.as_raw_fd() + 1).fold(FIRST_INHERITED, RawFd::max);
    for (n, (key, fd)) in inherit.iter().enumerate() {
        let target = first + n as RawFd;
        moves.push((fd.as_raw_fd(), target));
        cmd.arg("--inherit-fd").arg(format!("fd[{target}]:{key}"));
    }
    let procs_fds: Vec<RawFd> = procs.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: between fork and exec only async-signal-safe calls (write, dup2, fcntl) on descriptors that stay
    // open in the parent until the spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &procs_fds {
                if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (from, to) in &moves {
                if libc::dup2(*from, *to) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    run("restore", &mut cmd, log).await?;
    drop(inherit);
    let text = std::fs::read_to_string(&pidfile).map_err(CriuError::io(&pidfile))?;
    text.trim().parse().map_err(|_| CriuError::io(&pidfile)(std::io::Error::other(format!("no pid in `{text}`"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_under_a_moved_directory_are_found_here_and_others_stay() {
        let moved = [
            Moved { from: "/a/n1/native/x".into(), to: "/b/n2/native/x".into() },
            Moved { from: "/a/n1/volumes/x".into(), to: "/b/n2/volumes/x".into() },
        ];
        assert_eq!(moved_path("/a/n1/native/x/logs/stdout.log", &moved), Some("/b/n2/native/x/logs/stdout.log".into()));
        assert_eq!(moved_path("/a/n1/volumes/x/data/f", &moved), Some("/b/n2/volumes/x/data/f".into()));
        assert_eq!(moved_path("/a/n1/native/x", &moved), Some("/b/n2/native/x".into()));
        assert_eq!(moved_path("/a/n1/native/xy/f", &moved), None, "a sibling with a longer name is not under it");
        assert_eq!(moved_path("/usr/bin/sh", &moved), None);
    }
}
