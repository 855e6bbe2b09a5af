//! The free-space margin: an apply (which only grows what is stored) is refused when it would leave less than the
//! margin free on the data directory's file system, so that the space left is there for deletes, teardowns and
//! lease renewals (the embedded store also keeps a reserve file it gives back when the disk is full).

use std::path::Path;

use crate::ops::OpError;

/// The default margin: 64 MiB.
pub const DEFAULT_MARGIN: u64 = 64 << 20;

/// Free bytes on the file system holding `path`, for unprivileged writers.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `st` is plain old data, written by statvfs.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid out-pointer for the call's duration.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Refuses a write that grows the store when `dir` has less than `margin` bytes free.
pub fn check(dir: &Path, margin: u64) -> Result<(), OpError> {
    match free_bytes(dir) {
        Some(free) if free < margin => Err(OpError::NoSpace(format!(
            "only {} MiB free on the file system of {} (applies keep {} MiB free for deletes): delete something first",
            free >> 20,
            dir.display(),
            margin >> 20
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check(dir.path(), 0).is_ok());
        let err = check(dir.path(), u64::MAX).unwrap_err().to_string();
        assert!(err.contains("delete something first"), "{err}");
    }
}
