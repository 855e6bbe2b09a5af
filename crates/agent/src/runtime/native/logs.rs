//! Instance output files: stdout and stderr appended straight to files (so a process outlives an agent restart
//! without a broken pipe), rotated by size with copy-and-truncate, and read back by tail.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The output files of an instance, in the order `logs` shows them.
pub const LOG_FILES: [&str; 2] = ["stdout.log", "stderr.log"];

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

/// The last `lines` lines of `path` (reading at most the last 256 KiB).
pub fn tail(path: &Path, lines: usize) -> io::Result<String> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(256 * 1024);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    let mut out = all[from..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(out)
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

    #[test]
    fn tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        fs::write(&path, "1\n2\n3\n4\n").unwrap();
        assert_eq!(tail(&path, 2).unwrap(), "3\n4\n");
        assert_eq!(tail(&dir.path().join("missing"), 2).unwrap(), "");
    }
}
