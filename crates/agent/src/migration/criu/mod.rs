//! The node's CRIU capability: a `criu` binary (on `PATH`, else `/usr/local/sbin/criu` where `make deps` installs
//! the one it builds) whose `criu check` passes on this kernel. The agent publishes the outcome as the `criu` plugin
//! record (`actual/nodes/<node>/plugins/criu`), which `fosctl migrate --live` looks at on both nodes.
//!
//! The two verbs of a live migration, each in its own file: [`dump`] (checkpoint a process tree into an images
//! directory; the tree is gone afterwards) and [`restore`] (bring it back from the images, detached, its files
//! under the node's directories reopened where this node keeps them); [`images`] reads which files a checkpoint
//! holds.

pub mod dump;
pub mod images;
pub mod restore;

use std::path::{Path, PathBuf};

use fos_api::manifest::EntityKind;
use fos_api::PluginRecord;

/// Where `make deps` installs the CRIU it builds.
pub const INSTALLED: &str = "/usr/local/sbin/criu";

/// Where a runtime keeps a checkpoint, relative to the instance's volumes directory (so the images travel with the
/// volumes; not a volume name: those are DNS labels, so never seen by the entity).
pub const CHECKPOINT_DIR: &str = ".checkpoint";

/// The directory of a checkpoint at `location` (a ticket's), relative to the volumes directory `volumes`; refused
/// when it would leave it.
pub fn checkpoint_dir(volumes: &Path, location: &str) -> Result<PathBuf, String> {
    let rel = Path::new(location);
    if location.is_empty() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(format!("checkpoint location `{location}` must stay inside the volumes"));
    }
    Ok(volumes.join(rel))
}

/// The plugin name of the record.
pub const PLUGIN: &str = fos_api::node::CRIU_PLUGIN;

/// The `criu` binary to use: on `PATH`, else [`INSTALLED`].
pub fn binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("criu")).find(|p| p.is_file()));
    on_path.or_else(|| Some(PathBuf::from(INSTALLED)).filter(|p| p.is_file()))
}

/// Whether this process has `CAP_SYS_RESOURCE`, without which CRIU cannot read the resource limits of a process of
/// another user (so cannot checkpoint it).
pub fn has_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).map(str::trim);
    eff.and_then(|hex| u64::from_str_radix(hex, 16).ok()).is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// Runs `criu check` (and `--version`) and says what it found, as the plugin record.
pub async fn probe() -> PluginRecord {
    let record = |ready: bool, error: Option<String>, detail: Option<String>| PluginRecord {
        plugin_type: "checkpoint".into(),
        entity_kind: EntityKind::Native,
        ready,
        error,
        detail,
    };
    let Some(criu) = binary() else {
        return record(false, Some("no criu binary (on PATH or /usr/local/sbin/criu)".into()), None);
    };
    let version = tokio::process::Command::new(&criu).arg("--version").output().await;
    let version = version.ok().map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string());
    let mut detail = format!("{} ({})", criu.display(), version.unwrap_or_default());
    if !has_sys_resource() {
        detail.push_str("; the agent lacks CAP_SYS_RESOURCE: only processes running as root can be checkpointed");
    }
    let detail = Some(detail);
    match tokio::process::Command::new(&criu).arg("check").output().await {
        Ok(o) if o.status.success() => record(true, None, detail),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("criu check failed").to_string();
            record(false, Some(format!("criu check: {last}")), detail)
        }
        Err(e) => record(false, Some(format!("{}: {e}", criu.display())), detail),
    }
}

/// Options both verbs take: a native process leads its own session (`--shell-job` still lets a process started
/// inside the agent's session, by an older agent, be carried), and its established TCP connections, file locks and sockets to outside processes are
/// carried (where the destination can take them).
const COMMON: &[&str] = &["--shell-job", "--tcp-established", "--file-locks", "--ext-unix-sk"];

/// Why a checkpoint or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    /// No `criu` binary on this node.
    #[error("no criu binary (on PATH or /usr/local/sbin/criu)")]
    NoBinary,
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `criu` ran and failed.
    #[error("criu {verb} failed ({status}): {reason} (log: {log})")]
    Failed {
        /// `dump` or `restore`.
        verb: &'static str,
        /// Its exit status.
        status: String,
        /// The last errors of its log.
        reason: String,
        /// Its log file.
        log: PathBuf,
    },
    /// The checkpoint's images could not be read.
    #[error(transparent)]
    Image(#[from] images::ImageError),
}

impl CriuError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CriuError + '_ {
        move |source| CriuError::Io { path: path.to_path_buf(), source }
    }
}

/// The last error lines of a CRIU log (what went wrong, in its words).
pub fn log_errors(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("Error") || l.contains("rror (")).collect();
    let tail: Vec<&str> = match errors.is_empty() {
        true => text.lines().rev().take(2).collect::<Vec<_>>().into_iter().rev().collect(),
        false => errors[errors.len().saturating_sub(3)..].to_vec(),
    };
    tail.iter().map(|l| l.trim()).collect::<Vec<_>>().join("; ")
}

/// Runs `criu` with `args` and waits for it; a failure carries the end of its log.
async fn run(verb: &'static str, cmd: &mut tokio::process::Command, log: &Path) -> Result<(), CriuError> {
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let out = cmd.output().await.map_err(CriuError::io(Path::new("criu")))?;
    if out.status.success() {
        return Ok(());
    }
    let mut reason = log_errors(log);
    if reason.is_empty() {
        reason = String::from_utf8_lossy(&out.stderr).trim().to_string();
    }
    Err(CriuError::Failed { verb, status: out.status.to_string(), reason, log: log.to_path_buf() })
}
