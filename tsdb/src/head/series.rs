//! One in-memory series: its interned labels and its chunks.

use crate::chunk::{Chunk, ChunkBuilder};

/// Samples per chunk before it is sealed: Prometheus' figure, which keeps the
/// open chunk small and a sealed chunk around 30 minutes at a 15 s scrape.
pub(crate) const CHUNK_MAX_SAMPLES: usize = 120;

pub(crate) struct MemSeries {
    /// (name id, value id) pairs sorted by name.
    pub(crate) labels: Box<[(u32, u32)]>,
    pub(crate) sealed: Vec<Chunk>,
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

    /// Appends a sample the caller has checked is newer than `last_t`.
    pub(crate) fn push(&mut self, t: i64, v: f64) {
        if self.open.len() >= CHUNK_MAX_SAMPLES {
            let c = self.open.seal();
            self.sealed.push(c);
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
    pub(crate) fn samples_in(&self, mint: i64, maxt: i64, out: &mut Vec<crate::Sample>) {
        for c in &self.sealed {
            if c.max_t() < mint || c.min_t() > maxt {
                continue;
            }
            collect(c.iter(), mint, maxt, out);
        }
        if !self.open.is_empty() && self.open.max_t() >= mint && self.open.min_t() <= maxt {
            collect(self.open.iter(), mint, maxt, out);
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.labels.len() * 8
            + self.open.heap_bytes()
            + self
                .sealed
                .iter()
                .map(|c| c.as_bytes().len() + 16)
                .sum::<usize>()
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
