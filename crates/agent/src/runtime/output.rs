//! Reading an instance's output back: the last lines of its files, and a byte stream of them (from the end minus
//! `tail_bytes`, following what is appended) that the agent serves to the API. A runtime whose instances write
//! their output to files gets both from [`crate::runtime::Runtime`]'s provided methods.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How often a followed output is checked for more.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Largest chunk read from one file at a time.
const CHUNK: usize = 64 * 1024;

/// What part of an instance's output to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputOptions {
    /// Keep streaming what is appended (the stream never ends by itself).
    pub follow: bool,
    /// Only the last this many bytes of each file of what is there already (`None`: all of it).
    pub tail_bytes: Option<u64>,
}

/// An instance's output as a stream of chunks.
pub type OutputStream = Pin<Box<dyn Stream<Item = io::Result<Vec<u8>>> + Send>>;

/// The files that exist among `paths` as one stream (chunks of each in turn), or `None` when none exists yet. A
/// followed file that shrinks (rotated by copy-and-truncate) is read again from its start.
pub async fn stream_files(paths: &[PathBuf], options: OutputOptions) -> Option<OutputStream> {
    let mut files = Vec::new();
    for path in paths {
        let Ok(mut file) = tokio::fs::File::open(path).await else { continue };
        if let (Some(tail), Ok(meta)) = (options.tail_bytes, file.metadata().await) {
            let _ = file.seek(SeekFrom::Start(meta.len().saturating_sub(tail))).await;
        }
        files.push(file);
    }
    if files.is_empty() {
        return None;
    }
    let follow = options.follow;
    let stream = futures::stream::unfold(files, move |mut files| async move {
        loop {
            let mut chunk = Vec::new();
            for file in files.iter_mut() {
                let mut buf = vec![0u8; CHUNK];
                match file.read(&mut buf).await {
                    Ok(0) if follow => rewind_if_truncated(file).await,
                    Ok(n) => chunk.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
            }
            if !chunk.is_empty() {
                return Some((Ok(chunk), files));
            }
            if !follow {
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    });
    Some(Box::pin(stream))
}

/// Goes back to the start of a file that became shorter than the position read so far.
async fn rewind_if_truncated(file: &mut tokio::fs::File) {
    let (Ok(position), Ok(meta)) = (file.stream_position().await, file.metadata().await) else { return };
    if meta.len() < position {
        let _ = file.seek(SeekFrom::Start(0)).await;
    }
}

/// The last `lines` lines of `path` (reading at most its last 256 KiB); empty when it does not exist.
pub fn tail_lines(path: &Path, lines: usize) -> io::Result<String> {
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
    use futures::StreamExt;
    use std::io::Write;

    #[test]
    fn tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        std::fs::write(&path, "1\n2\n3\n4\n").unwrap();
        assert_eq!(tail_lines(&path, 2).unwrap(), "3\n4\n");
        assert_eq!(tail_lines(&dir.path().join("missing"), 2).unwrap(), "");
    }

    #[tokio::test]
    async fn a_stream_reads_the_tail_of_each_file_and_follows_appends() {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("stdout.log"), dir.path().join("stderr.log"));
        let missing = dir.path().join("missing.log");
        assert!(stream_files(std::slice::from_ref(&missing), OutputOptions::default()).await.is_none());
        std::fs::write(&out, "old\nnew\n").unwrap();
        std::fs::write(&err, "warn\n").unwrap();
        let files = [out.clone(), missing, err];
        let all: Vec<u8> =
            stream_files(&files, OutputOptions::default()).await.unwrap().map(|c| c.unwrap()).concat().await;
        assert_eq!(String::from_utf8(all).unwrap(), "old\nnew\nwarn\n");
        let options = OutputOptions { follow: true, tail_bytes: Some(4) };
        let mut followed = stream_files(&files[..1], options).await.unwrap();
        assert_eq!(followed.next().await.unwrap().unwrap(), b"new\n");
        std::fs::OpenOptions::new().append(true).open(&out).unwrap().write_all(b"more\n").unwrap();
        assert_eq!(followed.next().await.unwrap().unwrap(), b"more\n");
        // Rotated by copy-and-truncate: what is written afterwards is read from the start.
        std::fs::OpenOptions::new().write(true).open(&out).unwrap().set_len(0).unwrap();
        std::fs::OpenOptions::new().append(true).open(&out).unwrap().write_all(b"after\n").unwrap();
        assert_eq!(followed.next().await.unwrap().unwrap(), b"after\n");
    }
}
