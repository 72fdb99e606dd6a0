//! Directory-level WAL behaviour: segments, reopen, torn tails, corruption,
//! repair and checkpoints, each against real files in a temp dir.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::segment::{Scanner, Step};
use super::*;
use crate::Labels;

fn labels(i: u64) -> Labels {
    Labels::from_pairs([
        ("__name__", "DCGM_FI_DEV_GPU_UTIL".to_string()),
        ("gpu", (i % 8).to_string()),
        ("instance", format!("node-{i}")),
    ])
}

fn small(segment_bytes: u64) -> WalOptions {
    WalOptions {
        segment_bytes,
        fsync: FsyncPolicy::Never,
    }
}

/// Everything logged by [`fill`], flattened, to compare with what is read.
#[derive(Debug, Default, PartialEq)]
struct Flat {
    series: Vec<(u64, Labels)>,
    samples: Vec<(u64, i64, u64)>,
}

impl Flat {
    fn of(records: Vec<WalRecord>) -> Flat {
        let mut f = Flat::default();
        for r in records {
            f.push(r);
        }
        f
    }

    fn push(&mut self, r: WalRecord) {
        match r {
            WalRecord::Series(s) => self.series.extend(s),
            WalRecord::Samples(s) => self
                .samples
                .extend(s.into_iter().map(|(r, t, v)| (r, t, v.to_bits()))),
        }
    }
}

/// Logs `n_series` series then `batches` sample batches of 50, returning
/// what was logged as records.
fn fill(wal: &mut Wal, first_ref: u64, n_series: u64, batches: i64) -> Vec<WalRecord> {
    let mut out = Vec::new();
    let owned: Vec<(u64, Labels)> = (first_ref..first_ref + n_series)
        .map(|r| (r, labels(r)))
        .collect();
    for chunk in owned.chunks(10) {
        let refs: Vec<(u64, &Labels)> = chunk.iter().map(|(r, l)| (*r, l)).collect();
        wal.log_series(&refs).unwrap();
        out.push(WalRecord::Series(chunk.to_vec()));
    }
    for b in 0..batches {
        let s: Vec<(u64, i64, f64)> = (0..50)
            .map(|i| {
                let r = first_ref + (i as u64 * 7 + b as u64) % n_series;
                (
                    r,
                    1_700_000_000_000 + b * 15_000 + i,
                    (b * 50 + i) as f64 * 0.25,
                )
            })
            .collect();
        wal.log_samples(&s).unwrap();
        out.push(WalRecord::Samples(s));
    }
    out
}

fn read(dir: &Path) -> Result<(Flat, ReadStats), WalError> {
    let mut r = WalReader::open(dir)?;
    let mut f = Flat::default();
    while let Some(rec) = r.next()? {
        f.push(match rec {
            ReadRecord::Series(s) => WalRecord::Series(std::mem::take(s)),
            ReadRecord::Samples(s) => WalRecord::Samples(s.to_vec()),
        });
    }
    Ok((f, r.stats().clone()))
}

fn seg_path(dir: &Path, i: u64) -> PathBuf {
    dir.join(segment_name(i))
}

/// Start offsets of the records in one segment.
fn record_offsets(path: &Path) -> Vec<u64> {
    let mut sc = Scanner::open(path, Vec::new()).unwrap();
    let mut out = Vec::new();
    while let Step::Record { offset, .. } = sc.next().unwrap() {
        out.push(offset);
    }
    out
}

fn flip_byte(path: &Path, offset: u64) {
    let mut data = fs::read(path).unwrap();
    data[offset as usize] ^= 0x40;
    fs::write(path, data).unwrap();
}

#[test]
fn records_round_trip_across_several_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1024)).unwrap();
    let logged = fill(&mut wal, 0, 40, 60);
    let segs = wal.segments().unwrap();
    assert!(segs.len() >= 5, "want several segments, got {segs:?}");
    assert_eq!(wal.current_segment(), *segs.last().unwrap());
    for &s in &segs[..segs.len() - 1] {
        let len = fs::metadata(seg_path(dir.path(), s)).unwrap().len();
        assert!(len <= 1024, "segment {s} is {len} bytes");
    }
    drop(wal);
    let (got, stats) = read(dir.path()).unwrap();
    assert_eq!(got, Flat::of(logged));
    assert_eq!(stats.samples, 60 * 50);
    assert_eq!(stats.series, 40);
    assert_eq!(stats.torn_tail, None);
    assert_eq!(stats.files_read, segs.len() as u64);
}

#[test]
fn reopen_appends_after_the_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(8192)).unwrap();
    let mut logged = fill(&mut wal, 0, 20, 30);
    let seg = wal.current_segment();
    drop(wal);
    let mut wal = Wal::open(dir.path(), small(8192)).unwrap();
    assert_eq!(wal.current_segment(), seg);
    logged.extend(fill(&mut wal, 100, 5, 40));
    drop(wal);
    assert_eq!(read(dir.path()).unwrap().0, Flat::of(logged));
}

#[test]
fn torn_tail_at_every_offset_of_last_record_keeps_earlier_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    let mut logged = fill(&mut wal, 0, 10, 5);
    let path = seg_path(dir.path(), wal.current_segment());
    let start = fs::metadata(&path).unwrap().len();
    wal.log_samples(&[(3, 99, 1.0), (4, 100, 2.0)]).unwrap();
    drop(wal);
    let end = fs::metadata(&path).unwrap().len();
    let want = Flat::of(logged.clone());
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    for cut in (start + 1..end).rev() {
        f.set_len(cut).unwrap();
        let (got, stats) = read(dir.path()).unwrap();
        assert_eq!(got, want, "cut at {cut}");
        assert_eq!(
            stats.torn_tail,
            Some((path.clone(), start, cut - start)),
            "cut at {cut}"
        );
    }
    // Opening for writing truncates the torn bytes and appends cleanly.
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), start);
    logged.extend(fill(&mut wal, 50, 2, 1));
    drop(wal);
    let (got, stats) = read(dir.path()).unwrap();
    assert_eq!(got, Flat::of(logged));
    assert_eq!(stats.torn_tail, None);
}

#[test]
fn crc_mismatch_in_final_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    let logged = fill(&mut wal, 0, 10, 5);
    let path = seg_path(dir.path(), 0);
    let last = *record_offsets(&path).last().unwrap();
    drop(wal);
    flip_byte(&path, last + 20);
    let (got, stats) = read(dir.path()).unwrap();
    let mut want = Flat::of(logged);
    want.samples.truncate(4 * 50);
    assert_eq!(got, want);
    assert_eq!(stats.torn_tail.as_ref().map(|t| t.1), Some(last));
    drop(Wal::open(dir.path(), small(1 << 20)).unwrap());
    assert_eq!(fs::metadata(&path).unwrap().len(), last);
}

#[test]
fn trailing_zeros_after_the_last_record_are_ignored_then_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    let mut logged = fill(&mut wal, 0, 10, 5);
    drop(wal);
    let path = seg_path(dir.path(), 0);
    let len = fs::metadata(&path).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[0u8; 4096]).unwrap();
    drop(f);
    let (got, stats) = read(dir.path()).unwrap();
    assert_eq!(got, Flat::of(logged.clone()));
    assert_eq!(stats.torn_tail, Some((path.clone(), len, 4096)));
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    logged.extend(fill(&mut wal, 20, 1, 1));
    drop(wal);
    assert_eq!(read(dir.path()).unwrap().0, Flat::of(logged));
}

#[test]
fn torn_header_of_a_freshly_cut_segment_is_rewritten_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    let mut logged = fill(&mut wal, 0, 3, 2);
    let next = wal.cut_segment().unwrap();
    drop(wal);
    let path = seg_path(dir.path(), next);
    for len in [0, 3] {
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len)
            .unwrap();
        let (got, stats) = read(dir.path()).unwrap();
        assert_eq!(got, Flat::of(logged.clone()));
        assert_eq!(stats.torn_tail.map(|t| t.1), Some(0));
    }
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    assert_eq!(wal.current_segment(), next);
    logged.extend(fill(&mut wal, 9, 1, 1));
    drop(wal);
    assert_eq!(read(dir.path()).unwrap().0, Flat::of(logged));
}

/// A directory of at least 4 segments with a flipped byte inside the second
/// record of segment 1; returns the damaged path and record offset.
fn damaged_middle_segment(dir: &Path) -> (Vec<WalRecord>, PathBuf, u64) {
    let mut wal = Wal::open(dir, small(1024)).unwrap();
    let logged = fill(&mut wal, 0, 40, 60);
    assert!(wal.current_segment() >= 3);
    drop(wal);
    let path = seg_path(dir, 1);
    let off = record_offsets(&path)[1];
    flip_byte(&path, off + 12);
    (logged, path, off)
}

#[test]
fn flipped_byte_in_a_middle_segment_is_corrupt_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path, off) = damaged_middle_segment(dir.path());
    let err = read(dir.path()).unwrap_err();
    match &err {
        WalError::Corrupt {
            path: p, offset, ..
        } => {
            assert_eq!((p, *offset), (&path, off));
        }
        other => panic!("want Corrupt, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("offset {off}")), "{msg}");
    assert!(msg.contains("tessera tsdb repair --data-dir"), "{msg}");
}

#[test]
fn bad_record_followed_by_valid_ones_in_last_segment_is_corrupt_not_torn() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    fill(&mut wal, 0, 10, 5);
    drop(wal);
    let path = seg_path(dir.path(), 0);
    let offs = record_offsets(&path);
    flip_byte(&path, offs[2] + 10);
    let len = fs::metadata(&path).unwrap().len();
    for err in [
        read(dir.path()).unwrap_err(),
        Wal::open(dir.path(), small(1 << 20)).err().unwrap(),
    ] {
        assert!(
            matches!(&err, WalError::Corrupt { offset, .. } if *offset == offs[2]),
            "{err:?}"
        );
    }
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        len,
        "open must not truncate valid data"
    );
}

#[test]
fn repair_keeps_everything_before_the_damage_and_reports_the_drop() {
    let dir = tempfile::tempdir().unwrap();
    let (logged, path, off) = damaged_middle_segment(dir.path());
    let before = fs::read(&path).unwrap();
    let segs_before = list_segments(dir.path()).unwrap();
    let later_bytes: u64 = segs_before[2..]
        .iter()
        .map(|&s| fs::metadata(seg_path(dir.path(), s)).unwrap().len())
        .sum();

    let report = repair(dir.path()).unwrap();
    let damage = report.damage.clone().unwrap();
    assert_eq!(
        (damage.segment, damage.offset, &damage.path),
        (1, off, &path)
    );
    assert_eq!(report.segments_deleted, segs_before[2..].to_vec());
    assert_eq!(
        report.bytes_dropped,
        later_bytes + before.len() as u64 - off
    );
    assert!(
        report.records_dropped >= (segs_before.len() - 2) as u64,
        "{report:?}"
    );
    assert_eq!(list_segments(dir.path()).unwrap(), vec![0, 1]);

    // What remains is exactly the records that were before the damage.
    let kept_records = record_offsets(&seg_path(dir.path(), 0)).len() + 1;
    let (got, stats) = read(dir.path()).unwrap();
    assert_eq!(got, Flat::of(logged[..kept_records].to_vec()));
    assert_eq!(stats.torn_tail, None);
    // A second repair finds nothing to do.
    assert_eq!(repair(dir.path()).unwrap().damage, None);
}

#[test]
fn repair_of_an_intact_wal_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1024)).unwrap();
    let logged = fill(&mut wal, 0, 10, 30);
    drop(wal);
    let report = repair(dir.path()).unwrap();
    assert_eq!(report.damage, None);
    assert_eq!(report.bytes_dropped, 0);
    assert_eq!(read(dir.path()).unwrap().0, Flat::of(logged));
}

#[test]
fn missing_segment_is_an_error_and_repair_drops_what_follows_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1024)).unwrap();
    fill(&mut wal, 0, 40, 60);
    let last = wal.current_segment();
    drop(wal);
    fs::remove_file(seg_path(dir.path(), 2)).unwrap();
    assert!(matches!(
        read(dir.path()),
        Err(WalError::MissingSegment { missing: 2, .. })
    ));
    let report = repair(dir.path()).unwrap();
    assert_eq!(report.damage.unwrap().segment, 2);
    assert_eq!(report.segments_deleted, (3..=last).collect::<Vec<_>>());
    assert_eq!(list_segments(dir.path()).unwrap(), vec![0, 1]);
    read(dir.path()).unwrap();
}

#[test]
fn unknown_format_version_is_refused_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    fill(&mut wal, 0, 3, 2);
    drop(wal);
    let path = seg_path(dir.path(), 0);
    let mut data = fs::read(&path).unwrap();
    data[4] = FORMAT_VERSION + 1;
    fs::write(&path, &data).unwrap();
    let err = read(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "unsupported WAL format version {}",
            FORMAT_VERSION + 1
        )),
        "{err}"
    );
    assert!(Wal::open(dir.path(), small(1 << 20)).is_err());
    assert!(repair(dir.path()).is_err());
    assert_eq!(fs::read(&path).unwrap(), data);
}

#[test]
fn checkpoint_then_truncate_reads_the_same_live_series() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1024)).unwrap();
    let first = fill(&mut wal, 0, 40, 60);
    let up_to = wal.cut_segment().unwrap() - 1;
    let after = fill(&mut wal, 1000, 5, 10);
    let min_t = 1_700_000_000_000 + 30 * 15_000;
    let live = |r: u64| r.is_multiple_of(2);
    let keep = |r: u64, _: &Labels| live(r);

    let stats = checkpoint(dir.path(), up_to, keep, min_t).unwrap();
    assert_eq!((stats.series_kept, stats.series_dropped), (20, 20));
    let deleted = wal.truncate_before(up_to + 1).unwrap();
    assert_eq!(deleted as u64, up_to + 1);
    assert_eq!(list_checkpoints(dir.path()).unwrap(), vec![up_to]);

    let mut want = Flat::of(first);
    want.series.retain(|(r, _)| live(*r));
    want.samples.retain(|&(r, t, _)| live(r) && t >= min_t);
    assert_eq!(stats.samples_kept, want.samples.len() as u64);
    let tail = Flat::of(after);
    want.series.extend(tail.series);
    want.samples.extend(tail.samples);
    let (got, _) = read(dir.path()).unwrap();
    assert_eq!(got, want);

    // A second checkpoint folds in the first and deletes it.
    drop(wal);
    let mut wal = Wal::open(dir.path(), small(1024)).unwrap();
    let up_to2 = wal.cut_segment().unwrap() - 1;
    checkpoint(dir.path(), up_to2, |_, _| true, i64::MIN).unwrap();
    wal.truncate_before(up_to2 + 1).unwrap();
    assert_eq!(list_checkpoints(dir.path()).unwrap(), vec![up_to2]);
    assert_eq!(read(dir.path()).unwrap().0, got);
}

#[test]
fn checkpoint_refuses_the_segment_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    fill(&mut wal, 0, 3, 2);
    let err = checkpoint(dir.path(), wal.current_segment(), |_, _| true, 0).unwrap_err();
    assert!(matches!(err, WalError::Checkpoint { .. }), "{err}");
    assert!(list_checkpoints(dir.path()).unwrap().is_empty());
}

#[test]
fn writer_after_full_checkpoint_continues_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    let logged = fill(&mut wal, 0, 3, 2);
    wal.cut_segment().unwrap();
    checkpoint(dir.path(), 0, |_, _| true, i64::MIN).unwrap();
    wal.truncate_before(1).unwrap();
    drop(wal);
    // Even with every segment gone, a new writer starts after the checkpoint.
    fs::remove_file(seg_path(dir.path(), 1)).unwrap();
    let wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    assert_eq!(wal.current_segment(), 1);
    drop(wal);
    assert_eq!(read(dir.path()).unwrap().0, Flat::of(logged));
}

#[test]
fn syncer_fsyncs_only_when_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(
        dir.path(),
        WalOptions {
            segment_bytes: 1 << 20,
            fsync: FsyncPolicy::Interval(Duration::from_secs(3600)),
        },
    )
    .unwrap();
    let syncer = wal.syncer();
    assert!(!syncer.sync_if_dirty().unwrap());
    wal.log_samples(&[(1, 1, 1.0)]).unwrap();
    let t = std::thread::spawn(move || syncer.sync_if_dirty().unwrap());
    assert!(t.join().unwrap());
    assert!(!wal.syncer().sync_if_dirty().unwrap());
}

#[test]
fn interval_policy_fsyncs_inline_once_the_interval_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = |ms| WalOptions {
        segment_bytes: 1 << 20,
        fsync: FsyncPolicy::Interval(Duration::from_millis(ms)),
    };
    let mut wal = Wal::open(dir.path(), opts(0)).unwrap();
    wal.log_samples(&[(1, 1, 1.0)]).unwrap();
    assert!(
        !wal.syncer().is_dirty(),
        "an elapsed interval must fsync in log"
    );
    drop(wal);
    let mut wal = Wal::open(dir.path(), opts(3_600_000)).unwrap();
    wal.log_samples(&[(1, 2, 1.0)]).unwrap();
    assert!(
        wal.syncer().is_dirty(),
        "within the interval log must not fsync"
    );
}

#[test]
fn repair_truncates_a_torn_tail_of_the_last_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    let logged = fill(&mut wal, 0, 10, 5);
    drop(wal);
    let path = seg_path(dir.path(), 0);
    let len = fs::metadata(&path).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[7, 0, 0, 0, 1, 2]).unwrap();
    drop(f);
    let report = repair(dir.path()).unwrap();
    assert_eq!(report.damage.map(|d| d.offset), Some(len));
    assert_eq!((report.bytes_dropped, report.records_dropped), (6, 0));
    assert_eq!(fs::metadata(&path).unwrap().len(), len);
    let (got, stats) = read(dir.path()).unwrap();
    assert_eq!(got, Flat::of(logged));
    assert_eq!(stats.torn_tail, None);
}

#[test]
fn always_policy_and_close_keep_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        segment_bytes: 2048,
        fsync: FsyncPolicy::Always,
    };
    let mut wal = Wal::open(dir.path(), opts).unwrap();
    let logged = fill(&mut wal, 0, 5, 10);
    wal.close().unwrap();
    assert_eq!(read(dir.path()).unwrap().0, Flat::of(logged));
}

#[test]
fn one_log_call_writes_several_records_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    let (a, b) = (labels(1), labels(2));
    let series = [(1, &a), (2, &b)];
    let samples = [(1, 10, 1.0), (2, 10, 2.0)];
    wal.log(&[RecordRef::Series(&series), RecordRef::Samples(&samples)])
        .unwrap();
    drop(wal);
    let got = WalReader::open(dir.path()).unwrap().read_all().unwrap();
    assert_eq!(
        got,
        vec![
            WalRecord::Series(vec![(1, a), (2, b)]),
            WalRecord::Samples(samples.to_vec())
        ]
    );
}

#[test]
fn reading_a_missing_directory_yields_no_records() {
    let dir = tempfile::tempdir().unwrap();
    let got = WalReader::open(&dir.path().join("never-written")).unwrap();
    assert_eq!(got.read_all().unwrap(), vec![]);
}

#[test]
fn writer_reader_and_syncer_can_move_between_threads() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Wal>();
    sync::<Wal>();
    send::<WalReader>();
    send::<WalSyncer>();
    sync::<WalSyncer>();
}

/// Throughput of the append and replay paths. Run with
/// `cargo test --release -p tessera-tsdb wal::tests::measure -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_log_and_read_1m_samples_in_batches_of_500() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(
        dir.path(),
        WalOptions {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            fsync: FsyncPolicy::Never,
        },
    )
    .unwrap();
    const N: usize = 1_000_000;
    const BATCH: usize = 500;
    const SERIES: u64 = 10_000;
    let owned: Vec<(u64, Labels)> = (0..SERIES).map(|r| (r, labels(r))).collect();
    let refs: Vec<(u64, &Labels)> = owned.iter().map(|(r, l)| (*r, l)).collect();
    wal.log_series(&refs).unwrap();
    // Scrape-shaped: consecutive refs, one timestamp per round, gauge values.
    let mut batch = Vec::with_capacity(BATCH);
    let start = Instant::now();
    for b in 0..N / BATCH {
        batch.clear();
        let first = (b * BATCH) as u64;
        let t = 1_700_000_000_000 + (first / SERIES) as i64 * 15_000;
        batch.extend(
            (0..BATCH as u64).map(|i| ((first + i) % SERIES, t, ((first + i) % 97) as f64 * 1.5)),
        );
        wal.log_samples(&batch).unwrap();
    }
    let write = start.elapsed();
    let bytes: u64 = wal
        .segments()
        .unwrap()
        .iter()
        .map(|&s| fs::metadata(seg_path(dir.path(), s)).unwrap().len())
        .sum();
    drop(wal);

    let start = Instant::now();
    let mut r = WalReader::open(dir.path()).unwrap();
    let mut samples = 0usize;
    let mut checksum = 0u64;
    while let Some(rec) = r.next().unwrap() {
        if let ReadRecord::Samples(s) = rec {
            samples += s.len();
            checksum = checksum.wrapping_add(s.last().unwrap().0);
        }
    }
    let read = start.elapsed();
    assert_eq!(samples, N);
    assert!(checksum > 0);
    println!(
        "log_samples: {N} samples in {write:?} = {:.1} M samples/s ({:.2} bytes/sample, {bytes} bytes on disk)",
        N as f64 / write.as_secs_f64() / 1e6,
        bytes as f64 / N as f64,
    );
    println!(
        "read back (incl. {SERIES} series): {N} samples in {read:?} = {:.1} M samples/s",
        N as f64 / read.as_secs_f64() / 1e6
    );

    // The same batches with FsyncPolicy::Always: one fdatasync per call.
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        segment_bytes: DEFAULT_SEGMENT_BYTES,
        fsync: FsyncPolicy::Always,
    };
    let mut wal = Wal::open(dir.path(), opts).unwrap();
    const CALLS: usize = 200;
    let start = Instant::now();
    for _ in 0..CALLS {
        wal.log_samples(&batch).unwrap();
    }
    let always = start.elapsed();
    println!(
        "log_samples with Always: {CALLS} calls of {BATCH} in {always:?} = {:?}/call, {:.2} M samples/s",
        always / CALLS as u32,
        (CALLS * BATCH) as f64 / always.as_secs_f64() / 1e6
    );
}

/// Remote-write-shaped data: `nodes` targets of 64 series each (8 GPUs x
/// DCGM util/power/memory/energy, then node-exporter CPU-seconds and network
/// byte counters), scraped in rounds; each target's samples share a
/// timestamp a few ms apart from the next target's. Deterministic.
struct Realistic {
    state: Vec<f64>,
    rng: u64,
    round: i64,
}

impl Realistic {
    const PER_NODE: u64 = 64;

    fn new(nodes: u64) -> Realistic {
        let mut g = Realistic {
            state: vec![0.0; (nodes * Self::PER_NODE) as usize],
            rng: 0x9e37_79b9_7f4a_7c15,
            round: 0,
        };
        for i in 0..g.state.len() {
            g.state[i] = match Self::kind(i as u64) {
                0 => (g.next() % 101) as f64,
                1 => (60_000 + g.next() % 240_000) as f64 / 1000.0,
                2 => (g.next() % 81_920) as f64,
                3 => (1_000_000_000 + g.next() % 1_000_000_000) as f64,
                4 => (100_000 + g.next() % 900_000) as f64 / 100.0,
                _ => (g.next() % 1_000_000_000_000) as f64,
            };
        }
        g
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// 0 GPU util %, 1 power W (3 decimals), 2 memory MiB, 3 energy mJ
    /// counter, 4 CPU seconds counter (2 decimals), 5 network bytes counter.
    fn kind(i: u64) -> u64 {
        match i % Self::PER_NODE {
            k if k < 32 => k / 8,
            k if k < 48 => 4,
            _ => 5,
        }
    }

    /// Series ref of series `i`: small gaps between targets.
    fn series_ref(i: u64) -> u64 {
        i + i / Self::PER_NODE * 3
    }

    fn labels(i: u64) -> Labels {
        let names = [
            "DCGM_FI_DEV_GPU_UTIL",
            "DCGM_FI_DEV_POWER_USAGE",
            "DCGM_FI_DEV_FB_USED",
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
            "node_cpu_seconds_total",
            "node_network_receive_bytes_total",
        ];
        let node = i / Self::PER_NODE;
        Labels::from_pairs([
            ("__name__", names[Self::kind(i) as usize].to_string()),
            ("Hostname", format!("gpu-node-{node:04}")),
            (
                "UUID",
                format!("GPU-{:08x}-4c1e-9d7a-{:012x}", node * 31, i % 8),
            ),
            ("cluster", "prod-eu-west-1".to_string()),
            ("gpu", (i % 8).to_string()),
            (
                "instance",
                format!("10.12.{}.{}:9400", node / 250, node % 250),
            ),
            ("job", "dcgm-exporter".to_string()),
            ("modelName", "NVIDIA H100 80GB HBM3".to_string()),
        ])
    }

    /// One scrape round of every series, in ref order.
    fn round(&mut self, out: &mut Vec<(u64, i64, f64)>) {
        let t0 = 1_700_000_000_000 + self.round * 15_000;
        self.round += 1;
        let mut t = t0;
        for i in 0..self.state.len() {
            if (i as u64).is_multiple_of(Self::PER_NODE) {
                t = t0 + (self.next() % 4) as i64;
            }
            let r = self.next();
            let v = &mut self.state[i];
            *v = match Self::kind(i as u64) {
                0 => ((*v as i64 + (r % 11) as i64 - 5).clamp(0, 100)) as f64,
                1 => (60_000 + r % 240_000) as f64 / 1000.0,
                2 => (*v + (r % 64) as f64).min(81_920.0),
                3 => *v + (r % 4_000_000) as f64,
                4 => ((*v * 100.0).round() + (r % 1500) as f64) / 100.0,
                _ => *v + (r % 50_000_000) as f64,
            };
            out.push((Self::series_ref(i as u64), t, *v));
        }
    }
}

/// Bytes per sample and write/read throughput on [`Realistic`] data in
/// 2,000-sample `log` calls (one per remote-write request). Run with
/// `cargo test --release -p tessera-tsdb wal::tests::measure_realistic -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_realistic_remote_write_batches() {
    const NODES: u64 = 256;
    const ROUNDS: usize = 64;
    const BATCH: usize = 2000;
    let mut g = Realistic::new(NODES);
    let mut all = Vec::new();
    for _ in 0..ROUNDS {
        g.round(&mut all);
    }
    let n = all.len();
    let series: Vec<(u64, Labels)> = (0..NODES * Realistic::PER_NODE)
        .map(|i| (Realistic::series_ref(i), Realistic::labels(i)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let disk = |wal: &Wal| -> u64 {
        wal.segments()
            .unwrap()
            .iter()
            .map(|&s| fs::metadata(seg_path(dir.path(), s)).unwrap().len())
            .sum()
    };
    let mut wal = Wal::open(dir.path(), small(DEFAULT_SEGMENT_BYTES)).unwrap();
    let start = Instant::now();
    for chunk in series.chunks(BATCH) {
        let refs: Vec<(u64, &Labels)> = chunk.iter().map(|(r, l)| (*r, l)).collect();
        wal.log_series(&refs).unwrap();
    }
    let series_time = start.elapsed();
    let series_bytes = disk(&wal);
    let start = Instant::now();
    for chunk in all.chunks(BATCH) {
        wal.log_samples(chunk).unwrap();
    }
    let write = start.elapsed();
    let total = disk(&wal);
    drop(wal);
    let start = Instant::now();
    let mut r = WalReader::open(dir.path()).unwrap();
    let (mut got, mut sum) = (0usize, 0u64);
    while let Some(rec) = r.next().unwrap() {
        if let ReadRecord::Samples(s) = rec {
            got += s.len();
            sum = sum.wrapping_add(s.iter().map(|x| x.2.to_bits()).fold(0, u64::wrapping_add));
        }
    }
    let read = start.elapsed();
    assert_eq!(got, n);
    let want = all.iter().map(|x| x.2.to_bits()).fold(0, u64::wrapping_add);
    assert_eq!(sum, want);
    // The alternatives, on the same records (frame headers included).
    let (mut v1, mut v1_snappy, mut v2, mut v2_snappy) = (0, 0, 0, 0);
    let (mut plain, mut snappy) = (
        record::FrameEncoder::new(false),
        record::FrameEncoder::new(true),
    );
    let mut buf = Vec::new();
    for chunk in all.chunks(BATCH) {
        let rec = RecordRef::Samples(chunk);
        buf.clear();
        record::append_frame_v1(&rec, 0, &mut buf);
        v1 += buf.len();
        v1_snappy += 8
            + 1
            + snap::raw::Encoder::new()
                .compress_vec(&buf[9..])
                .unwrap()
                .len();
        buf.clear();
        plain.append_frame(&rec, 0, &mut buf).unwrap();
        v2 += buf.len();
        buf.clear();
        snappy.append_frame(&rec, 0, &mut buf).unwrap();
        v2_snappy += buf.len();
    }
    let per = |b: usize| b as f64 / n as f64;
    println!(
        "bytes/sample by layout: v1 rows {:.2}, v1 rows + snappy {:.2}, \
         v2 columnar {:.2}, v2 columnar + snappy {:.2}",
        per(v1),
        per(v1_snappy),
        per(v2),
        per(v2_snappy)
    );
    println!(
        "series: {} in {series_time:?}, {series_bytes} bytes = {:.1} bytes/series",
        series.len(),
        series_bytes as f64 / series.len() as f64
    );
    println!(
        "samples: {n} in {BATCH}-sample log calls: {:.2} bytes/sample ({:.2} incl. series), \
         write {:.1} M samples/s, read {:.1} M samples/s",
        (total - series_bytes) as f64 / n as f64,
        total as f64 / n as f64,
        n as f64 / write.as_secs_f64() / 1e6,
        n as f64 / read.as_secs_f64() / 1e6,
    );
}

/// Writes `records` as segment `index` the way a version-1 build did.
fn write_v1_segment(dir: &Path, index: u64, records: &[WalRecord]) {
    let mut buf = vec![b'T', b'W', b'A', b'L', FORMAT_VERSION_V1, 0, 0, 0];
    for r in records {
        let refs: Vec<(u64, &Labels)>;
        let rec = match r {
            WalRecord::Series(s) => {
                refs = s.iter().map(|(r, l)| (*r, l)).collect();
                RecordRef::Series(&refs)
            }
            WalRecord::Samples(s) => RecordRef::Samples(s),
        };
        let mut from = 0;
        while from < rec.len() {
            from += record::append_frame_v1(&rec, from, &mut buf);
        }
    }
    fs::create_dir_all(dir).unwrap();
    fs::write(seg_path(dir, index), buf).unwrap();
}

#[test]
fn version_1_segments_are_read_and_a_writer_continues_in_a_new_v2_segment() {
    let dir = tempfile::tempdir().unwrap();
    // What a version-1 build logged, via a throwaway v2 WAL for the records.
    let scratch = tempfile::tempdir().unwrap();
    let mut old = fill(
        &mut Wal::open(scratch.path(), small(1 << 20)).unwrap(),
        0,
        10,
        5,
    );
    old.push(WalRecord::Samples(vec![
        (3, 7, crate::stale_nan()),
        (4, 7, -0.0),
    ]));
    write_v1_segment(dir.path(), 0, &old);
    let v1_bytes = fs::read(seg_path(dir.path(), 0)).unwrap();
    assert_eq!(read(dir.path()).unwrap().0, Flat::of(old.clone()));

    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    assert_eq!(wal.current_segment(), 1, "must not append to a v1 segment");
    let mut logged = old;
    logged.extend(fill(&mut wal, 100, 5, 5));
    drop(wal);
    assert_eq!(fs::read(seg_path(dir.path(), 0)).unwrap(), v1_bytes);
    assert_eq!(
        fs::read(seg_path(dir.path(), 1)).unwrap()[4],
        FORMAT_VERSION
    );
    let (got, stats) = read(dir.path()).unwrap();
    assert_eq!(got, Flat::of(logged.clone()));
    assert_eq!(stats.torn_tail, None);
    // Reopening the v2 segment appends to it.
    let wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    assert_eq!(wal.current_segment(), 1);
    drop(wal);
    // A checkpoint over the v1 segment rewrites it as v2.
    checkpoint(dir.path(), 0, |_, _| true, i64::MIN).unwrap();
    let cp = dir.path().join(checkpoint_name(0)).join(segment_name(0));
    assert_eq!(fs::read(cp).unwrap()[4], FORMAT_VERSION);
    assert_eq!(read(dir.path()).unwrap().0, Flat::of(logged));
}

#[test]
fn torn_tail_of_a_version_1_segment_is_truncated_before_the_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let old = fill(
        &mut Wal::open(scratch.path(), small(1 << 20)).unwrap(),
        0,
        4,
        3,
    );
    write_v1_segment(dir.path(), 0, &old);
    let path = seg_path(dir.path(), 0);
    let len = fs::metadata(&path).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[40, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(f);
    let wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    assert_eq!(wal.current_segment(), 1);
    drop(wal);
    assert_eq!(fs::metadata(&path).unwrap().len(), len);
    assert_eq!(read(dir.path()).unwrap().0, Flat::of(old));
}

#[test]
fn compressed_body_that_passes_its_crc_but_not_snappy_is_corrupt_with_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    fill(&mut wal, 0, 10, 5);
    drop(wal);
    let path = seg_path(dir.path(), 0);
    let offs = record_offsets(&path);
    let mut data = fs::read(&path).unwrap();
    // The series record (10 full label sets) is compressed.
    let at = offs[0] as usize;
    assert_ne!(data[at + 8] & 0x80, 0, "want a compressed record");
    let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    // Damage the snappy stream, then fix the CRC so only decoding can tell.
    data[at + 9] ^= 0x7f;
    data[at + 12] ^= 0xff;
    let crc = crc32c::crc32c(&data[at + 8..at + 8 + len]);
    data[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &data).unwrap();
    match read(dir.path()) {
        Err(WalError::Corrupt {
            path: p,
            offset,
            reason,
        }) => {
            assert_eq!((p, offset), (path, offs[0]));
            assert!(reason.contains("does not decode"), "{reason}");
        }
        other => panic!("want Corrupt, got {other:?}"),
    }
}

#[test]
fn torn_tail_inside_a_compressed_record_keeps_earlier_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), small(1 << 20)).unwrap();
    let logged = fill(&mut wal, 0, 10, 5);
    let path = seg_path(dir.path(), 0);
    let start = fs::metadata(&path).unwrap().len();
    let big: Vec<(u64, i64, f64)> = (0..2000).map(|i| (i, 5, (i % 100) as f64)).collect();
    wal.log_samples(&big).unwrap();
    drop(wal);
    let data = fs::read(&path).unwrap();
    assert_ne!(
        data[start as usize + 8] & 0x80,
        0,
        "want a compressed record"
    );
    let end = data.len() as u64;
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    for cut in [start + 1, start + 9, start + 20, end - 1] {
        f.set_len(cut).unwrap();
        let (got, stats) = read(dir.path()).unwrap();
        assert_eq!(got, Flat::of(logged.clone()), "cut at {cut}");
        assert_eq!(stats.torn_tail.map(|t| t.1), Some(start));
    }
    drop(Wal::open(dir.path(), small(1 << 20)).unwrap());
    assert_eq!(fs::metadata(&path).unwrap().len(), start);
}
