//! Segment files: naming, listing, the 8-byte header, and the frame scanner
//! that walks one segment and tells a torn tail from real corruption.
//!
//! Reader, writer-open and repair all scan through [`Scanner`], so the three
//! agree byte for byte on where valid data ends.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::record::{FRAME_HEADER_LEN, MAX_RECORD_BYTES, is_known_type};
use super::{FORMAT_VERSION, FORMAT_VERSION_V1, WalError};

/// `b"TWAL"`, then the format version, then 3 reserved zero bytes.
pub(crate) const SEGMENT_MAGIC: [u8; 4] = *b"TWAL";
pub(crate) const SEGMENT_HEADER_LEN: u64 = 8;

/// Read granularity of the scanner; records larger than this grow the buffer.
const READ_CHUNK: usize = 1 << 20;

pub(crate) fn segment_header() -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4] = FORMAT_VERSION;
    h
}

/// `00000042`: zero-padded to 8 digits like Prometheus, longer past 10^8.
pub fn segment_name(index: u64) -> String {
    format!("{index:08}")
}

/// `checkpoint.00000041`: holds what survives of segments `<= index`.
pub fn checkpoint_name(index: u64) -> String {
    format!("checkpoint.{index:08}")
}

fn parse_index(s: &str) -> Option<u64> {
    (s.len() >= 8 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Indexes of the segment files in `dir`, ascending. Other names are ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    list(
        dir,
        |name, is_dir| if is_dir { None } else { parse_index(name) },
    )
}

/// Indexes of the complete checkpoints in `dir`, ascending (a
/// `checkpoint.N.tmp` left by a crash is not one).
pub fn list_checkpoints(dir: &Path) -> Result<Vec<u64>, WalError> {
    list(dir, |name, is_dir| {
        if !is_dir {
            return None;
        }
        name.strip_prefix("checkpoint.").and_then(parse_index)
    })
}

fn list(dir: &Path, f: impl Fn(&str, bool) -> Option<u64>) -> Result<Vec<u64>, WalError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(WalError::io("listing", dir))? {
        let e = e.map_err(WalError::io("listing", dir))?;
        let is_dir = e
            .file_type()
            .map_err(WalError::io("stat in", dir))?
            .is_dir();
        if let Some(i) = e.file_name().to_str().and_then(|n| f(n, is_dir)) {
            out.push(i);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// fsyncs a directory so a created, renamed or deleted entry is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(WalError::io("fsync directory", dir))
}

/// Creates segment `index` with its header, fsynced together with the
/// directory entry, so a listed segment always has a readable header unless
/// the crash hit during this very call (then it is the last, torn, segment).
pub(crate) fn create_segment(dir: &Path, index: u64) -> Result<File, WalError> {
    let path = dir.join(segment_name(index));
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(WalError::io("creating segment", &path))?;
    f.write_all(&segment_header())
        .and_then(|_| f.sync_data())
        .map_err(WalError::io("writing header of", &path))?;
    sync_dir(dir)?;
    Ok(f)
}

/// Where and why a segment stops being readable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BadFrame {
    pub offset: u64,
    pub reason: String,
    /// May be a torn tail, if it is in the last segment with nothing valid
    /// after it. False for a bad magic or an unknown version, which a crash
    /// cannot produce.
    pub tearable: bool,
    /// The segment has a format version this build does not read: repair
    /// must refuse rather than drop a newer writer's data.
    pub unsupported: bool,
}

pub(crate) enum Step<'a> {
    Record { offset: u64, body: &'a [u8] },
    End,
    Damaged(BadFrame),
}

/// Sequential frame reader over one segment file with a reusable buffer.
pub(crate) struct Scanner {
    file: File,
    path: PathBuf,
    file_len: u64,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[pos..end]`; `buf[0]` is at file offset `buf_off`.
    pos: usize,
    end: usize,
    buf_off: u64,
    header_checked: bool,
    /// Format version from the header, once checked.
    version: Option<u8>,
}

impl Scanner {
    /// Opens `path`, taking `buf` to reuse (get it back with [`Self::into_buf`]).
    pub(super) fn open(path: &Path, buf: Vec<u8>) -> Result<Scanner, WalError> {
        let file = File::open(path).map_err(WalError::io("opening segment", path))?;
        let file_len = file
            .metadata()
            .map_err(WalError::io("stat of segment", path))?
            .len();
        Ok(Scanner {
            file,
            path: path.to_path_buf(),
            file_len,
            buf,
            pos: 0,
            end: 0,
            buf_off: 0,
            header_checked: false,
            version: None,
        })
    }

    pub(super) fn into_buf(self) -> Vec<u8> {
        self.buf
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The segment's format version, once [`Self::next`] has read the header.
    pub(super) fn version(&self) -> Option<u8> {
        self.version
    }

    /// File offset of the next unconsumed byte.
    pub(super) fn offset(&self) -> u64 {
        self.buf_off + self.pos as u64
    }

    /// Makes at least `n` unconsumed bytes available; false if the file
    /// ended first (it shrank under us, treated like a short record).
    fn fill(&mut self, n: usize) -> Result<bool, WalError> {
        if self.end - self.pos >= n {
            return Ok(true);
        }
        // Move the unconsumed tail to the front and read after it.
        self.buf.copy_within(self.pos..self.end, 0);
        self.buf_off += self.pos as u64;
        self.end -= self.pos;
        self.pos = 0;
        let want = n.max(READ_CHUNK);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        while self.end < n {
            let got = self
                .file
                .read(&mut self.buf[self.end..])
                .map_err(WalError::io("reading segment", &self.path))?;
            if got == 0 {
                return Ok(false);
            }
            self.end += got;
        }
        Ok(true)
    }

    fn damaged(&self, offset: u64, reason: String, tearable: bool) -> Step<'static> {
        Step::Damaged(BadFrame {
            offset,
            reason,
            tearable,
            unsupported: false,
        })
    }

    pub(super) fn next(&mut self) -> Result<Step<'_>, WalError> {
        if !self.header_checked {
            if let Some(bad) = self.check_header()? {
                return Ok(Step::Damaged(bad));
            }
            self.header_checked = true;
        }
        let off = self.offset();
        let remaining = self.file_len - off;
        if remaining == 0 {
            return Ok(Step::End);
        }
        if remaining < FRAME_HEADER_LEN as u64 || !self.fill(FRAME_HEADER_LEN)? {
            return Ok(self.damaged(
                off,
                format!("record header cut short: only {remaining} bytes before end of file"),
                true,
            ));
        }
        let h = &self.buf[self.pos..self.pos + FRAME_HEADER_LEN];
        let len = u32::from_le_bytes(h[0..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(h[4..8].try_into().unwrap());
        if len == 0 {
            return Ok(self.damaged(off, "zero record length (zero-filled space?)".into(), true));
        }
        if len > MAX_RECORD_BYTES {
            return Ok(self.damaged(
                off,
                format!("record length {len} exceeds the {MAX_RECORD_BYTES}-byte limit"),
                true,
            ));
        }
        let left = remaining - FRAME_HEADER_LEN as u64;
        if len as u64 > left || !self.fill(FRAME_HEADER_LEN + len)? {
            return Ok(self.damaged(
                off,
                format!("record of {len} bytes cut short: only {left} bytes before end of file"),
                true,
            ));
        }
        let start = self.pos + FRAME_HEADER_LEN;
        let actual = crc32c::crc32c(&self.buf[start..start + len]);
        if actual != crc {
            return Ok(self.damaged(
                off,
                format!("crc32c mismatch in {len}-byte record: stored {crc:#010x}, computed {actual:#010x}"),
                true,
            ));
        }
        self.pos = start + len;
        Ok(Step::Record {
            offset: off,
            body: &self.buf[start..start + len],
        })
    }

    /// Checks the segment header; the damage if it is bad.
    fn check_header(&mut self) -> Result<Option<BadFrame>, WalError> {
        let bad = |reason: String, tearable: bool, unsupported: bool| {
            Ok(Some(BadFrame {
                offset: 0,
                reason,
                tearable,
                unsupported,
            }))
        };
        let want = segment_header();
        let n = self.file_len.min(SEGMENT_HEADER_LEN) as usize;
        if n > 0 && !self.fill(n)? {
            return bad("segment shrank while being read".into(), true, false);
        }
        let got = &self.buf[self.pos..self.pos + n];
        if n < SEGMENT_HEADER_LEN as usize {
            // A crash between creating the file and writing its header.
            let prefix = got.iter().all(|&b| b == 0) || got == &want[..n];
            return bad(
                format!("segment header cut short: {n} of 8 bytes"),
                prefix,
                false,
            );
        }
        if got.iter().all(|&b| b == 0) {
            return bad("segment header is all zeros".into(), true, false);
        }
        if got[..4] != SEGMENT_MAGIC {
            let reason = format!("bad segment magic {:02x?}, want \"TWAL\"", &got[..4]);
            return bad(reason, false, false);
        }
        if got[4] != FORMAT_VERSION && got[4] != FORMAT_VERSION_V1 {
            let reason = format!(
                "unsupported WAL format version {} (this build reads versions \
                 {FORMAT_VERSION_V1} to {FORMAT_VERSION})",
                got[4]
            );
            return bad(reason, false, true);
        }
        self.version = Some(got[4]);
        self.pos += SEGMENT_HEADER_LEN as usize;
        Ok(None)
    }
}

/// True if any byte offset at or after `from` in `path` starts a complete
/// frame with a valid CRC and a known record type: the test of "valid data
/// after the damage" that separates corruption from a torn tail. It reads
/// the rest of the file into memory, which only happens on damage.
pub(crate) fn valid_record_after(path: &Path, from: u64) -> Result<bool, WalError> {
    let data = fs::read(path).map_err(WalError::io("reading segment", path))?;
    let start = (from as usize).min(data.len());
    Ok(count_valid_records(&data, start).0 > 0)
}

/// Resync scan: from `start`, finds the first valid frame at any offset, then
/// follows frames from it, repeating after each break. Returns the number
/// of valid records found and their total bytes (to report what a repair
/// drops). Only known types with lengths within the file are CRC-checked,
/// which keeps the scan of random bytes cheap.
pub(crate) fn count_valid_records(data: &[u8], start: usize) -> (u64, u64) {
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut p = start;
    while p + FRAME_HEADER_LEN < data.len() {
        match frame_at(data, p) {
            Some(n) => {
                records += 1;
                bytes += n as u64;
                p += n;
            }
            None => p += 1,
        }
    }
    (records, bytes)
}

fn frame_at(data: &[u8], p: usize) -> Option<usize> {
    let h = data.get(p..p + FRAME_HEADER_LEN)?;
    let len = u32::from_le_bytes(h[0..4].try_into().unwrap()) as usize;
    if len == 0 || len > MAX_RECORD_BYTES {
        return None;
    }
    let body = data.get(p + FRAME_HEADER_LEN..p + FRAME_HEADER_LEN + len)?;
    if !is_known_type(body[0]) {
        return None;
    }
    let crc = u32::from_le_bytes(h[4..8].try_into().unwrap());
    (crc32c::crc32c(body) == crc).then_some(FRAME_HEADER_LEN + len)
}
