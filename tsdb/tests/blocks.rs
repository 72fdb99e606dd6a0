//! Head → block cuts, compaction and retention through `Db`: reads that
//! span the head and several blocks must equal the same reads on a store
//! that kept everything in its head, before and after restarts.

use std::path::Path;

use tessera_tsdb::wal::{FsyncPolicy, WalOptions};
use tessera_tsdb::{
    BlockPolicy, Db, DbOptions, Labels, MatchOp, Matcher, ReadControl, Sample, SeriesSamples,
};

/// Small, fast xorshift: the data must be the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const BLOCK_MS: i64 = 10_000;

fn opts(dir: &Path, shards: usize, retention_ms: Option<i64>) -> DbOptions {
    DbOptions {
        data_dir: Some(dir.to_path_buf()),
        shards,
        wal: WalOptions {
            // Small segments so checkpoints and truncation really happen.
            segment_bytes: 16 << 10,
            fsync: FsyncPolicy::Never,
        },
        replay_threads: 2,
        read_only: false,
        blocks: BlockPolicy {
            block_duration_ms: BLOCK_MS,
            retention_ms,
        },
        replay_progress: Default::default(),
    }
}

fn series_labels(i: usize, generation: usize) -> Labels {
    let metric = ["gpu_util", "node_cpu_seconds_total", "up"][i % 3];
    Labels::from_pairs([
        ("__name__", metric),
        ("instance", &*format!("node-{}", i % 7)),
        ("gpu", &*(i % 8).to_string()),
        // Churn: a series is replaced by a new pod now and then.
        ("pod", &*format!("pod-{i}-{generation}")),
    ])
}

/// Appends `rounds` scrapes (1 s apart with jitter) of `n` series to every
/// db, churning some series, and runs `between` every 10 rounds.
fn ingest(dbs: &[&Db], n: usize, rounds: i64, seed: u64, mut between: impl FnMut(i64)) {
    let mut rng = Rng(seed);
    let mut generation = vec![0usize; n];
    let mut value = vec![0f64; n];
    for r in 0..rounds {
        let t = 1_000_000 + r * 1000 + rng.below(50) as i64;
        for i in 0..n {
            if rng.below(100) == 0 {
                generation[i] += 1;
            }
            // Some series skip scrapes; values are counters and gauges.
            if rng.below(10) == 0 {
                continue;
            }
            value[i] += rng.below(1000) as f64 / 10.0;
            let ls = series_labels(i, generation[i]);
            let smp = [Sample::new(t, value[i])];
            for db in dbs {
                let st = db.append(&ls, &smp).unwrap();
                assert_eq!(st.rejected(), 0, "{:?}", st.first_rejection);
            }
        }
        if r % 10 == 9 {
            between(t);
        }
    }
}

fn matcher_sets() -> Vec<Vec<Matcher>> {
    vec![
        vec![Matcher::equal("__name__", "gpu_util")],
        vec![Matcher::new(MatchOp::RegexMatch, "instance", "node-[12]").unwrap()],
        vec![
            Matcher::equal("__name__", "up"),
            Matcher::new(MatchOp::NotEqual, "gpu", "3").unwrap(),
        ],
        vec![Matcher::new(MatchOp::RegexMatch, "pod", "pod-1.*").unwrap()],
    ]
}

/// Every read of `got` equals the same read of `want` over many ranges,
/// including ones that start or end exactly on block boundaries.
fn assert_same(got: &Db, want: &Db, seed: u64) {
    let mut rng = Rng(seed);
    let mut ranges = vec![(i64::MIN, i64::MAX), (1_000_000, 1_000_000 + 40_000)];
    for k in 0..12 {
        let b = 1_000_000 + k * BLOCK_MS;
        ranges.push((b, b + BLOCK_MS - 1));
        ranges.push((b - 1, b));
    }
    for _ in 0..20 {
        let a = 1_000_000 + rng.below(200_000) as i64;
        ranges.push((a, a + rng.below(60_000) as i64));
    }
    for ms in matcher_sets() {
        for &(lo, hi) in &ranges {
            let g = got.select(&ms, lo, hi);
            let w = want.select(&ms, lo, hi);
            assert_eq!(summary(&g), summary(&w), "select {ms:?} [{lo}, {hi}]");
            assert_eq!(g, w, "select {ms:?} [{lo}, {hi}]");
            // Listings decide by time bounds, not exact samples (as
            // Prometheus, by chunk bounds): a store cut into blocks has
            // tighter bounds than one head. So: every series with a sample
            // in range is listed, and nothing the one-head store would not
            // list.
            let exact: Vec<Labels> = w.iter().map(|s| s.labels.clone()).collect();
            let listed = got.series(&ms, lo, hi);
            assert!(is_subset(&exact, &listed), "series {ms:?} [{lo}, {hi}]");
            assert!(
                is_subset(&listed, &want.series(&ms, lo, hi)),
                "series {ms:?} [{lo}, {hi}]"
            );
            let pods: Vec<String> = {
                let mut v: Vec<String> = exact
                    .iter()
                    .filter_map(|l| l.get("pod").map(str::to_string))
                    .collect();
                v.sort();
                v.dedup();
                v
            };
            let got_pods = got.label_values("pod", &ms, lo, hi);
            assert!(is_subset(&pods, &got_pods), "values {ms:?} [{lo}, {hi}]");
            assert!(
                is_subset(&got_pods, &want.label_values("pod", &ms, lo, hi)),
                "values {ms:?} [{lo}, {hi}]"
            );
            assert!(is_subset(
                &got.label_names(&ms, lo, hi),
                &want.label_names(&ms, lo, hi)
            ));
        }
    }
    // Batches (the aggregation pushdown's path) hold the same series.
    let ms = &matcher_sets()[0];
    let mut batched = Vec::new();
    got.select_batches(
        ms,
        i64::MIN,
        i64::MAX,
        &ReadControl::unlimited(),
        &mut |b| {
            batched.extend(b);
            Ok(())
        },
    )
    .unwrap();
    batched.sort_by(|a, b| a.labels.cmp(&b.labels));
    assert_eq!(batched, want.select(ms, i64::MIN, i64::MAX));
}

/// Both sorted and unique.
fn is_subset<T: Ord>(a: &[T], b: &[T]) -> bool {
    a.iter().all(|x| b.binary_search(x).is_ok())
}

fn summary(v: &[SeriesSamples]) -> (usize, usize) {
    (v.len(), v.iter().map(|s| s.samples.len()).sum())
}

fn block_dirs(dir: &Path, shards: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..shards {
        let d = tessera_tsdb::layout::shard_block_dir(dir, i);
        for e in std::fs::read_dir(d).unwrap() {
            out.push(e.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

#[test]
fn reads_across_head_and_blocks_equal_an_all_in_head_store() {
    let dir = tempfile::tempdir().unwrap();
    let reference = Db::in_memory(1);
    let db = Db::open(opts(dir.path(), 3, None)).unwrap();
    let mut cuts = 0;
    let mut compactions = 0;
    ingest(&[&db, &reference], 120, 200, 7, |_| {
        let r = db.maintain().unwrap();
        cuts += r.cuts.len();
        compactions += r.compactions.len();
    });
    assert!(cuts >= 3 * 15, "cuts: {cuts}");
    assert!(compactions > 0, "no compaction ran");
    let blocks: u64 = db.block_stats().iter().map(|b| b.blocks).sum();
    assert!(blocks >= 6, "blocks: {blocks}");
    // The head holds at most ~1.5 block durations (plus one scrape).
    for st in db.head_stats() {
        let (lo, hi) = (st.min_t.unwrap(), st.max_t.unwrap());
        assert!(hi - lo <= BLOCK_MS * 3 / 2 + 1000, "head spans {lo}..{hi}");
    }
    // Churned series left the head: far fewer than were ever created.
    let head_series: u64 = db.head_stats().iter().map(|s| s.series).sum();
    let all = reference.series(&[], i64::MIN, i64::MAX).len() as u64;
    assert!(head_series < all, "head {head_series} of {all}");
    assert_same(&db, &reference, 1);

    // A restart replays only what the blocks do not hold, and reads the same.
    drop(db);
    let db = Db::open(opts(dir.path(), 3, None)).unwrap();
    assert_same(&db, &reference, 2);
    // WAL segments were truncated: the checkpoint replaced them.
    for i in 0..3 {
        let wal = tessera_tsdb::layout::shard_wal_dir(dir.path(), i);
        assert!(
            !tessera_tsdb::wal::list_checkpoints(&wal)
                .unwrap()
                .is_empty(),
            "shard {i} has no checkpoint"
        );
    }
}

#[test]
fn a_sample_older_than_the_cut_is_refused_out_of_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(opts(dir.path(), 1, None)).unwrap();
    let ls = series_labels(0, 0);
    let other = series_labels(1, 0);
    for t in (0..30).map(|i| 1_000_000 + i * 1000) {
        db.append(&ls, &[Sample::new(t, 1.0)]).unwrap();
    }
    // 29 s of head: cuts of 10 s until it spans at most 15 s.
    let r = db.maintain().unwrap();
    assert_eq!(r.cuts.len(), 2);
    assert_eq!(r.cuts[0].end, r.cuts[1].start);
    let end = r.cuts[1].end;
    // A new series (no last sample to be older than) still may not write
    // into the range a block holds.
    let st = db.append(&other, &[Sample::new(end - 1, 2.0)]).unwrap();
    assert_eq!(st.out_of_bounds, 1);
    assert!(
        st.first_rejection.unwrap().contains("out of bounds"),
        "message names the reason"
    );
    let st = db.append(&other, &[Sample::new(end + 1, 2.0)]).unwrap();
    assert_eq!(st.samples_appended, 1);
    // The bound survives a restart.
    drop(db);
    let db = Db::open(opts(dir.path(), 1, None)).unwrap();
    let st = db
        .append(&series_labels(2, 0), &[Sample::new(end - 1, 2.0)])
        .unwrap();
    assert_eq!(st.out_of_bounds, 1);
    let got = db.select(&[Matcher::equal("pod", "pod-0-0")], i64::MIN, i64::MAX);
    assert_eq!(got[0].samples.len(), 30);
}

#[test]
fn retention_deletes_whole_blocks_past_it_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let retention = 4 * BLOCK_MS;
    let reference = Db::in_memory(1);
    let db = Db::open(opts(dir.path(), 2, Some(retention))).unwrap();
    let mut deleted = 0;
    let mut newest = 0;
    ingest(&[&db, &reference], 40, 150, 11, |t| {
        deleted += db.maintain().unwrap().blocks_deleted;
        newest = t;
    });
    assert!(deleted > 0, "nothing was deleted");
    let oldest_kept = db
        .block_stats()
        .iter()
        .filter_map(|b| b.min_t)
        .min()
        .unwrap();
    // Whole blocks: a block is deleted only when all of it is past the
    // cut-off, so everything from the cut-off on is kept; what is older
    // is kept only inside a block that straddles the cut-off.
    let cutoff = newest - retention;
    assert!(
        oldest_kept > 1_000_000 + BLOCK_MS,
        "old blocks were deleted"
    );
    assert!(
        oldest_kept > cutoff - 3 * BLOCK_MS,
        "{oldest_kept} is more than a block range before {cutoff}"
    );
    assert!(
        db.select(&[], i64::MIN, oldest_kept - 1).is_empty(),
        "data before the oldest block is gone"
    );
    let ms = [Matcher::equal("__name__", "gpu_util")];
    for from in [cutoff, oldest_kept] {
        assert_eq!(
            db.select(&ms, from, i64::MAX),
            reference.select(&ms, from, i64::MAX)
        );
    }
}

#[test]
fn compaction_merges_complete_windows_and_a_crash_before_deleting_inputs_is_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let reference = Db::in_memory(1);
    {
        let db = Db::open(opts(dir.path(), 1, None)).unwrap();
        ingest(&[&db, &reference], 30, 100, 3, |_| {
            db.maintain().unwrap();
        });
    }
    let dirs = block_dirs(dir.path(), 1);
    // Level-1 blocks of 10 s became 30 s (and 90 s) blocks: fewer than the
    // 8 cuts made, none spanning a window boundary of its range.
    assert!(dirs.len() < 8, "{dirs:?}");
    let blocks_dir = tessera_tsdb::layout::shard_block_dir(dir.path(), 0);
    let metas: Vec<_> = tessera_tsdb::block::list_blocks(&blocks_dir).unwrap();
    assert!(
        metas.iter().any(|(_, m)| m.compaction.level >= 2),
        "{metas:?}"
    );
    for (_, m) in &metas {
        let span = m.max_time - m.min_time;
        assert!(span < 3 * BLOCK_MS * 3, "{m:?}");
    }

    // Simulate a crash after a compaction wrote its output but before it
    // deleted its inputs: put an input back (a copy of a level-1 source).
    let compacted = metas.iter().find(|(_, m)| m.compaction.level >= 2).unwrap();
    let db = Db::open(opts(dir.path(), 1, None)).unwrap();
    let before = db.select(&[], i64::MIN, i64::MAX);
    drop(db);
    let src_name = &compacted.1.compaction.sources[0];
    let fake = blocks_dir.join(src_name);
    copy_block_as_source(&compacted.0, &fake, src_name);
    let db = Db::open(opts(dir.path(), 1, None)).unwrap();
    assert!(!fake.exists(), "the superseded input was deleted at open");
    assert_eq!(db.select(&[], i64::MIN, i64::MAX), before);
    assert_eq!(before, reference.select(&[], i64::MIN, i64::MAX));
}

/// Copies a block directory under a new name whose meta lists only
/// `source` (what a level-1 input of a compaction looks like).
fn copy_block_as_source(from: &Path, to: &Path, source: &str) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["index", "chunks"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(from.join("meta.json")).unwrap()).unwrap();
    meta["compaction"]["level"] = 1.into();
    meta["compaction"]["sources"] = serde_json::json!([source]);
    std::fs::write(to.join("meta.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
}
