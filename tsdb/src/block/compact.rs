//! Compaction: merging several blocks into one.
//!
//! Series ids of a block are in label order, so the inputs are merged like
//! sorted files: one cursor per block, the smallest label set next, and for
//! a series present in several blocks a k-way merge of their samples by
//! timestamp. Memory is one series' chunk references per input plus the
//! output index, never the samples of the whole range.

use std::path::PathBuf;

use super::BlockError;
use super::meta::BlockMeta;
use super::reader::{Block, SeriesChunks};
use super::view::BlockChunk;
use super::writer::{BlockOptions, BlockWriter};
use crate::Sample;
use crate::chunk::ChunkIter;

/// Merges `blocks` (any time ranges; overlapping ones are fine) into a new
/// block at `out_dir`, re-encoding chunks with `opts`. A timestamp present
/// in several inputs is kept once, with the value of the earliest block in
/// `blocks` that has it. The output's level is one more than the inputs'
/// highest, and its sources are the union of theirs.
pub fn compact(
    blocks: &[&Block],
    out_dir: impl Into<PathBuf>,
    opts: BlockOptions,
) -> Result<BlockMeta, BlockError> {
    let mut w = BlockWriter::create(out_dir, opts)?;
    let level = blocks
        .iter()
        .map(|b| b.meta().compaction.level)
        .max()
        .unwrap_or(0)
        + 1;
    let sources = blocks
        .iter()
        .flat_map(|b| b.meta().compaction.sources.iter().cloned())
        .collect();
    w.set_compaction(level, sources);

    let mut cursors = Vec::with_capacity(blocks.len());
    for b in blocks {
        let mut c = Cursor {
            block: b,
            next: 0,
            cur: None,
        };
        c.advance()?;
        cursors.push(c);
    }
    let mut streams: Vec<Stream<'_>> = Vec::with_capacity(blocks.len());
    while let Some(min) = cursors
        .iter()
        .filter_map(|c| c.cur.as_ref().map(|s| &s.labels))
        .min()
        .cloned()
    {
        streams.clear();
        for c in &mut cursors {
            if c.cur.as_ref().is_some_and(|s| s.labels == min) {
                let s = c.cur.take().expect("checked above");
                streams.push(Stream::new(s.chunks));
                c.advance()?;
            }
        }
        w.add_series(
            &min,
            Merge {
                streams: &mut streams,
            },
        )?;
    }
    w.finish()
}

/// The next series of one input block.
struct Cursor<'a> {
    block: &'a Block,
    next: u32,
    cur: Option<SeriesChunks<'a>>,
}

impl Cursor<'_> {
    fn advance(&mut self) -> Result<(), BlockError> {
        self.cur = if self.next < self.block.series_count() {
            self.next += 1;
            Some(
                self.block
                    .series_chunks(self.next - 1, i64::MIN, i64::MAX)?,
            )
        } else {
            None
        };
        Ok(())
    }
}

/// The samples of one series in one block, with the next one peeked.
struct Stream<'a> {
    chunks: std::vec::IntoIter<BlockChunk<'a>>,
    it: Option<ChunkIter<'a>>,
    head: Option<(i64, f64)>,
}

impl<'a> Stream<'a> {
    fn new(chunks: Vec<BlockChunk<'a>>) -> Self {
        let mut s = Stream {
            chunks: chunks.into_iter(),
            it: None,
            head: None,
        };
        s.bump();
        s
    }

    fn bump(&mut self) {
        loop {
            if let Some(it) = &mut self.it
                && let Some(x) = it.next()
            {
                self.head = Some(x);
                return;
            }
            match self.chunks.next() {
                Some(c) => self.it = Some(c.iter()),
                None => {
                    self.head = None;
                    return;
                }
            }
        }
    }
}

/// K-way merge of the streams by timestamp, one sample per timestamp.
struct Merge<'s, 'a> {
    streams: &'s mut Vec<Stream<'a>>,
}

impl Iterator for Merge<'_, '_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        // Few inputs: a linear scan beats a heap. The first stream with the
        // smallest timestamp wins ties, i.e. the earliest block.
        let mut best: Option<(i64, f64)> = None;
        for s in self.streams.iter() {
            if let Some((t, v)) = s.head
                && best.is_none_or(|(bt, _)| t < bt)
            {
                best = Some((t, v));
            }
        }
        let (t, v) = best?;
        for s in self.streams.iter_mut() {
            if s.head.is_some_and(|(st, _)| st == t) {
                s.bump();
            }
        }
        Some(Sample { t, v })
    }
}
