//! Checkpoints: compacting the WAL prefix that head compaction made obsolete.
//!
//! [`checkpoint`] rewrites segments `<= up_to` (plus the previous checkpoint)
//! into `checkpoint.<up_to>/`, keeping only the Series records of series the
//! head still has and the samples of those series at or after `min_time`
//! (samples before it are in blocks). It is written as
//! `checkpoint.<up_to>.tmp/`, fsynced, and renamed, so a crash leaves either
//! the old state or the complete new checkpoint. Afterwards the shard calls
//! [`super::Wal::truncate_before`]`(up_to + 1)`. Records are streamed in their
//! original order, so a series is always defined before its samples and memory
//! stays at one record batch.

use std::fs;
use std::path::Path;

use super::reader::{WalReader, check_contiguous};
use super::segment::{checkpoint_name, list_checkpoints, list_segments, segment_name, sync_dir};
use super::{FsyncPolicy, ReadRecord, Wal, WalError, WalOptions};
use crate::Labels;

/// What a checkpoint kept and dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The checkpoint written: `checkpoint.<index>` covers segments `<= index`.
    pub index: u64,
    pub series_kept: u64,
    pub series_dropped: u64,
    pub samples_kept: u64,
    pub samples_dropped: u64,
    /// Segment files read (previous checkpoint's files included).
    pub files_read: u64,
}

/// Writes `checkpoint.<up_to>` from the previous checkpoint and segments
/// `<= up_to`, keeping the Series records for which `keep_series(ref,
/// labels)` is true and their samples with `t >= min_time`; then deletes
/// older checkpoints. A ref may be defined more than once (after a restart
/// the head numbers series afresh), so the decision is per definition: a
/// sample belongs to the latest Series record of its ref before it. `up_to` must
/// be below the segment being written (cut first): every input is read
/// strictly, so damage anywhere is [`WalError::Corrupt`].
pub fn checkpoint(
    dir: &Path,
    up_to: u64,
    keep_series: impl Fn(u64, &Labels) -> bool,
    min_time: i64,
) -> Result<CheckpointStats, WalError> {
    let fail = |reason: String| WalError::Checkpoint {
        dir: dir.to_path_buf(),
        reason,
    };
    let segments = list_segments(dir)?;
    match segments.last() {
        Some(&last) if up_to >= last => {
            return Err(fail(format!(
                "segment {up_to} is not below the last segment {last}, which may still be written; \
                 cut a segment first"
            )));
        }
        None => return Err(fail("no segments".into())),
        _ => {}
    }
    let prev = list_checkpoints(dir)?.last().copied();
    if let Some(p) = prev
        && p >= up_to
    {
        return Err(fail(format!(
            "checkpoint.{p:08} already covers segment {up_to}"
        )));
    }
    let inputs: Vec<u64> = segments
        .into_iter()
        .filter(|&s| s <= up_to && prev.is_none_or(|p| s > p))
        .collect();
    check_contiguous(dir, prev, &inputs)?;
    let mut files = Vec::new();
    if let Some(p) = prev {
        let cdir = dir.join(checkpoint_name(p));
        files.extend(
            list_segments(&cdir)?
                .into_iter()
                .map(|s| (cdir.join(segment_name(s)), None)),
        );
    }
    files.extend(inputs.iter().map(|&s| (dir.join(segment_name(s)), Some(s))));

    let final_dir = dir.join(checkpoint_name(up_to));
    let tmp = dir.join(format!("{}.tmp", checkpoint_name(up_to)));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(WalError::io("removing stale", &tmp))?;
    }
    let mut out = Wal::open(
        &tmp,
        WalOptions {
            fsync: FsyncPolicy::Never,
            ..WalOptions::default()
        },
    )?;
    let mut stats = CheckpointStats {
        index: up_to,
        ..CheckpointStats::default()
    };
    let mut reader = WalReader::strict(files);
    let mut kept_samples: Vec<(u64, i64, f64)> = Vec::new();
    // Whether the current definition of each ref was kept.
    let mut kept_refs: Vec<bool> = Vec::new();
    while let Some(rec) = reader.next()? {
        match rec {
            ReadRecord::Series(series) => {
                let mut kept: Vec<(u64, &Labels)> = Vec::new();
                for (r, l) in series.iter() {
                    let keep = keep_series(*r, l);
                    let i = *r as usize;
                    if kept_refs.len() <= i {
                        kept_refs.resize(i + 1, false);
                    }
                    kept_refs[i] = keep;
                    if keep {
                        kept.push((*r, l));
                    }
                }
                stats.series_kept += kept.len() as u64;
                stats.series_dropped += (series.len() - kept.len()) as u64;
                if !kept.is_empty() {
                    out.log_series(&kept)?;
                }
            }
            ReadRecord::Samples(samples) => {
                kept_samples.clear();
                kept_samples.extend(samples.iter().filter(|&&(r, t, _)| {
                    t >= min_time && kept_refs.get(r as usize).copied().unwrap_or(false)
                }));
                stats.samples_kept += kept_samples.len() as u64;
                stats.samples_dropped += (samples.len() - kept_samples.len()) as u64;
                if !kept_samples.is_empty() {
                    out.log_samples(&kept_samples)?;
                }
            }
        }
    }
    stats.files_read = reader.stats().files_read;
    out.close()?;
    fs::rename(&tmp, &final_dir).map_err(WalError::io("renaming checkpoint into place", &tmp))?;
    sync_dir(dir)?;

    // The new checkpoint supersedes older ones and any leftover temp dirs.
    for e in fs::read_dir(dir).map_err(WalError::io("listing", dir))? {
        let e = e.map_err(WalError::io("listing", dir))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("checkpoint.") else {
            continue;
        };
        let stale_tmp = rest.ends_with(".tmp");
        let older = rest.parse::<u64>().is_ok_and(|i| i < up_to);
        if stale_tmp || older {
            let p = e.path();
            fs::remove_dir_all(&p).map_err(WalError::io("deleting old checkpoint", &p))?;
        }
    }
    sync_dir(dir)?;
    tracing::info!(
        dir = %dir.display(),
        checkpoint = up_to,
        series_kept = stats.series_kept,
        series_dropped = stats.series_dropped,
        samples_kept = stats.samples_kept,
        samples_dropped = stats.samples_dropped,
        "WAL checkpoint written"
    );
    Ok(stats)
}
