//! The `runc` command line, one call per lifecycle verb, every one with the agent's own state directory
//! (`--root <data>/container/.runc`), so agents sharing a machine never see each other's containers.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::{Child, Command};

use crate::runtime::RuntimeError;

/// How long one runc call (other than `run`) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a checkpoint may take (CRIU writes the container's memory out).
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(300);

/// What `runc checkpoint` and `runc restore` both take: established TCP connections and file locks are carried
/// (a restore where the addresses are not there fails, and the instance starts afresh instead).
const CRIU_OPTIONS: &[&str] = &["--tcp-established", "--file-locks"];

/// A container as `runc state` reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct ContainerState {
    /// `created`, `running`, `paused` or `stopped`.
    pub status: String,
    /// The container's init process (0 once stopped).
    #[serde(default)]
    pub pid: u32,
}

/// One runc binary with one state directory.
#[derive(Debug, Clone)]
pub struct Runc {
    bin: PathBuf,
    root: PathBuf,
}

impl Runc {
    /// `bin` keeping its state under `root`.
    pub fn new(bin: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        Runc { bin: bin.into(), root: root.into() }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(&self.root).stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }

    async fn call(&self, args: &[&str]) -> Result<String, RuntimeError> {
        let what = format!("runc {}", args.join(" "));
        let mut cmd = self.command();
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = tokio::time::timeout(CALL_TIMEOUT, cmd.output())
            .await
            .map_err(|_| RuntimeError::Failed(format!("{what}: no answer in {}s", CALL_TIMEOUT.as_secs())))?
            .map_err(|source| RuntimeError::Spawn { command: self.bin.display().to_string(), source })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            let err = err.lines().last().unwrap_or("").trim();
            Err(RuntimeError::Failed(format!("{what}: {} ({})", err, out.status)))
        }
    }

    /// `runc --version`: whether runc can be run at all.
    pub async fn version(&self) -> Result<String, RuntimeError> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--version").stdout(Stdio::piped()).stderr(Stdio::null());
        let out = cmd
            .output()
            .await
            .map_err(|source| RuntimeError::Spawn { command: self.bin.display().to_string(), source })?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.lines().next().unwrap_or("runc").to_string())
    }

    /// Whether runc keeps state for container `id` (its directory under the state root): without it, `state` and
    /// `delete` have nothing to report or remove, and are not run.
    pub fn knows(&self, id: &str) -> bool {
        self.root.join(id).exists()
    }

    /// The container's state, `None` when runc does not know it.
    pub async fn state(&self, id: &str) -> Result<Option<ContainerState>, RuntimeError> {
        if !self.knows(id) {
            return Ok(None);
        }
        match self.call(&["state", id]).await {
            Ok(json) => {
                serde_json::from_str(&json).map(Some).map_err(|e| RuntimeError::Failed(format!("runc state {id}: {e}")))
            }
            Err(RuntimeError::Failed(msg)) if msg.contains("does not exist") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Starts `runc run` (create and start in one process that stays the agent's child until the container ends,
    /// so its exit status is the container's) with the container's output going to `stdout` and `stderr`. runc
    /// writes the container's init pid to `pid_file` once the container is running (the user's process started).
    pub fn spawn_run(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        stdout: std::fs::File,
        stderr: std::fs::File,
    ) -> Result<Child, RuntimeError> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(&self.root).arg("run").arg("--bundle").arg(bundle).arg("--pid-file").arg(pid_file);
        cmd.arg("--no-new-keyring").arg(id);
        // Its own process group: a signal meant for the agent never reaches it, and it outlives an agent restart.
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr).process_group(0).kill_on_drop(false);
        cmd.spawn().map_err(|source| RuntimeError::Spawn { command: self.bin.display().to_string(), source })
    }

    /// `runc checkpoint`: CRIU (`criu`) writes the container's processes into `images` (CRIU's own files and log in
    /// `work`); runc then removes the container, its processes gone. On a failure the container runs on.
    pub async fn checkpoint(&self, id: &str, criu: &Path, images: &Path, work: &Path) -> Result<(), RuntimeError> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(&self.root).arg("--criu").arg(criu).arg("checkpoint");
        cmd.arg("--image-path").arg(images).arg("--work-path").arg(work).args(CRIU_OPTIONS).arg(id);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
        let what = format!("runc checkpoint {id}");
        let out = tokio::time::timeout(CHECKPOINT_TIMEOUT, cmd.output())
            .await
            .map_err(|_| RuntimeError::Failed(format!("{what}: no answer in {}s", CHECKPOINT_TIMEOUT.as_secs())))?
            .map_err(|source| RuntimeError::Spawn { command: self.bin.display().to_string(), source })?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.lines().last().unwrap_or("").trim().to_string();
        let criu = crate::migration::criu::log_errors(&work.join("dump.log"));
        let criu = if criu.is_empty() { String::new() } else { format!("; criu: {criu}") };
        Err(RuntimeError::Failed(format!("{what}: {err} ({}){criu}", out.status)))
    }

    /// Starts `runc restore` of the checkpoint in `images` with the bundle `bundle` (its configuration as this node
    /// wrote it), like [`Runc::spawn_run`]: a process that stays the agent's child until the container ends, the
    /// container's output (the pipes the checkpoint recorded, in `descriptors.json`, given new ones) going to
    /// `stdout` and `stderr`, the restored init's pid written to `pid_file` once it runs. CRIU's log is in `work`.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn_restore(
        &self,
        id: &str,
        criu: &Path,
        bundle: &Path,
        images: &Path,
        work: &Path,
        pid_file: &Path,
        stdout: std::fs::File,
        stderr: std::fs::File,
    ) -> Result<Child, RuntimeError> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(&self.root).arg("--criu").arg(criu).arg("restore").arg("--bundle").arg(bundle);
        cmd.arg("--image-path").arg(images).arg("--work-path").arg(work).arg("--pid-file").arg(pid_file);
        cmd.args(CRIU_OPTIONS).arg(id);
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr).process_group(0).kill_on_drop(false);
        cmd.spawn().map_err(|source| RuntimeError::Spawn { command: self.bin.display().to_string(), source })
    }

    /// Sends `signal` to the container's processes (`all`: every process, not only its init).
    pub async fn kill(&self, id: &str, signal: &str, all: bool) -> Result<(), RuntimeError> {
        let args: Vec<&str> = if all { vec!["kill", "--all", id, signal] } else { vec!["kill", id, signal] };
        self.call(&args).await.map(|_| ())
    }

    /// Removes the container whatever its state (`delete --force`); a container runc does not know is fine.
    pub async fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        if !self.knows(id) {
            return Ok(());
        }
        match self.call(&["delete", "--force", id]).await {
            Err(RuntimeError::Failed(msg)) if msg.contains("does not exist") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Freezes the container.
    pub async fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.call(&["pause", id]).await.map(|_| ())
    }

    /// Thaws the container.
    pub async fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        self.call(&["resume", id]).await.map(|_| ())
    }

    /// Runs `argv` in the container; whether it exits 0 within `timeout` (killed otherwise).
    pub async fn exec_ok(&self, id: &str, argv: &[String], timeout: Duration) -> bool {
        let mut cmd = self.command();
        cmd.arg("exec").arg(id).args(argv).stdout(Stdio::null()).stderr(Stdio::null());
        let Ok(mut child) = cmd.spawn() else { return false };
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                let _ = child.kill().await;
                false
            }
        }
    }
}
