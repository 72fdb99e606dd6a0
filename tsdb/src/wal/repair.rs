//! Offline repair (`tessera tsdb repair`): keep everything before the first
//! damage of a WAL directory, drop the rest, and say exactly what was dropped.
//!
//! Dropping is the only safe move once a record is bad: records after it may
//! reference series defined in the lost one. Later segments are deleted
//! newest first, then the damaged one truncated, so a crash mid-repair
//! leaves a contiguous, readable prefix and repair can simply run again.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use super::reader::check_contiguous;
use super::segment::{
    SEGMENT_HEADER_LEN, Scanner, Step, checkpoint_name, count_valid_records, list_checkpoints,
    list_segments, segment_name, sync_dir,
};
use super::{WalError, WalReader};

/// Where the first damage was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub path: PathBuf,
    pub segment: u64,
    pub offset: u64,
    pub reason: String,
}

/// What [`repair`] did. `damage == None` means the directory was intact and
/// nothing was touched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    pub damage: Option<Damage>,
    /// Segments checked (up to and including the damaged one).
    pub segments_checked: u64,
    /// Bytes removed: the damaged segment's tail plus every later segment.
    pub bytes_dropped: u64,
    /// Valid-looking records found in the dropped bytes (a resync scan): how
    /// much acknowledged data the damage cost, at least.
    pub records_dropped: u64,
    /// Segment files deleted entirely (later ones, and the damaged one when
    /// even its header was bad).
    pub segments_deleted: Vec<u64>,
}

/// Repairs `dir` (see the module doc). A damaged checkpoint, or a segment
/// written by a newer format version, is returned as an error untouched:
/// dropping either would lose far more than the damage itself.
pub fn repair(dir: &Path) -> Result<RepairReport, WalError> {
    let checkpoint = list_checkpoints(dir)?.last().copied();
    if let Some(c) = checkpoint {
        // Reading it fully is the only way to know it is intact.
        let cdir = dir.join(checkpoint_name(c));
        let files = list_segments(&cdir)?
            .into_iter()
            .map(|s| (cdir.join(segment_name(s)), None))
            .collect();
        WalReader::strict(files).read_all()?;
    }
    let segments: Vec<u64> = list_segments(dir)?
        .into_iter()
        .filter(|&s| checkpoint.is_none_or(|c| s > c))
        .collect();
    let mut report = RepairReport::default();

    // A gap is damage at the end of the segment before it.
    let mut gap_after: Option<usize> = None;
    if let Err(WalError::MissingSegment { missing, .. }) =
        check_contiguous(dir, checkpoint, &segments)
    {
        match segments.iter().position(|&s| s + 1 == missing) {
            Some(i) => gap_after = Some(i),
            // The first segment after the checkpoint is missing: all are after the gap.
            None => {
                report.damage = Some(Damage {
                    path: dir.join(segment_name(missing)),
                    segment: missing,
                    offset: 0,
                    reason: "segment missing".into(),
                });
                drop_segments(dir, &segments, &mut report)?;
                return finish(dir, report);
            }
        }
    }

    let mut buf = Vec::new();
    for (i, &s) in segments.iter().enumerate() {
        let path = dir.join(segment_name(s));
        report.segments_checked += 1;
        let mut sc = Scanner::open(&path, std::mem::take(&mut buf))?;
        let file_len = sc.file_len();
        let bad = loop {
            match sc.next()? {
                Step::Record { .. } => {}
                Step::End => break None,
                Step::Damaged(bad) => break Some(bad),
            }
        };
        buf = sc.into_buf();
        if let Some(bad) = bad {
            if bad.unsupported {
                return Err(WalError::Corrupt {
                    path,
                    offset: bad.offset,
                    reason: format!("{}; not repairing: upgrade instead", bad.reason),
                });
            }
            report.damage = Some(Damage {
                path: path.clone(),
                segment: s,
                offset: bad.offset,
                reason: bad.reason,
            });
            drop_segments(dir, &segments[i + 1..], &mut report)?;
            let data = fs::read(&path).map_err(WalError::io("reading segment", &path))?;
            report.records_dropped += count_valid_records(&data, bad.offset as usize + 1).0;
            report.bytes_dropped += file_len - bad.offset;
            if bad.offset < SEGMENT_HEADER_LEN {
                fs::remove_file(&path).map_err(WalError::io("deleting segment", &path))?;
                report.segments_deleted.push(s);
            } else {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(WalError::io("opening segment", &path))?;
                f.set_len(bad.offset)
                    .and_then(|_| f.sync_all())
                    .map_err(WalError::io("truncating", &path))?;
            }
            return finish(dir, report);
        }
        if gap_after == Some(i) {
            report.damage = Some(Damage {
                path: dir.join(segment_name(s + 1)),
                segment: s + 1,
                offset: 0,
                reason: "segment missing".into(),
            });
            drop_segments(dir, &segments[i + 1..], &mut report)?;
            return finish(dir, report);
        }
    }
    Ok(report)
}

/// Deletes `segs` newest first, counting what they held.
fn drop_segments(dir: &Path, segs: &[u64], report: &mut RepairReport) -> Result<(), WalError> {
    for &s in segs.iter().rev() {
        let path = dir.join(segment_name(s));
        let data = fs::read(&path).map_err(WalError::io("reading segment", &path))?;
        report.records_dropped += count_valid_records(&data, SEGMENT_HEADER_LEN as usize).0;
        report.bytes_dropped += data.len() as u64;
        fs::remove_file(&path).map_err(WalError::io("deleting segment", &path))?;
        report.segments_deleted.push(s);
    }
    Ok(())
}

fn finish(dir: &Path, mut report: RepairReport) -> Result<RepairReport, WalError> {
    sync_dir(dir)?;
    if let Some(d) = &report.damage {
        tracing::warn!(
            file = %d.path.display(),
            offset = d.offset,
            reason = %d.reason,
            bytes_dropped = report.bytes_dropped,
            records_dropped = report.records_dropped,
            segments_deleted = ?report.segments_deleted,
            "WAL repaired: kept everything before the damage, dropped the rest"
        );
    }
    report.segments_deleted.sort_unstable();
    Ok(report)
}
