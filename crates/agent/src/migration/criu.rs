//! The node's CRIU capability: a `criu` binary (on `PATH`, else `/usr/local/sbin/criu` where `make deps` installs
//! the one it builds) whose `criu check` passes on this kernel. The agent publishes the outcome as the `criu` plugin
//! record (`actual/nodes/<node>/plugins/criu`), which `fosctl migrate --live` looks at on both nodes.

use std::path::PathBuf;

use fos_api::manifest::EntityKind;
use fos_api::PluginRecord;

/// Where `make deps` installs the CRIU it builds.
pub const INSTALLED: &str = "/usr/local/sbin/criu";

/// The plugin name of the record.
pub const PLUGIN: &str = "criu";

/// The `criu` binary to use: on `PATH`, else [`INSTALLED`].
pub fn binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("criu")).find(|p| p.is_file()));
    on_path.or_else(|| Some(PathBuf::from(INSTALLED)).filter(|p| p.is_file()))
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
    let detail = Some(format!("{} ({})", criu.display(), version.unwrap_or_default()));
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
