//! The in-memory head of one shard: series table, inverted index, chunks.
//!
//! A shard's [`Head`] is owned by its [`crate::db::Db`] shard behind one lock;
//! shards never share a head, so appends to different shards never contend.
//! Appending lives in `append.rs`, reading in `read.rs`.

mod append;
mod cut;
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
    /// Oldest and newest sample timestamps in the head (the oldest never
    /// below `min_valid_t`).
    bounds: Option<(i64, i64)>,
    /// The head's lower bound once a range was cut into a block: older
    /// samples are refused at append, skipped at replay and hidden from
    /// reads (a chunk straddling the cut stays until the next one).
    min_valid_t: Option<i64>,
    /// Series not removed by garbage collection. Ids are never reused
    /// while the process runs (WAL records refer to them), so a removed
    /// series leaves an empty slot in `series`.
    live: usize,
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
        }
        if let Some((lo, hi)) = self.bounds {
            min_t = Some(lo);
            max_t = Some(hi);
        }
        HeadStats {
            series: self.live as u64,
            chunks,
            symbols: self.symbols.len() as u64,
            heap_bytes: heap as u64,
            min_t,
            max_t,
        }
    }
}
