//! Content-addressed blobs: a [`Digest`] (`sha256:<64 hex>`, the only algorithm fos accepts) and the writer that
//! keeps a blob only once its content hashes to the digest it was asked under.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{ImageStore, OciError};

/// A content digest, `sha256:<64 lowercase hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<hex>`; any other algorithm or form is refused.
    pub fn parse(s: &str) -> Result<Self, String> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| format!("`{s}` is not a sha256 digest"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(format!("`{s}`: a sha256 digest has 64 lowercase hex digits"));
        }
        Ok(Digest(s.to_string()))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// The algorithm (`sha256`).
    pub fn algorithm(&self) -> &str {
        "sha256"
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The digest as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Digest {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Digest::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

/// A blob being written: hashed as it is written, kept only if it hashes to what was expected.
pub struct BlobWriter {
    file: std::fs::File,
    path: PathBuf,
    hasher: Sha256,
    written: u64,
}

impl BlobWriter {
    /// A new temporary blob in `store`'s temporary directory.
    pub fn new(store: &ImageStore) -> Result<Self, OciError> {
        let path = store.tmp_dir().join(format!("blob-{}-{}", std::process::id(), fastrand::u64(..)));
        let file = std::fs::File::create(&path).map_err(|e| OciError::io(&path, e))?;
        Ok(BlobWriter { file, path, hasher: Sha256::new(), written: 0 })
    }

    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), OciError> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.file.write_all(bytes).map_err(|e| OciError::io(&self.path, e))
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Keeps the blob as `expected` if its content hashes to it; otherwise removes it and says what arrived.
    /// `what` and `image` name the blob in the error.
    pub fn commit(self, store: &ImageStore, expected: &Digest, what: &str, image: &str) -> Result<PathBuf, OciError> {
        let actual = Digest(format!("sha256:{}", hex::encode(self.hasher.finalize())));
        let BlobWriter { file, path, .. } = self;
        drop(file);
        if &actual != expected {
            let _ = std::fs::remove_file(&path);
            return Err(OciError::DigestMismatch {
                what: what.to_string(),
                image: image.to_string(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        let dest = store.blob_path(expected);
        std::fs::rename(&path, &dest).map_err(|e| OciError::io(&dest, e))?;
        Ok(dest)
    }

    /// Drops the partial blob.
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Keeps `bytes` as blob `expected` after checking their digest.
pub fn put_bytes(
    store: &ImageStore,
    expected: &Digest,
    bytes: &[u8],
    what: &str,
    image: &str,
) -> Result<PathBuf, OciError> {
    let mut w = BlobWriter::new(store)?;
    w.write(bytes)?;
    w.commit(store, expected, what, image)
}

/// Copies the file at `from` in as blob `expected`, checking its digest.
pub fn put_file(
    store: &ImageStore,
    expected: &Digest,
    from: &Path,
    what: &str,
    image: &str,
) -> Result<PathBuf, OciError> {
    let mut input = std::fs::File::open(from).map_err(|e| OciError::io(from, e))?;
    let mut w = BlobWriter::new(store)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut input, &mut buf).map_err(|e| OciError::io(from, e))?;
        if n == 0 {
            break;
        }
        w.write(&buf[..n])?;
    }
    w.commit(store, expected, what, image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_kept_only_under_its_own_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let good = Digest::of(b"layer");
        let path = put_bytes(&store, &good, b"layer", "layer", "img").unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"layer");
        let err = put_bytes(&store, &Digest::of(b"other"), b"layer", "layer", "img").unwrap_err();
        assert!(matches!(err, OciError::DigestMismatch { .. }), "{err}");
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        assert!(!store.blob_path(&Digest::of(b"other")).exists(), "nothing kept under the wrong digest");
        assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0, "no partial file left");
    }

    #[test]
    fn digests_are_sha256_only() {
        assert!(Digest::parse("sha512:abcd").is_err());
        assert!(Digest::parse("sha256:ABCD").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "a".repeat(64))).is_ok());
    }
}
