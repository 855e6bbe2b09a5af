//! The OCI runtime spec (`config.json`, built with `oci-spec`) of a container instance: its argv (the entity's
//! `command`, else the image's entrypoint and cmd), environment (the image's, then the entity's with its Secret
//! values, then the injected one), working directory, user, a read-only root with a private `/tmp`, the
//! instance's network namespace (or the node's when it has no networks), and its cgroup under the instance's group,
//! which holds its limits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fos_api::manifest::RunAs;
use fos_api::record::DesiredInstance;
use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilities, LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::oci::ImageConfig;
use crate::runtime::{InstanceContext, RuntimeError};

/// A uid and gid inside the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// The argv: the entity's `command` when it has one, else the image's entrypoint followed by its cmd.
pub fn argv(desired: &DesiredInstance, image: &ImageConfig) -> Result<Vec<String>, RuntimeError> {
    let argv = if desired.entity.command.is_empty() {
        let mut argv = image.entrypoint.clone().unwrap_or_default();
        argv.extend(image.cmd.clone().unwrap_or_default());
        argv
    } else {
        desired.entity.command.clone()
    };
    if argv.is_empty() {
        return Err(RuntimeError::Invalid("the image has no entrypoint or cmd and the entity no `command`".into()));
    }
    Ok(argv)
}

/// The environment: a base `PATH`, the image's, the entity's (Secret references by their values), the injected one.
pub fn env(desired: &DesiredInstance, image: &ImageConfig, cx: &InstanceContext) -> Vec<String> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_string(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string());
    for entry in image.env.iter().flatten() {
        if let Some((k, v)) = entry.split_once('=') {
            env.insert(k.to_string(), v.to_string());
        }
    }
    env.insert("FOS_INSTANCE".to_string(), desired.id.to_string());
    env.insert("FOS_NODE".to_string(), desired.node.clone());
    env.extend(desired.entity.env.iter().filter_map(|(k, v)| match v.as_plain() {
        Some(plain) => Some((k.clone(), plain.to_string())),
        None => cx.secret_env.0.get(k).map(|s| (k.clone(), s.clone())),
    }));
    env.extend(desired.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Who the container's processes run as: the entity's `runAs`, else the image's `User` unless it is root, else the
/// node's default (`user[:group]`). Names are looked up in the container's `/etc/passwd` and `/etc/group`.
pub fn ids(desired: &DesiredInstance, image: &ImageConfig, default: &str, rootfs: &Path) -> Result<Ids, RuntimeError> {
    let split = |s: &str| match s.split_once(':') {
        Some((u, g)) => (u.to_string(), Some(g.to_string())),
        None => (s.to_string(), None),
    };
    let (user, group) = match &desired.entity.run_as {
        Some(RunAs::Named(n)) => (n.clone(), None),
        Some(RunAs::User(u)) => (u.user.clone(), u.group.clone()),
        None => {
            let from_image = image.user.clone().filter(|u| !u.is_empty());
            let not_root = from_image.filter(|u| !matches!(u.split(':').next(), Some("root" | "0")));
            split(&not_root.unwrap_or_else(|| default.to_string()))
        }
    };
    let passwd = read_db(rootfs, "etc/passwd");
    let (uid, primary) = match user.parse::<u32>() {
        Ok(uid) => {
            let line = passwd.iter().find(|f| f.get(2).is_some_and(|u| u.parse() == Ok(uid)));
            (uid, line.and_then(|f| f.get(3)).and_then(|g| g.parse().ok()))
        }
        Err(_) => {
            let line = passwd
                .iter()
                .find(|f| f.first() == Some(&user))
                .ok_or_else(|| RuntimeError::Invalid(format!("user `{user}` is not in the image's /etc/passwd")))?;
            let uid = line.get(2).and_then(|s| s.parse().ok());
            let uid = uid.ok_or_else(|| RuntimeError::Invalid(format!("user `{user}`: bad /etc/passwd line")))?;
            (uid, line.get(3).and_then(|s| s.parse().ok()))
        }
    };
    let gid = match group {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => read_db(rootfs, "etc/group")
                .iter()
                .find(|f| f.first() == Some(&g))
                .and_then(|l| l.get(2).and_then(|s| s.parse().ok()))
                .ok_or_else(|| RuntimeError::Invalid(format!("group `{g}` is not in the image's /etc/group")))?,
        },
        None => primary.unwrap_or(uid),
    };
    Ok(Ids { uid, gid })
}

fn read_db(rootfs: &Path, file: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(rootfs.join(file)).unwrap_or_default();
    text.lines().map(|l| l.split(':').map(str::to_string).collect()).collect()
}

/// Everything the spec is made from.
pub struct SpecInput<'a> {
    /// The desired record.
    pub desired: &'a DesiredInstance,
    /// The image's defaults.
    pub image: &'a ImageConfig,
    /// The instance's context (netns, volumes, Secret values).
    pub cx: &'a InstanceContext,
    /// Who runs it.
    pub ids: Ids,
    /// The cgroup path runc puts it in.
    pub cgroups_path: PathBuf,
}

/// Builds the runtime spec.
pub fn build(input: &SpecInput<'_>) -> Result<Spec, RuntimeError> {
    let bad = |e: oci_spec::OciSpecError| RuntimeError::Failed(format!("runtime spec: {e}"));
    let SpecInput { desired, image, cx, ids, cgroups_path } = input;
    let cwd = desired
        .entity
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    if !cwd.starts_with('/') {
        return Err(RuntimeError::Invalid(format!("workingDir `{cwd}` of a container must be an absolute path")));
    }
    let user = UserBuilder::default().uid(ids.uid).gid(ids.gid).build().map_err(bad)?;
    let mut process = ProcessBuilder::default()
        .terminal(false)
        .args(argv(desired, image)?)
        .env(env(desired, image, cx))
        .cwd(cwd)
        .user(user)
        .no_new_privileges(true)
        .build()
        .map_err(bad)?;
    if ids.uid == 0 {
        process.set_capabilities(Some(LinuxCapabilities::default()));
    } else {
        // Not root: no capability at all.
        let mut none = LinuxCapabilities::default();
        none.set_bounding(Some(Default::default()))
            .set_effective(Some(Default::default()))
            .set_inheritable(Some(Default::default()))
            .set_permitted(Some(Default::default()))
            .set_ambient(Some(Default::default()));
        process.set_capabilities(Some(none));
    }
    let mut namespaces = Vec::new();
    for typ in [LinuxNamespaceType::Pid, LinuxNamespaceType::Ipc, LinuxNamespaceType::Uts, LinuxNamespaceType::Mount] {
        namespaces.push(LinuxNamespaceBuilder::default().typ(typ).build().map_err(bad)?);
    }
    if let Some(ns) = &cx.netns {
        namespaces
            .push(LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Network).path(ns).build().map_err(bad)?);
    }
    let mut linux =
        LinuxBuilder::default().namespaces(namespaces).cgroups_path(cgroups_path.clone()).build().map_err(bad)?;
    linux.set_masked_paths(Some(oci_spec::runtime::get_default_maskedpaths()));
    linux.set_readonly_paths(Some(oci_spec::runtime::get_default_readonly_paths()));
    let mut mounts = oci_spec::runtime::get_default_mounts();
    let tmp = ["nosuid", "nodev", "mode=1777", "size=64m"].map(String::from).to_vec();
    mounts.push(
        MountBuilder::default().destination("/tmp").typ("tmpfs").source("tmpfs").options(tmp).build().map_err(bad)?,
    );
    for (name, dir) in &cx.volumes {
        let options = vec!["rbind".to_string(), "rw".to_string()];
        // At its `mountPath` (required for containers), else under /volumes.
        let at = desired.entity.volumes.iter().find(|v| v.name == *name).and_then(|v| v.mount_path.clone());
        let at = at.unwrap_or_else(|| format!("/volumes/{name}"));
        let mount = MountBuilder::default().destination(at).typ("bind").source(dir);
        mounts.push(mount.options(options).build().map_err(bad)?);
    }
    SpecBuilder::default()
        .version("1.0.2")
        .root(RootBuilder::default().path("rootfs").readonly(true).build().map_err(bad)?)
        .hostname(desired.id.component.clone())
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(bad)
}
