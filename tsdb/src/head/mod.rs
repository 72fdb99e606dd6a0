//! The in-memory head of one shard: series table, inverted index, chunks.
//!
//! A shard's [`Head`] is owned by its [`crate::db::Db`] shard behind one lock;
//! shards never share a head, so appends to different shards never contend.
//! Appending lives in `append.rs`, reading in `read.rs`.

mod append;
mod postings;
mod read;
mod series;
mod symbols;

use std::collections::HashMap;

pub use append::AppendStats;
pub(crate) use series::MemSeries;

use postings::Postings;
use symbols::Symbols;

#[derive(Default)]
pub(crate) struct Head {
    symbols: Symbols,
    postings: Postings,
    series: Vec<MemSeries>,
    /// Series hash → id; a second id with the same hash goes to `collisions`.
    by_hash: HashMap<u64, u32>,
    collisions: HashMap<u64, Vec<u32>>,
    /// Oldest and newest sample timestamps in the head.
    bounds: Option<(i64, i64)>,
}

/// Counts that describe one shard's head, for `/metrics` and status pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadStats {
    pub series: u64,
    /// Chunks held (sealed plus open ones with samples).
    pub chunks: u64,
    pub symbols: u64,
    pub heap_bytes: u64,
    pub min_t: Option<i64>,
    pub max_t: Option<i64>,
}

impl Head {
    pub(crate) fn stats(&self) -> HeadStats {
        let mut min_t = None::<i64>;
        let mut max_t = None::<i64>;
        let mut heap = self.symbols.heap_bytes() + self.postings.heap_bytes();
        let mut chunks = 0u64;
        heap += self.by_hash.capacity() * 16;
        for s in &self.series {
            heap += s.heap_bytes();
            chunks += s.sealed.len() as u64 + (!s.open.is_empty()) as u64;
            if let Some(lo) = s.min_t() {
                min_t = Some(min_t.map_or(lo, |m| m.min(lo)));
                max_t = Some(max_t.map_or(s.last_t, |m| m.max(s.last_t)));
            }
        }
        HeadStats {
            series: self.series.len() as u64,
            chunks,
            symbols: self.symbols.len() as u64,
            heap_bytes: heap as u64,
            min_t,
            max_t,
        }
    }
}
