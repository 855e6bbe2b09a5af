//! The archive of an instance's volumes: a tar of its volumes directory (every volume, with modes, times and
//! owners), gzip-compressed at the fastest level (volumes are often already compressed data), written to a file with
//! its SHA-256 computed on the way, and unpacked on the destination into a fresh directory moved into place only
//! when complete.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use ring::digest::{Context, SHA256};

/// A file's length and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// Bytes in the archive.
    pub bytes: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
}

/// Writes through to a file while hashing and counting.
struct Hashing<W> {
    inner: W,
    digest: Context,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Packs the directory `dir` (missing: an empty archive) into `out` (replaced), blocking.
pub fn pack(dir: &Path, out: &Path) -> io::Result<Packed> {
    let tmp = out.with_extension("tmp");
    let file = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
    let hashing = Hashing { inner: file, digest: Context::new(&SHA256), bytes: 0 };
    let gz = flate2::write::GzEncoder::new(hashing, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    if dir.is_dir() {
        tar.append_dir_all(".", dir)?;
    }
    let gz = tar.into_inner()?;
    let mut hashing = gz.finish()?;
    hashing.flush()?;
    hashing.inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, out)?;
    Ok(Packed { bytes: hashing.bytes, sha256: hex(hashing.digest.finish().as_ref()) })
}

/// The length and SHA-256 of the file at `path`, blocking.
pub fn digest_file(path: &Path) -> io::Result<Packed> {
    let mut file = File::open(path)?;
    let mut digest = Context::new(&SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(Packed { bytes, sha256: hex(digest.finish().as_ref()) })
}

/// Unpacks `archive` into `dest` (replacing what was there) through a sibling directory renamed into place, so
/// `dest` holds either the old volumes or all of the new ones; blocking.
pub fn unpack(archive: &Path, dest: &Path) -> io::Result<()> {
    let parent = dest.parent().ok_or_else(|| io::Error::other("volumes directory has no parent"))?;
    std::fs::create_dir_all(parent)?;
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = parent.join(format!(".{name}.incoming"));
    remove_all(&staging)?;
    std::fs::create_dir_all(&staging)?;
    let gz = flate2::read::GzDecoder::new(std::io::BufReader::with_capacity(1 << 20, File::open(archive)?));
    let mut tar = tar::Archive::new(gz);
    tar.set_preserve_permissions(true);
    tar.set_preserve_ownerships(true);
    tar.set_preserve_mtime(true);
    tar.set_overwrite(true);
    tar.unpack(&staging)?;
    remove_all(dest)?;
    std::fs::rename(&staging, dest)
}

/// Removes a directory tree, when there.
pub fn remove_all(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_tree_unpacks_the_same_and_its_digest_is_the_files() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("data/sub")).unwrap();
        std::fs::write(src.join("data/counter"), b"1\n2\n3\n").unwrap();
        std::fs::write(src.join("data/sub/big"), vec![7u8; 3 << 20]).unwrap();
        std::os::unix::fs::symlink("counter", src.join("data/link")).unwrap();
        let out = tmp.path().join("a.tar.gz");
        let packed = pack(&src, &out).unwrap();
        assert_eq!(packed, digest_file(&out).unwrap());
        assert!(packed.bytes < 1 << 20, "compressed: {}", packed.bytes);
        let dest = tmp.path().join("dest");
        std::fs::create_dir_all(dest.join("stale")).unwrap();
        unpack(&out, &dest).unwrap();
        assert_eq!(std::fs::read(dest.join("data/counter")).unwrap(), b"1\n2\n3\n");
        assert_eq!(std::fs::read(dest.join("data/sub/big")).unwrap().len(), 3 << 20);
        assert_eq!(std::fs::read_link(dest.join("data/link")).unwrap(), Path::new("counter"));
        assert!(!dest.join("stale").exists(), "replaced, not merged");
    }
}
