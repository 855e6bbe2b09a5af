//! Who a native instance's processes run as: the entity's `runAs`, else the node's default unprivileged user
//! (`fos-entity`, created on first use). In the child, after the network namespace is entered and before the
//! program runs: supplementary groups, gid and uid set (real, effective and saved), every capability dropped from
//! the bounding, ambient, permitted, effective and inheritable sets, and `no_new_privs` set, so neither a set-uid
//! binary nor file capabilities can give any of it back. An agent that is not root starts processes as itself.

use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use fos_api::manifest::RunAs;
use nix::unistd::{Gid, Group, Uid, User};

use crate::runtime::RuntimeError;

/// The node's default user when its configuration names none.
pub const DEFAULT_USER: &str = "fos-entity";

/// A resolved user to run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user's name (or number).
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its gid.
    pub gid: u32,
}

/// Serialises the creation of the default user within this process (useradd also locks across processes).
static CREATING: Mutex<()> = Mutex::new(());

fn lookup_user(name: &str) -> Result<Option<User>, RuntimeError> {
    let found = match name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(name),
    };
    found.map_err(|e| RuntimeError::Failed(format!("looking up user {name}: {e}")))
}

fn lookup_group(name: &str) -> Result<u32, RuntimeError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(RuntimeError::Invalid(format!("runAs: no group {name} on this node"))),
        Err(e) => Err(RuntimeError::Failed(format!("looking up group {name}: {e}"))),
    }
}

/// Creates the system user `name` with a group of its own, no home and no login shell.
fn create_user(name: &str) -> Result<(), RuntimeError> {
    let _held = CREATING.lock().unwrap_or_else(|p| p.into_inner());
    for attempt in 0..20 {
        if lookup_user(name)?.is_some() {
            return Ok(());
        }
        let status = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"])
            .args(["--shell", "/usr/sbin/nologin", name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| RuntimeError::Failed(format!("creating user {name} with useradd: {e}")))?;
        if status.success() {
            tracing::info!(user = name, "created the node's unprivileged user for entities");
            return Ok(());
        }
        // 9: it exists (made by another agent meanwhile); 10: /etc/passwd is locked by another useradd.
        std::thread::sleep(std::time::Duration::from_millis(50 * (attempt + 1)));
    }
    match lookup_user(name)? {
        Some(_) => Ok(()),
        None => Err(RuntimeError::Failed(format!("could not create user {name} with useradd"))),
    }
}

/// Resolves `run_as`; `default` is the node's default user, created when missing. `None` when the agent is not
/// root and the process simply runs as the agent.
pub fn resolve(run_as: Option<&RunAs>, default: &RunAs) -> Result<Option<Identity>, RuntimeError> {
    let wanted = run_as.unwrap_or(default);
    if !Uid::effective().is_root() {
        let me = Uid::effective().as_raw();
        return match lookup_user(wanted.user())? {
            Some(u) if u.uid.as_raw() == me => Ok(None),
            _ if run_as.is_none() => Ok(None),
            _ => Err(RuntimeError::Unsupported("runAs: the agent is not root, so it cannot switch users")),
        };
    }
    let user = match lookup_user(wanted.user())? {
        Some(u) => u,
        None if run_as.is_none() && wanted.user().parse::<u32>().is_err() => {
            create_user(wanted.user())?;
            lookup_user(wanted.user())?
                .ok_or_else(|| RuntimeError::Failed(format!("user {} vanished after useradd", wanted.user())))?
        }
        None => match wanted.user().parse::<u32>() {
            // A bare uid with no passwd entry: its own number as gid unless a group is named.
            Ok(uid) => User { uid: Uid::from_raw(uid), gid: Gid::from_raw(uid), ..user_template(uid) },
            Err(_) => return Err(RuntimeError::Invalid(format!("runAs: no user {} on this node", wanted.user()))),
        },
    };
    let gid = match wanted.group().or_else(|| default_group(run_as, default)) {
        Some(g) => lookup_group(g)?,
        None => user.gid.as_raw(),
    };
    Ok(Some(Identity { name: wanted.user().to_string(), uid: user.uid.as_raw(), gid }))
}

/// The default's group applies only when the default user is used.
fn default_group<'a>(run_as: Option<&RunAs>, default: &'a RunAs) -> Option<&'a str> {
    run_as.is_none().then(|| default.group()).flatten()
}

fn user_template(uid: u32) -> User {
    User {
        name: uid.to_string(),
        passwd: Default::default(),
        uid: Uid::from_raw(uid),
        gid: Gid::from_raw(uid),
        gecos: Default::default(),
        dir: Default::default(),
        shell: Default::default(),
    }
}

/// Gives `dir` to the identity (the instance's working directory), so the process can write there.
pub fn give(dir: &Path, id: &Identity) -> Result<(), RuntimeError> {
    std::os::unix::fs::chown(dir, Some(id.uid), Some(id.gid)).map_err(|e| RuntimeError::io(dir, e))
}

/// Gives a volume and everything in it to `id`, when its top directory belongs to someone else (a volume received
/// from another node, or an entity whose user changed); a volume already `id`'s is left as it is.
pub fn give_tree(dir: &Path, id: &Identity) -> Result<(), RuntimeError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| RuntimeError::io(dir, e))?;
    if meta.uid() == id.uid && meta.gid() == id.gid {
        return Ok(());
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        std::os::unix::fs::lchown(&path, Some(id.uid), Some(id.gid)).map_err(|e| RuntimeError::io(&path, e))?;
        let meta = std::fs::symlink_metadata(&path).map_err(|e| RuntimeError::io(&path, e))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(|e| RuntimeError::io(&path, e))? {
                stack.push(entry.map_err(|e| RuntimeError::io(&path, e))?.path());
            }
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

/// Makes `cmd`'s process run as `id`, with no capabilities and `no_new_privs` (register after any hook that needs
/// privileges, such as entering a network namespace: hooks run in registration order).
pub fn apply(cmd: &mut Command, id: &Identity) {
    let (uid, gid) = (id.uid, id.gid);
    // SAFETY: the hook only makes async-signal-safe system calls (prctl, setgroups, setresgid, setresuid, capset)
    // on values copied into the closure; it allocates nothing.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || drop_privileges(uid, gid));
    }
}

fn check(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// In the child: the switch itself.
fn drop_privileges(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain system calls on integers and on stack values that outlive them.
    unsafe {
        // Out of the bounding set, every capability this kernel knows (EINVAL past the last one).
        for cap in 0..64 {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) < 0
                && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
            {
                break;
            }
        }
        check(libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) as libc::c_long)?;
        let groups = [gid as libc::gid_t];
        check(libc::setgroups(1, groups.as_ptr()) as libc::c_long)?;
        check(libc::setresgid(gid, gid, gid) as libc::c_long)?;
        check(libc::setresuid(uid, uid, uid) as libc::c_long)?;
        // Leaving root clears the permitted and effective sets; for uid 0 (an allowed `runAs: root`) clear them
        // here, with the inheritable set.
        let header = CapHeader { version: CAP_VERSION_3, pid: 0 };
        let data = [CapData { effective: 0, permitted: 0, inheritable: 0 }; 2];
        check(libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()))?;
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_numbers_resolve() {
        if !Uid::effective().is_root() {
            return;
        }
        let default = RunAs::Named("root".into());
        let root = resolve(None, &default).unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let numeric = resolve(Some(&RunAs::Named("4242".into())), &default).unwrap().unwrap();
        assert_eq!((numeric.uid, numeric.gid), (4242, 4242));
        let missing = resolve(Some(&RunAs::Named("no-such-user-fos".into())), &default).unwrap_err();
        assert!(missing.to_string().contains("no user no-such-user-fos"), "{missing}");
    }

    #[test]
    fn a_child_runs_without_privileges() {
        if !Uid::effective().is_root() {
            return;
        }
        let id = Identity { name: "4242".into(), uid: 4242, gid: 4243 };
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "id -u; id -g; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status"]);
        apply(&mut cmd, &id);
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(&lines[..2], ["4242", "4243"], "{text}");
        for field in ["CapEff", "CapPrm", "CapBnd"] {
            let line = lines.iter().find(|l| l.starts_with(field)).unwrap();
            assert!(line.ends_with("0000000000000000"), "{line}");
        }
        assert!(lines.iter().any(|l| l.starts_with("NoNewPrivs") && l.ends_with('1')), "{text}");
    }
}
