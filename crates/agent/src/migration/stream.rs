//! The stream of a migration's data: the directories to move ([`Part`]s, each under its name) as one tar stream
//! (every entry in name order, with modes, owners and mtimes: the same directories give the same bytes, so a sender
//! that restarts produces the stream again and skips what arrived), cut into frames of [`FRAME`] bytes, each
//! LZ4-compressed only when a sample of it compresses (random or already compressed data goes as it is), with the
//! SHA-256 of the whole (uncompressed) stream computed on the way. [`Decoder`] turns frames back into the stream.
//!
//! A frame on the wire: codec (1 byte: 0 raw, 1 LZ4), the stream bytes it carries (u32 LE), its length (u32 LE),
//! then the data.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ring::digest::{Context, SHA256};

/// Stream bytes per frame.
pub const FRAME: usize = 1 << 20;

/// Bytes of a frame's header.
pub const HEADER: usize = 9;

/// The sample of a frame compressed to decide whether the frame is.
const SAMPLE: usize = 64 << 10;

const RAW: u8 = 0;
const LZ4: u8 = 1;

/// A directory to move, under its name (the destination finds it under the same name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its name in the stream (a plain file name).
    pub name: String,
    /// The directory (missing: nothing is sent for it).
    pub dir: PathBuf,
}

/// The whole stream's length and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streamed {
    /// Bytes of the (uncompressed) stream.
    pub bytes: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
}

/// One frame, encoded.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Where the stream stands after it.
    pub end: u64,
    /// The frame as sent (header and data).
    pub data: Vec<u8>,
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The length of the stream of `parts`, from their files' sizes (long names add a little), blocking.
pub fn estimate(parts: &[Part]) -> u64 {
    fn walk(dir: &Path) -> u64 {
        let mut n = 512;
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => n += walk(&e.path()),
                Ok(t) if t.is_file() => n += 512 + e.metadata().map(|m| m.len().div_ceil(512) * 512).unwrap_or(0),
                Ok(t) if t.is_symlink() => n += 512,
                _ => {}
            }
        }
        n
    }
    parts.iter().filter(|p| p.dir.is_dir()).map(|p| walk(&p.dir)).sum::<u64>() + 1024
}

/// Hashes the whole stream, drops what precedes `resume`, and cuts the rest into frames handed to `out`.
struct Framer<'a> {
    digest: Context,
    pos: u64,
    resume: u64,
    buf: Vec<u8>,
    out: &'a mut dyn FnMut(Frame) -> io::Result<()>,
}

impl Framer<'_> {
    fn emit(&mut self, end: u64) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let frame = encode(&self.buf, end);
        self.buf.clear();
        (self.out)(frame)
    }
}

impl Write for Framer<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.digest.update(data);
        let start = self.pos;
        let skip = self.resume.saturating_sub(start).min(data.len() as u64) as usize;
        let (mut at, mut rest) = (start + skip as u64, &data[skip..]);
        while !rest.is_empty() {
            let take = (FRAME - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            at += take as u64;
            if self.buf.len() == FRAME {
                self.emit(at)?;
            }
        }
        self.pos = start + data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Encodes `raw` (the stream up to `end`) as a frame: compressed when a sample of it compresses to under 90%.
fn encode(raw: &[u8], end: u64) -> Frame {
    let sample = &raw[..raw.len().min(SAMPLE)];
    let pays = lz4_flex::block::compress(sample).len() * 10 < sample.len() * 9;
    let packed = pays.then(|| lz4_flex::block::compress(raw)).filter(|c| c.len() < raw.len());
    let (codec, body) = match &packed {
        Some(c) => (LZ4, c.as_slice()),
        None => (RAW, raw),
    };
    let mut data = Vec::with_capacity(HEADER + body.len());
    data.push(codec);
    data.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    data.extend_from_slice(&(body.len() as u32).to_le_bytes());
    data.extend_from_slice(body);
    Frame { end, data }
}

/// Writes the stream of `parts` from byte `resume` on as frames to `out`, blocking; answers the whole stream's
/// length and digest (the bytes before `resume` are read again for it).
pub fn produce(parts: &[Part], resume: u64, out: &mut dyn FnMut(Frame) -> io::Result<()>) -> io::Result<Streamed> {
    let mut framer = Framer { digest: Context::new(&SHA256), pos: 0, resume, buf: Vec::with_capacity(FRAME), out };
    {
        let mut tar = tar::Builder::new(&mut framer);
        for part in parts.iter().filter(|p| p.dir.is_dir()) {
            append_tree(&mut tar, &part.dir, Path::new(&part.name))?;
        }
        tar.finish()?;
    }
    framer.emit(framer.pos)?;
    Ok(Streamed { bytes: framer.pos, sha256: hex(framer.digest.finish().as_ref()) })
}

/// Appends `dir` as `name` and everything under it, in name order.
fn append_tree<W: Write>(tar: &mut tar::Builder<W>, dir: &Path, name: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    let mut header = tar::Header::new_ustar();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    header.set_entry_type(tar::EntryType::Directory);
    tar.append_data(&mut header, name, io::empty())?;
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (path, inner) = (e.path(), name.join(e.file_name()));
        let meta = fs::symlink_metadata(&path)?;
        let kind = meta.file_type();
        if kind.is_dir() {
            append_tree(tar, &path, &inner)?;
            continue;
        }
        let mut header = tar::Header::new_ustar();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        if kind.is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            tar.append_link(&mut header, &inner, fs::read_link(&path)?)?;
        } else if kind.is_file() {
            header.set_entry_type(tar::EntryType::Regular);
            let file = File::open(&path)?;
            tar.append_data(&mut header, &inner, file.take(meta.len()))?;
        } else {
            tracing::warn!(path = %path.display(), "not a file, directory or symlink: not migrated");
        }
    }
    Ok(())
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// An unknown codec or a length past the limit.
    #[error("a malformed frame: {0}")]
    Malformed(String),
    /// The compressed data does not decode.
    #[error("a frame does not decompress: {0}")]
    Decompress(#[from] lz4_flex::block::DecompressError),
}

/// Turns bytes received into frames' stream bytes.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Adds bytes received.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The stream bytes of the next whole frame received, if any.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let codec = self.buf[0];
        let raw = u32::from_le_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        let len = u32::from_le_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]) as usize;
        if raw > FRAME || len > FRAME + FRAME / 2 {
            return Err(FrameError::Malformed(format!("{raw} stream bytes in {len} (at most {FRAME})")));
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        let body = &self.buf[HEADER..HEADER + len];
        let out = match codec {
            RAW if len == raw => body.to_vec(),
            LZ4 => {
                let mut out = vec![0u8; raw];
                let n = lz4_flex::block::decompress_into(body, &mut out)?;
                if n != raw {
                    return Err(FrameError::Malformed(format!("{n} bytes decompressed, {raw} announced")));
                }
                out
            }
            c => return Err(FrameError::Malformed(format!("codec {c}, {len} bytes for {raw}"))),
        };
        self.buf.drain(..HEADER + len);
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) -> Vec<Part> {
        let dir = root.join("vol");
        fs::create_dir_all(dir.join("data/sub")).unwrap();
        fs::write(dir.join("data/counter"), b"1\n2\n3\n").unwrap();
        fs::write(dir.join("data/sub/zeros"), vec![0u8; 3 << 20]).unwrap();
        let random: Vec<u8> = (0..(2 << 20)).map(|_| fastrand::u8(..)).collect();
        fs::write(dir.join("data/random"), random).unwrap();
        std::os::unix::fs::symlink("counter", dir.join("data/link")).unwrap();
        let long = "l".repeat(120);
        fs::create_dir_all(dir.join(&long)).unwrap();
        fs::write(dir.join(&long).join("f".repeat(90)), b"long name").unwrap();
        vec![Part { name: "volumes".into(), dir }, Part { name: "missing".into(), dir: root.join("none") }]
    }

    fn frames(parts: &[Part], resume: u64) -> (Vec<Frame>, Streamed) {
        let mut out = Vec::new();
        let s = produce(parts, resume, &mut |f| {
            out.push(f);
            Ok(())
        })
        .unwrap();
        (out, s)
    }

    fn decode(frames: &[Frame]) -> Vec<u8> {
        let mut d = Decoder::default();
        let mut stream = Vec::new();
        for f in frames {
            // Split across two pushes, as a network would.
            let (a, b) = f.data.split_at(f.data.len() / 3);
            d.push(a);
            while let Some(s) = d.next_frame().unwrap() {
                stream.extend(s);
            }
            d.push(b);
            while let Some(s) = d.next_frame().unwrap() {
                stream.extend(s);
            }
        }
        stream
    }

    #[test]
    fn the_stream_is_the_same_twice_and_resumes_at_any_offset() {
        let tmp = tempfile::tempdir().unwrap();
        let parts = tree(tmp.path());
        let (all, whole) = frames(&parts, 0);
        let stream = decode(&all);
        assert_eq!(stream.len() as u64, whole.bytes);
        assert_eq!(hex(ring::digest::digest(&SHA256, &stream).as_ref()), whole.sha256);
        assert!(estimate(&parts).abs_diff(whole.bytes) < 4096, "{} vs {}", estimate(&parts), whole.bytes);
        // The zeros are compressed, the random bytes are not: fewer bytes on the wire than in the stream.
        let wire: usize = all.iter().map(|f| f.data.len()).sum();
        assert!(wire < (3 << 20), "{wire} bytes sent for {} (2 MiB random)", whole.bytes);
        assert!(all.iter().any(|f| f.data[0] == RAW) && all.iter().any(|f| f.data[0] == LZ4));
        for resume in [1, 511, FRAME as u64, whole.bytes - 1] {
            let (rest, again) = frames(&parts, resume);
            assert_eq!(again, whole, "the same stream");
            assert_eq!(decode(&rest), stream[resume as usize..], "resumed at {resume}");
            assert_eq!(rest.last().unwrap().end, whole.bytes);
        }
        // It unpacks into the same tree.
        let dest = tmp.path().join("dest");
        tar::Archive::new(stream.as_slice()).unpack(&dest).unwrap();
        assert_eq!(fs::read(dest.join("volumes/data/counter")).unwrap(), b"1\n2\n3\n");
        assert_eq!(
            fs::read(dest.join("volumes/data/random")).unwrap(),
            fs::read(parts[0].dir.join("data/random")).unwrap()
        );
        assert_eq!(fs::read_link(dest.join("volumes/data/link")).unwrap(), Path::new("counter"));
        let long = dest.join("volumes").join("l".repeat(120)).join("f".repeat(90));
        assert_eq!(fs::read(long).unwrap(), b"long name");
        assert!(!dest.join("missing").exists());
    }

    #[test]
    fn a_bad_frame_is_refused() {
        let mut d = Decoder::default();
        d.push(&[7, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert!(matches!(d.next_frame(), Err(FrameError::Malformed(_))));
        let mut d = Decoder::default();
        d.push(&[0, 0, 0, 0x20, 0, 0, 0, 0x20, 0]);
        assert!(matches!(d.next_frame(), Err(FrameError::Malformed(_))));
        let mut d = Decoder::default();
        d.push(&[1, 8, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff]);
        assert!(d.next_frame().is_err());
    }
}
