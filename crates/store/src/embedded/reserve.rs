//! The space kept for a full disk: a file of zeros beside the database (written for real, so its blocks are
//! taken), removed when SQLite reports the disk full so that the writes that free space (deletes, teardowns) and
//! lease renewals still commit, and written again once there is room for it and a margin besides.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::StoreError;

/// The reserve file's name in the store directory.
pub const FILE: &str = "reserve";
/// The default reserve.
pub const DEFAULT_BYTES: u64 = 8 << 20;
/// How often a released reserve is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// The reserve file and whether it is held.
pub struct Reserve {
    path: PathBuf,
    bytes: u64,
    held: bool,
    last_try: Instant,
}

/// Whether `e` says the disk (or the database) is full.
pub fn is_full(e: &StoreError) -> bool {
    // rusqlite reports SQLITE_FULL as "database or disk is full"; an I/O error as the OS's ENOSPC text.
    matches!(e, StoreError::Database(m) if m.contains("database or disk is full") || m.contains("No space left"))
}

/// Free bytes for unprivileged writers on the file system holding `path`.
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid out-pointer for the call's duration.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

impl Reserve {
    /// Takes `bytes` at `path` (0: no reserve). A reserve that cannot be written (the disk is already full) is
    /// tried again later.
    pub fn new(path: PathBuf, bytes: u64) -> Reserve {
        let mut r = Reserve { path, bytes, held: false, last_try: Instant::now() };
        if bytes > 0 {
            r.take();
        }
        r
    }

    fn take(&mut self) {
        self.last_try = Instant::now();
        let written = (|| -> std::io::Result<()> {
            if std::fs::metadata(&self.path).map(|m| m.len() == self.bytes).unwrap_or(false) {
                return Ok(());
            }
            let mut f = std::fs::File::create(&self.path)?;
            let chunk = vec![0u8; 1 << 20];
            let mut left = self.bytes;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                f.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            f.sync_all()
        })();
        match written {
            Ok(()) => self.held = true,
            Err(e) => {
                let _ = std::fs::remove_file(&self.path);
                tracing::warn!(path = %self.path.display(), "cannot reserve space for a full disk: {e}");
            }
        }
    }

    /// Gives the reserve back to the file system; `false` when none was held.
    pub fn release(&mut self) -> bool {
        if !self.held {
            return false;
        }
        self.held = false;
        self.last_try = Instant::now();
        std::fs::remove_file(&self.path).is_ok()
    }

    /// Takes the reserve again when it was released and the disk has room for it twice over.
    pub fn restore_when_room(&mut self) {
        if self.held || self.bytes == 0 || self.last_try.elapsed() < RETRY {
            return;
        }
        self.last_try = Instant::now();
        let dir = self.path.parent().unwrap_or(std::path::Path::new("."));
        if free_bytes(dir).is_some_and(|free| free > self.bytes * 3) {
            self.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_taken_released_and_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut r = Reserve::new(path.clone(), 1 << 20);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
        assert!(r.release());
        assert!(!path.exists());
        assert!(!r.release(), "released once");
        assert!(is_full(&StoreError::Database("database or disk is full".into())));
        assert!(!is_full(&StoreError::Database("no such table".into())));
        assert!(free_bytes(dir.path()).is_some_and(|b| b > 0));
    }
}
