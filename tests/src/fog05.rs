//! fog05's own Python client for the fog05 REST tests: a virtual environment with `fog05rest==0.0.4` from PyPI
//! (what OSM's fos VIM connector imports), and the drive scripts of `tests/fog05/` run with it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Run;

/// A virtual environment with `fog05rest==0.0.4` in `dir`, its Python; `None`, saying so, when PyPI cannot be
/// reached (any other failure of pip fails the test).
pub fn venv(dir: &Path) -> Option<PathBuf> {
    let venv = dir.join("venv");
    let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).output().expect("running python3 -m venv");
    assert!(made.status.success(), "python3 -m venv: {}", String::from_utf8_lossy(&made.stderr));
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--disable-pip-version-check", "-q", "fog05rest==0.0.4"])
        .output()
        .expect("running pip");
    if !pip.status.success() {
        let err = String::from_utf8_lossy(&pip.stderr);
        let unreachable = ["Could not fetch", "Failed to establish", "Temporary failure", "No matching distribution"]
            .iter()
            .any(|s| err.contains(s));
        assert!(unreachable, "pip install fog05rest==0.0.4 failed:\n{err}");
        eprintln!("SKIPPED: PyPI is unreachable, so fog05rest==0.0.4 cannot be installed");
        return None;
    }
    Some(venv.join("bin/python"))
}

/// The path of drive script `name` (`tests/fog05/<name>`).
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fog05").join(name)
}

/// Whether a drive script's run went to its end (it prints `ok` last).
pub fn passed(run: &Run) -> bool {
    run.code == 0 && run.stdout.ends_with("ok\n")
}
