//! Instance output files: stdout and stderr appended straight to the files of the instance's context (so a process
//! outlives an agent restart without a broken pipe), rotated by size with copy-and-truncate. Reading them back is
//! [`crate::runtime::output`]'s.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Opens `path` for appending (created if missing): every write lands at the current end, even after a truncate.
pub fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// When `path` is larger than `max_bytes`, shifts `path.1..path.<keep-1>` up by one, copies `path` to `path.1`
/// and truncates `path` (the writer keeps its descriptor). Returns whether it rotated.
pub fn rotate_if_needed(path: &Path, max_bytes: u64, keep: u32) -> io::Result<bool> {
    let size = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if size <= max_bytes || keep == 0 {
        return Ok(false);
    }
    for n in (1..keep).rev() {
        let from = rotated(path, n);
        if from.exists() {
            fs::rename(&from, rotated(path, n + 1))?;
        }
    }
    fs::copy(path, rotated(path, 1))?;
    OpenOptions::new().write(true).open(path)?.set_len(0)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn rotation_keeps_the_writer_appending_and_bounds_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout.log");
        let mut writer = open_append(&path).unwrap();
        writer.write_all(&[b'a'; 100]).unwrap();
        assert!(!rotate_if_needed(&path, 200, 2).unwrap());
        writer.write_all(&[b'b'; 150]).unwrap();
        assert!(rotate_if_needed(&path, 200, 2).unwrap());
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
        assert_eq!(fs::metadata(rotated(&path, 1)).unwrap().len(), 250);
        writer.write_all(b"after\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "after\n", "no hole: the writer appends at the new end");
        writer.write_all(&[b'c'; 300]).unwrap();
        assert!(rotate_if_needed(&path, 200, 2).unwrap());
        assert_eq!(fs::metadata(rotated(&path, 2)).unwrap().len(), 250, "older copy shifted");
        assert!(!rotated(&path, 3).exists(), "only `keep` copies");
    }
}
