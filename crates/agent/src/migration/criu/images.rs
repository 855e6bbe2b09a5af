//! Reading what a checkpoint holds without CRIU's Python tools: the regular files (and directories: a process's
//! working directory is one) its processes had open, from `files.img`. A CRIU image is a magic number (after the
//! common one), then entries, each a little-endian `u32` length and a protobuf message; here each entry is a
//! `FileEntry` (`type` = 1, `reg` = 3: a `RegFileEntry` with `flags` = 2, `pos` = 3, `name` = 6).

use std::path::Path;

/// The magic every image starts with.
const COMMON_MAGIC: u32 = 0x5456_4319;
/// The magic of `files.img`.
const FILES_MAGIC: u32 = 0x5630_3138;
/// `fd_types.REG`.
const REG: u64 = 1;

/// A regular file (or directory) the checkpointed processes had open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegFile {
    /// Its absolute path when the checkpoint was made.
    pub name: String,
    /// The flags it was opened with (`O_*`).
    pub flags: u32,
    /// The file position.
    pub pos: u64,
}

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The image.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// It is not the image it should be.
    #[error("{0}: not a CRIU files image (or a damaged one)")]
    Format(std::path::PathBuf),
}

/// The regular files of the checkpoint in `images` (its `files.img`).
pub fn reg_files(images: &Path) -> Result<Vec<RegFile>, ImageError> {
    let path = images.join("files.img");
    let bytes = std::fs::read(&path).map_err(|source| ImageError::Io { path: path.clone(), source })?;
    parse_files(&bytes).ok_or(ImageError::Format(path))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The regular files of a `files.img`; `None` when it is not one.
pub fn parse_files(bytes: &[u8]) -> Option<Vec<RegFile>> {
    let mut at = 0;
    let mut magic = u32_at(bytes, at)?;
    at += 4;
    if magic == COMMON_MAGIC {
        magic = u32_at(bytes, at)?;
        at += 4;
    }
    if magic != FILES_MAGIC {
        return None;
    }
    let mut out = Vec::new();
    while at < bytes.len() {
        let len = u32_at(bytes, at)? as usize;
        at += 4;
        let entry = bytes.get(at..at + len)?;
        at += len;
        let mut kind = None;
        let mut reg = None;
        for (field, value) in Fields(entry) {
            match (field, value) {
                (1, Value::Varint(v)) => kind = Some(v),
                (3, Value::Bytes(b)) => reg = Some(b),
                _ => {}
            }
        }
        let (Some(REG), Some(reg)) = (kind, reg) else { continue };
        let mut file = RegFile { name: String::new(), flags: 0, pos: 0 };
        for (field, value) in Fields(reg) {
            match (field, value) {
                (2, Value::Varint(v)) => file.flags = v as u32,
                (3, Value::Varint(v)) => file.pos = v,
                (6, Value::Bytes(b)) => file.name = String::from_utf8_lossy(b).into_owned(),
                _ => {}
            }
        }
        out.push(file);
    }
    Some(out)
}

/// A protobuf field's value (only the wire types CRIU's messages use).
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of a protobuf message, in order; stops at the first malformed one.
struct Fields<'a>(&'a [u8]);

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u64, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let mut rest = self.0;
        let key = varint(&mut rest)?;
        let value = match key & 7 {
            0 => Value::Varint(varint(&mut rest)?),
            1 => {
                rest = rest.get(8..)?;
                Value::Fixed
            }
            2 => {
                let len = varint(&mut rest)? as usize;
                let b = rest.get(..len)?;
                rest = &rest[len..];
                Value::Bytes(b)
            }
            5 => {
                rest = rest.get(4..)?;
                Value::Fixed
            }
            _ => {
                self.0 = &[];
                return None;
            }
        };
        self.0 = rest;
        Some((key >> 3, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, wire: u64, out: &mut Vec<u8>) {
        put_varint((n << 3) | wire, out);
    }

    fn put_varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn bytes(n: u64, b: &[u8], out: &mut Vec<u8>) {
        field(n, 2, out);
        put_varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    #[test]
    fn the_regular_files_of_an_image_are_read_and_other_kinds_skipped() {
        let mut reg = Vec::new();
        field(1, 0, &mut reg);
        put_varint(7, &mut reg);
        field(2, 0, &mut reg);
        put_varint(0o2001, &mut reg);
        field(3, 0, &mut reg);
        put_varint(300, &mut reg);
        bytes(5, &[8, 0], &mut reg);
        bytes(6, b"/data/native/x/logs/stdout.log", &mut reg);
        field(9, 5, &mut reg);
        reg.extend_from_slice(&[0, 0, 0, 0]);
        let mut entry = Vec::new();
        field(1, 0, &mut entry);
        put_varint(REG, &mut entry);
        field(2, 0, &mut entry);
        put_varint(7, &mut entry);
        bytes(3, &reg, &mut entry);
        let mut pipe = Vec::new();
        field(1, 0, &mut pipe);
        put_varint(6, &mut pipe);
        bytes(18, &[8, 1], &mut pipe);
        let mut image = Vec::new();
        image.extend_from_slice(&COMMON_MAGIC.to_le_bytes());
        image.extend_from_slice(&FILES_MAGIC.to_le_bytes());
        for e in [&entry, &pipe] {
            image.extend_from_slice(&(e.len() as u32).to_le_bytes());
            image.extend_from_slice(e);
        }
        let files = parse_files(&image).expect("parsed");
        assert_eq!(files, vec![RegFile { name: "/data/native/x/logs/stdout.log".into(), flags: 0o2001, pos: 300 }]);
        assert!(parse_files(&image[..image.len() - 1]).is_none(), "a truncated image is refused");
        assert!(parse_files(&[0; 8]).is_none(), "another image is refused");
    }
}
