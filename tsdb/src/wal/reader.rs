//! Sequential replay of one WAL directory: the newest checkpoint, then the
//! segments after it, decoded into buffers reused from record to record.
//!
//! One reader per shard directory; the shard code runs several in parallel.
//! Reading never modifies files: a torn tail of the last segment ends the
//! read with a warning (and [`ReadStats::torn_tail`]), and [`super::Wal::open`]
//! truncates it when the shard starts writing.

use std::path::{Path, PathBuf};

use super::WalError;
use super::record::{TYPE_SERIES, WalRecord, decode};
use super::segment::{
    BadFrame, Scanner, Step, checkpoint_name, list_checkpoints, list_segments, segment_name,
    valid_record_after,
};
use crate::Labels;

/// A decoded record borrowing the reader's buffers, valid until the next call.
#[derive(Debug)]
pub enum ReadRecord<'a> {
    /// New series. Drain the vector to take the labels without cloning.
    Series(&'a mut Vec<(u64, Labels)>),
    /// Samples `(series ref, t ms, value)`.
    Samples(&'a [(u64, i64, f64)]),
}

/// What a reader has seen so far (for progress logs and replay metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub records: u64,
    pub series: u64,
    pub samples: u64,
    /// Frame bytes read (headers included, segment headers excluded).
    pub bytes: u64,
    pub files_read: u64,
    /// The torn tail the read stopped at: (file, offset, bytes ignored).
    pub torn_tail: Option<(PathBuf, u64, u64)>,
}

struct Source {
    path: PathBuf,
    /// Segment index; `None` for a file inside a checkpoint.
    segment: Option<u64>,
    /// Only the last segment of the directory may end in a torn record.
    tail_may_be_torn: bool,
}

/// Reads a WAL directory front to back. See the module doc.
pub struct WalReader {
    sources: Vec<Source>,
    next_source: usize,
    scanner: Option<Scanner>,
    /// The scanner buffer while no file is open, reused across files.
    spare: Vec<u8>,
    series: Vec<(u64, Labels)>,
    samples: Vec<(u64, i64, f64)>,
    /// Decompressed payload of the current record.
    scratch: Vec<u8>,
    stats: ReadStats,
}

impl WalReader {
    /// Reads the newest checkpoint (if any), then every segment after it.
    /// Segments the checkpoint already covers are skipped; a gap in the
    /// numbering is [`WalError::MissingSegment`]. A missing `dir` reads as
    /// an empty WAL (a shard that never wrote).
    pub fn open(dir: &Path) -> Result<WalReader, WalError> {
        if !dir.exists() {
            return Ok(Self::from_sources(Vec::new()));
        }
        let checkpoint = list_checkpoints(dir)?.last().copied();
        let mut sources = Vec::new();
        if let Some(c) = checkpoint {
            sources.extend(checkpoint_sources(dir, c)?);
        }
        let segments: Vec<u64> = list_segments(dir)?
            .into_iter()
            .filter(|&s| checkpoint.is_none_or(|c| s > c))
            .collect();
        check_contiguous(dir, checkpoint, &segments)?;
        let last = segments.last().copied();
        sources.extend(segments.into_iter().map(|s| Source {
            path: dir.join(segment_name(s)),
            segment: Some(s),
            tail_may_be_torn: Some(s) == last,
        }));
        Ok(Self::from_sources(sources))
    }

    /// Reads exactly `files` in order, all strictly (no torn tail allowed):
    /// checkpointing reads closed segments this way.
    pub(crate) fn strict(files: Vec<(PathBuf, Option<u64>)>) -> WalReader {
        Self::from_sources(
            files
                .into_iter()
                .map(|(path, segment)| Source {
                    path,
                    segment,
                    tail_may_be_torn: false,
                })
                .collect(),
        )
    }

    fn from_sources(sources: Vec<Source>) -> WalReader {
        WalReader {
            sources,
            next_source: 0,
            scanner: None,
            spare: Vec::new(),
            series: Vec::new(),
            samples: Vec::new(),
            scratch: Vec::new(),
            stats: ReadStats::default(),
        }
    }

    /// The next record, or `None` at the end (or at a torn tail).
    #[allow(clippy::should_implement_trait)] // lends from self: not an Iterator
    pub fn next(&mut self) -> Result<Option<ReadRecord<'_>>, WalError> {
        Ok(match self.advance()? {
            None => None,
            Some(TYPE_SERIES) => Some(ReadRecord::Series(&mut self.series)),
            Some(_) => Some(ReadRecord::Samples(&self.samples)),
        })
    }

    /// Reads everything into owned records (tests and tools; replay should
    /// use [`Self::next`]).
    pub fn read_all(mut self) -> Result<Vec<WalRecord>, WalError> {
        let mut out = Vec::new();
        while let Some(r) = self.next()? {
            out.push(match r {
                ReadRecord::Series(s) => WalRecord::Series(std::mem::take(s)),
                ReadRecord::Samples(s) => WalRecord::Samples(s.to_vec()),
            });
        }
        Ok(out)
    }

    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// The segment being read (`None` inside the checkpoint), for progress.
    pub fn current_segment(&self) -> Option<u64> {
        self.next_source
            .checked_sub(1)
            .and_then(|i| self.sources[i].segment)
    }

    /// Decodes the next record into the buffers and returns its type.
    fn advance(&mut self) -> Result<Option<u8>, WalError> {
        loop {
            let Some(sc) = self.scanner.as_mut() else {
                let Some(src) = self.sources.get(self.next_source) else {
                    return Ok(None);
                };
                self.next_source += 1;
                self.stats.files_read += 1;
                self.scanner = Some(Scanner::open(&src.path, std::mem::take(&mut self.spare))?);
                continue;
            };
            let bad = match sc.next()? {
                Step::Record { offset, body } => {
                    let frame_bytes = body.len() as u64 + 8;
                    let decoded =
                        decode(body, &mut self.series, &mut self.samples, &mut self.scratch);
                    let ty = decoded.map_err(|reason| WalError::Corrupt {
                        path: sc.path().to_path_buf(),
                        offset,
                        reason: format!("record passes its CRC but does not decode: {reason}"),
                    })?;
                    self.stats.records += 1;
                    self.stats.bytes += frame_bytes;
                    if ty == TYPE_SERIES {
                        self.stats.series += self.series.len() as u64;
                    } else {
                        self.stats.samples += self.samples.len() as u64;
                    }
                    return Ok(Some(ty));
                }
                Step::End => None,
                Step::Damaged(bad) => Some(bad),
            };
            let sc = self.scanner.take().expect("scanner is open");
            let file_len = sc.file_len();
            let path = sc.path().to_path_buf();
            self.spare = sc.into_buf();
            tracing::debug!(
                file = %path.display(),
                records = self.stats.records,
                samples = self.stats.samples,
                series = self.stats.series,
                "WAL file replayed"
            );
            if let Some(bad) = bad {
                let src = &self.sources[self.next_source - 1];
                self.end_at_damage(&path, file_len, bad, src.tail_may_be_torn)?;
            }
        }
    }

    /// A torn tail is logged and ends the read; anything else is an error.
    fn end_at_damage(
        &mut self,
        path: &Path,
        file_len: u64,
        bad: BadFrame,
        tail_may_be_torn: bool,
    ) -> Result<(), WalError> {
        if tail_may_be_torn && bad.tearable && !valid_record_after(path, bad.offset + 1)? {
            let dropped = file_len - bad.offset;
            tracing::warn!(
                file = %path.display(),
                offset = bad.offset,
                bytes_dropped = dropped,
                reason = %bad.reason,
                "WAL replay stops at a torn tail of the last segment (a crash interrupted a write)"
            );
            self.stats.torn_tail = Some((path.to_path_buf(), bad.offset, dropped));
            return Ok(());
        }
        Err(WalError::Corrupt {
            path: path.to_path_buf(),
            offset: bad.offset,
            reason: bad.reason,
        })
    }
}

/// The files of checkpoint `index`, in order.
fn checkpoint_sources(dir: &Path, index: u64) -> Result<Vec<Source>, WalError> {
    let cdir = dir.join(checkpoint_name(index));
    Ok(list_segments(&cdir)?
        .into_iter()
        .map(|s| Source {
            path: cdir.join(segment_name(s)),
            segment: None,
            tail_may_be_torn: false,
        })
        .collect())
}

/// Segments after the checkpoint must follow it and each other without gaps:
/// a missing file would silently drop its samples.
pub(crate) fn check_contiguous(
    dir: &Path,
    checkpoint: Option<u64>,
    segments: &[u64],
) -> Result<(), WalError> {
    if let (Some(c), Some(&first)) = (checkpoint, segments.first())
        && first != c + 1
    {
        return Err(WalError::MissingSegment {
            dir: dir.to_path_buf(),
            missing: c + 1,
        });
    }
    for w in segments.windows(2) {
        if w[1] != w[0] + 1 {
            return Err(WalError::MissingSegment {
                dir: dir.to_path_buf(),
                missing: w[0] + 1,
            });
        }
    }
    Ok(())
}
