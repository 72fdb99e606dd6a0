//! One in-memory series: its interned labels and its chunks.
//!
//! Sealed chunks are [`HeadChunk`]s: in the shard's head chunk files
//! (`chunk_files.rs`) when the head has them, else on the heap. Methods that
//! read them take the head's store.

use super::chunk_files::{self, ChunkFiles, HeadChunk};
use crate::chunk::ChunkBuilder;

/// Samples per chunk before it is sealed: Prometheus' figure, which keeps the
/// open chunk small and a sealed chunk around 30 minutes at a 15 s scrape.
pub(crate) const CHUNK_MAX_SAMPLES: usize = 120;

pub(crate) struct MemSeries {
    /// (name id, value id) pairs sorted by name.
    pub(crate) labels: Box<[(u32, u32)]>,
    /// Sealed chunks, oldest first.
    pub(crate) sealed: Vec<HeadChunk>,
    pub(crate) open: ChunkBuilder,
    /// Last appended sample, to reject out-of-order and duplicate timestamps
    /// without decoding; `i64::MIN` when the series has none.
    pub(crate) last_t: i64,
    pub(crate) last_v: f64,
}

impl MemSeries {
    pub(crate) fn new(labels: Box<[(u32, u32)]>) -> Self {
        MemSeries {
            labels,
            sealed: Vec::new(),
            open: ChunkBuilder::new(),
            last_t: i64::MIN,
            last_v: 0.0,
        }
    }

    /// Appends a sample the caller has checked is newer than `last_t`; a
    /// full open chunk is sealed into `files` (the head's chunk files, if
    /// it has them).
    pub(crate) fn push(&mut self, t: i64, v: f64, files: Option<&mut ChunkFiles>) {
        if self.open.len() >= CHUNK_MAX_SAMPLES {
            let c = self.open.seal();
            // Exact growth: a series seals a chunk every ~30 min, and a
            // doubling Vec would hold up to twice the 32-byte refs it needs,
            // for every series.
            self.sealed.reserve_exact(1);
            self.sealed.push(chunk_files::seal(files, c));
        }
        self.open.append(t, v);
        self.last_t = t;
        self.last_v = v;
    }

    pub(crate) fn min_t(&self) -> Option<i64> {
        match self.sealed.first() {
            Some(c) => Some(c.min_t()),
            None if !self.open.is_empty() => Some(self.open.min_t()),
            None => None,
        }
    }

    /// True when the series has a sample in `[mint, maxt]` by its bounds
    /// (cheap; the exact samples are only decoded by reads).
    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        match self.min_t() {
            Some(lo) => lo <= maxt && self.last_t >= mint,
            None => false,
        }
    }

    /// Pushes the samples in `[mint, maxt]` onto `out`, in time order.
    /// `files` is the head's chunk store (chunks in it are read through
    /// its maps; chunks outside the range touch no mapped page).
    pub(crate) fn samples_in(
        &self,
        files: Option<&ChunkFiles>,
        mint: i64,
        maxt: i64,
        out: &mut Vec<crate::Sample>,
    ) {
        for c in &self.sealed {
            if c.max_t() < mint || c.min_t() > maxt {
                continue;
            }
            match c.chunk_ref(files) {
                Some(r) => collect(r.iter(), mint, maxt, out),
                // A file is deleted only after every chunk in it was
                // dropped, so this is a bug; skip rather than crash a
                // server in release builds.
                None if cfg!(debug_assertions) => {
                    panic!("sealed head chunk {}..{} unreadable", c.min_t(), c.max_t())
                }
                None => {}
            }
        }
        if !self.open.is_empty() && self.open.max_t() >= mint && self.open.min_t() <= maxt {
            collect(self.open.iter(), mint, maxt, out);
        }
    }

    /// Heap bytes held by the series (chunks in files not included).
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.labels.len() * 8
            + self.open.heap_bytes()
            + self.sealed.capacity() * std::mem::size_of::<HeadChunk>()
            + self.sealed.iter().map(HeadChunk::heap_bytes).sum::<usize>()
    }

    /// Bytes of the series' sealed chunks held in chunk files.
    pub(crate) fn mapped_bytes(&self) -> usize {
        self.sealed.iter().map(HeadChunk::mapped_bytes).sum()
    }
}

fn collect(
    mut it: crate::chunk::ChunkIter<'_>,
    mint: i64,
    maxt: i64,
    out: &mut Vec<crate::Sample>,
) {
    let mut cur = it.seek(mint);
    while let Some((t, v)) = cur {
        if t > maxt {
            break;
        }
        out.push(crate::Sample { t, v });
        cur = it.next();
    }
}
