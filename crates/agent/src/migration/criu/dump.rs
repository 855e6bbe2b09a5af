//! `criu dump`: checkpoints the process tree rooted at a pid into an images directory (made afresh). The tree is
//! frozen while its state is written and killed once it is all written (CRIU's default), so exactly one copy of
//! the process exists before and after: the running one, or the images. On a failure CRIU lets the tree run on.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{binary, run, CriuError, COMMON};

/// Checkpoints the tree of `pid` into `images` (replaced), logging to `log`; answers how long `criu` took.
pub async fn dump(pid: u32, images: &Path, log: &Path) -> Result<Duration, CriuError> {
    let criu = binary().ok_or(CriuError::NoBinary)?;
    match std::fs::remove_dir_all(images) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(CriuError::io(images)(e)),
        _ => {}
    }
    std::fs::create_dir_all(images).map_err(CriuError::io(images))?;
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(criu);
    cmd.arg("dump").arg("--tree").arg(pid.to_string()).arg("--images-dir").arg(images).arg("--log-file").arg(log);
    cmd.args(COMMON).arg("--manage-cgroups");
    run("dump", &mut cmd, log).await?;
    Ok(started.elapsed())
}
