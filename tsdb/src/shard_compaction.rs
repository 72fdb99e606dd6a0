//! Background compaction and retention of a shard's blocks: which blocks
//! to merge and when (the merge itself is `block::compact`).
//!
//! Planning follows Prometheus' leveled scheme: ranges grow by 3x from the
//! block duration (2 h, 6 h, 18 h, 54 h, ... up to a tenth of the retention
//! and at most 31 days), and the blocks that fall inside one aligned window
//! of a range are merged once the head has moved past the window (no new
//! block can land in it). Blocks overlapping in time (a range cut twice
//! after the block duration changed) are merged first. One compaction runs
//! at a time per shard on the maintenance thread, so compaction uses at
//! most one core; its memory is one output index plus one series' chunks
//! per input (`block::compact` streams series in label order).
//!
//! A compaction writes its output (atomically), swaps it into the shard's
//! block list in place of its inputs, and only then deletes the inputs. A
//! crash before the deletion leaves both: start-up deletes the inputs,
//! recognising them by the output's `sources` (`shard::open_blocks`).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::block::{self, Block, BlockOptions};
use crate::error::DbError;
use crate::layout::free_block_dir;
use crate::shard::Shard;

/// Longest range a compaction builds: as Prometheus, 31 days.
const MAX_RANGE_MS: i64 = 31 * 24 * 3_600_000;

/// What one compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionReport {
    pub shard: usize,
    pub inputs: usize,
    pub min_time: i64,
    pub max_time: i64,
    pub series: u64,
    pub samples: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub millis: u64,
}

/// The ranges blocks are compacted into.
pub(crate) fn ranges(block_ms: i64, retention_ms: Option<i64>) -> Vec<i64> {
    let cap = retention_ms
        .map_or(MAX_RANGE_MS, |r| (r / 10).min(MAX_RANGE_MS))
        .max(block_ms * 3);
    let mut out = Vec::new();
    let mut r = block_ms.saturating_mul(3);
    while r <= cap {
        out.push(r);
        r = r.saturating_mul(3);
    }
    out
}

/// The blocks to merge next, if any: overlapping blocks first, then the
/// smallest range's first complete window holding two or more blocks.
/// `head_floor` is the head's lower bound: windows ending at or before it
/// can receive no more blocks.
pub(crate) fn plan(
    blocks: &[Arc<Block>],
    ranges: &[i64],
    head_floor: Option<i64>,
) -> Option<Vec<Arc<Block>>> {
    // `blocks` is sorted by min_time: an overlap shows between neighbours
    // of the running maximum.
    let mut max_so_far: Option<(i64, usize)> = None;
    for (i, b) in blocks.iter().enumerate() {
        if let Some((m, j)) = max_so_far
            && b.meta().min_time <= m
        {
            return Some(vec![blocks[j].clone(), b.clone()]);
        }
        if max_so_far.is_none_or(|(m, _)| b.meta().max_time > m) {
            max_so_far = Some((b.meta().max_time, i));
        }
    }
    let floor = head_floor?;
    for &r in ranges {
        let mut i = 0;
        while i < blocks.len() {
            let w = blocks[i].meta().min_time.div_euclid(r);
            let mut j = i;
            while j < blocks.len()
                && blocks[j].meta().min_time.div_euclid(r) == w
                && blocks[j].meta().max_time.div_euclid(r) == w
            {
                j += 1;
            }
            let window_end = (w + 1).saturating_mul(r);
            if j - i >= 2 && window_end <= floor {
                return Some(blocks[i..j].to_vec());
            }
            i = j.max(i + 1);
        }
    }
    None
}

/// Merges `inputs` into one block of shard `i` and swaps it in.
pub(crate) fn compact_shard(
    shard: &Shard,
    i: usize,
    blocks_dir: &Path,
    inputs: &[Arc<Block>],
) -> Result<CompactionReport, DbError> {
    let started = Instant::now();
    let berr = DbError::block(i);
    let min = inputs.iter().map(|b| b.meta().min_time).min().unwrap_or(0);
    let max = inputs.iter().map(|b| b.meta().max_time).max().unwrap_or(0);
    let dir = free_block_dir(blocks_dir, min, max);
    let refs: Vec<&Block> = inputs.iter().map(|b| b.as_ref()).collect();
    let meta = block::compact(&refs, &dir, BlockOptions::compacted()).map_err(berr)?;
    let out = Arc::new(Block::open(&dir).map_err(berr)?);
    let report = CompactionReport {
        shard: i,
        inputs: inputs.len(),
        min_time: meta.min_time,
        max_time: meta.max_time,
        series: meta.stats.series,
        samples: meta.stats.samples,
        bytes_before: inputs.iter().map(|b| b.size_bytes()).sum(),
        bytes_after: out.size_bytes(),
        millis: 0,
    };
    let remove: Vec<&Path> = inputs.iter().map(|b| b.dir()).collect();
    shard.swap_blocks(&remove, Some(out));
    delete_dirs(&remove)?;
    let report = CompactionReport {
        millis: started.elapsed().as_millis() as u64,
        ..report
    };
    tracing::info!(
        shard = i,
        inputs = report.inputs,
        min_time = report.min_time,
        max_time = report.max_time,
        series = report.series,
        samples = report.samples,
        bytes_before = report.bytes_before,
        bytes_after = report.bytes_after,
        millis = report.millis,
        "compacted blocks"
    );
    Ok(report)
}

/// Deletes, whole, the blocks of shard `i` whose newest sample is older
/// than `retention_ms` before the newest data of the shard (as
/// Prometheus: retention is measured from the data, so a server that was
/// down does not wake up and delete everything). Returns how many.
pub(crate) fn apply_retention(
    shard: &Shard,
    newest: i64,
    retention_ms: i64,
) -> Result<usize, DbError> {
    let blocks = shard.blocks();
    let old: Vec<&Path> = blocks
        .iter()
        .filter(|b| block::past_retention(b.meta(), newest, retention_ms))
        .map(|b| b.dir())
        .collect();
    if old.is_empty() {
        return Ok(0);
    }
    shard.swap_blocks(&old, None);
    for p in &old {
        tracing::info!(block = %p.display(), newest, retention_ms, "deleting a block past retention");
    }
    delete_dirs(&old)?;
    Ok(old.len())
}

fn delete_dirs(dirs: &[&Path]) -> Result<(), DbError> {
    for d in dirs {
        std::fs::remove_dir_all(d).map_err(DbError::io(d))?;
    }
    Ok(())
}
