//! Cutting a shard's oldest head range into a block (the head's own part,
//! bounds and truncation, is `head/truncate.rs`), then checkpointing
//! and truncating its WAL.
//!
//! When the head spans more than 1.5 block durations (Prometheus' rule:
//! half a block of slack for late samples), the aligned range
//! `[start, start + block)` holding its oldest sample is cut:
//!
//! 1. the head's lower bound is raised to the range's end, so no append can
//!    add to the range any more (older samples are refused "out of bounds");
//! 2. the range is read series by series in label order, in batches under
//!    the read lock (appends go on between batches), into a `BlockWriter`,
//!    which makes the block visible atomically; the label order itself is
//!    sorted and merged in steps under short holds of the lock too
//!    (`head/label_order.rs`), never in one long sort;
//! 3. under the write lock: the block is published, the head truncated
//!    (chunks and churned series dropped) and a WAL segment cut;
//! 4. without locks: the closed segments are rewritten into a checkpoint
//!    holding the live series and their samples from the range's end on,
//!    and then deleted (the writer is on a later segment by then).
//!
//! A crash at any step is safe: before step 2 finishes there is no block
//! and the WAL still holds everything; after it, replay skips the samples
//! the block holds (the head's lower bound is recomputed from the blocks).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::block::{Block, BlockError, BlockOptions, BlockWriter};
use crate::error::DbError;
use crate::head::label_order::{self, LabelOrder};
use crate::layout::{free_block_dir, shard_block_dir, shard_wal_dir};
use crate::shard::Shard;
use crate::wal;

/// Series read under one hold of the shard's read lock.
const SERIES_PER_LOCK: usize = 256;

/// What one cut did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    pub shard: usize,
    /// The range cut, `[start, end)`.
    pub start: i64,
    pub end: i64,
    /// Series and samples written (0 when the range held none).
    pub series: u64,
    pub samples: u64,
    pub series_removed: u64,
    pub chunks_dropped: u64,
    pub wal_segments_deleted: u64,
    pub millis: u64,
}

/// The range to cut from a head spanning `bounds`, if it is due.
pub(crate) fn due_range(bounds: Option<(i64, i64)>, block_ms: i64) -> Option<(i64, i64)> {
    let (lo, hi) = bounds?;
    if hi.saturating_sub(lo) <= block_ms / 2 * 3 {
        return None;
    }
    let start = lo - lo.rem_euclid(block_ms);
    Some((start, start + block_ms))
}

/// Cuts the due range of shard `i`, if any (the caller holds the shard's
/// maintenance lock).
pub(crate) fn cut_shard(
    shard: &Shard,
    i: usize,
    data_dir: &Path,
    block_ms: i64,
) -> Result<Option<CutReport>, DbError> {
    let started = Instant::now();
    let Some((start, end)) = due_range(shard.state.read().head.bounds(), block_ms) else {
        return Ok(None);
    };
    let berr = DbError::block(i);
    shard.state.write().head.raise_min_valid(end);
    // Label order, sorted and merged a step per hold of the read lock so
    // appends to the shard never wait for the whole sort.
    let mut order = LabelOrder::new(shard.state.read().head.live_ids(), label_order::RUN);
    while order.sort_run(&shard.state.read().head) {}

    let dir = free_block_dir(&shard_block_dir(data_dir, i), start, end - 1);
    let mut w = BlockWriter::create(&dir, BlockOptions::default()).map_err(berr)?;
    let mut report = CutReport {
        shard: i,
        start,
        end,
        ..CutReport::default()
    };
    // A batch's samples are copied out under the read lock and encoded
    // into the block after it is released: block writes (and their
    // syscalls) never hold up appends.
    let mut batch = Vec::with_capacity(SERIES_PER_LOCK);
    let mut copied: Vec<(crate::Labels, Vec<crate::Sample>)> = Vec::new();
    loop {
        let mut n = 0;
        {
            let st = shard.state.read();
            order.next_batch(&st.head, SERIES_PER_LOCK, &mut batch);
            if batch.is_empty() {
                break;
            }
            for &id in &batch {
                if copied.len() == n {
                    copied.push(Default::default());
                }
                let (labels, buf) = &mut copied[n];
                buf.clear();
                let Some(l) = st.head.series_range(id, start, end - 1, buf) else {
                    continue;
                };
                if !buf.is_empty() {
                    *labels = l;
                    n += 1;
                }
            }
        }
        for (labels, buf) in &mut copied[..n] {
            report.series += 1;
            report.samples += buf.len() as u64;
            w.add_series(labels, buf.drain(..)).map_err(berr)?;
        }
    }
    let block = match w.finish() {
        Ok(_) => Some(Arc::new(Block::open(&dir).map_err(berr)?)),
        Err(BlockError::Empty { .. }) => None,
        Err(e) => return Err(berr(e)),
    };

    // Publish, truncate and cut the WAL in one step for readers.
    let checkpoint = {
        let mut st = shard.state.write();
        if let Some(b) = block {
            shard.swap_blocks(&[], Some(b));
        }
        let (removed, chunks) = st.head.truncate_before(end);
        report.series_removed = removed as u64;
        report.chunks_dropped = chunks as u64;
        let st = &mut *st;
        match &mut st.wal {
            Some(wal) => {
                let next = wal.cut_segment().map_err(DbError::wal(i))?;
                Some((next - 1, st.head.live_hashes()))
            }
            None => None,
        }
    };
    if let Some((up_to, live)) = checkpoint {
        let keep = |r: u64, l: &crate::Labels| {
            live.get(r as usize)
                .is_some_and(|&h| h != 0 && h == l.stable_hash())
        };
        wal::checkpoint(&shard_wal_dir(data_dir, i), up_to, keep, end).map_err(DbError::wal(i))?;
        // The segments up to `up_to` are closed (the writer is on a later
        // one): deleted without the shard's lock.
        report.wal_segments_deleted =
            wal::delete_segments_before(&shard_wal_dir(data_dir, i), up_to + 1)
                .map_err(DbError::wal(i))? as u64;
    }
    report.millis = started.elapsed().as_millis() as u64;
    tracing::info!(
        shard = i,
        start,
        end,
        series = report.series,
        samples = report.samples,
        series_removed = report.series_removed,
        wal_segments_deleted = report.wal_segments_deleted,
        millis = report.millis,
        "cut head range into a block"
    );
    Ok(Some(report))
}
