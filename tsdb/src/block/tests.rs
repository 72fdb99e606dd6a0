//! Block tests: round trips on seeded random data, matcher and time
//! semantics, a differential test against the head (`Db::in_memory`),
//! corruption and truncation of every file, crash leftovers, compaction
//! and retention. `measure.rs` prints the size figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::chunk::ChunkBuilder;
use crate::sample::STALE_NAN_BITS;
use crate::{Db, Labels, MatchOp, Matcher, ReadControl, ReadError, Sample, SeriesSamples};

/// xorshift64*: seeded, dependency-free randomness for reproducible cases.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

pub(super) type Data = BTreeMap<Labels, Vec<Sample>>;

const METRICS: [&str; 4] = [
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "node_cpu_seconds_total",
    "http_request_duration_seconds_bucket",
];

/// Random series: absent labels (`gpu`, `le`), every value shape the chunk
/// codec distinguishes, regular and irregular timestamps, empty series.
fn random_data(seed: u64, n_series: usize) -> Data {
    let mut rng = Rng::new(seed);
    let mut data = Data::new();
    for _ in 0..n_series {
        let metric = *rng.pick(&METRICS);
        let mut pairs = vec![
            ("__name__", metric.to_string()),
            ("instance", format!("node-{}", rng.below(6))),
            ("job", rng.pick(&["a", "b", "dcgm"]).to_string()),
        ];
        if rng.below(3) > 0 {
            pairs.push(("gpu", rng.below(8).to_string()));
        }
        if metric.ends_with("_bucket") {
            pairs.push(("le", rng.pick(&["0.1", "1", "+Inf"]).to_string()));
        }
        let labels = Labels::from_pairs(pairs);
        let n = match rng.below(5) {
            0 => 0,
            1 => 1 + rng.below(3) as usize,
            _ => rng.below(700) as usize,
        };
        let mut t = rng.below(200_000) as i64 - 50_000;
        let kind = rng.below(5);
        let mut acc = rng.below(1000) as f64;
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let v = match kind {
                0 => rng.below(101) as f64,
                1 => (250_000 + rng.below(60_000) as i64 - 30_000) as f64 / 1000.0,
                2 => {
                    acc += rng.below(1500) as f64 / 100.0;
                    acc
                }
                3 => f64::from_bits(rng.next()),
                _ if i % 50 == 49 => f64::from_bits(STALE_NAN_BITS),
                _ => rng.below(10) as f64 * 0.1,
            };
            samples.push(Sample::new(t, v));
            t += if rng.below(10) == 0 {
                1 + rng.below(100_000) as i64
            } else {
                15_000 + rng.below(11) as i64 - 5
            };
        }
        data.insert(labels, samples);
    }
    data
}

pub(super) fn write_block(dir: &Path, data: &Data, opts: BlockOptions) -> Block {
    let mut w = BlockWriter::create(dir, opts).unwrap();
    for (labels, samples) in data {
        w.add_series(labels, samples.iter().copied()).unwrap();
    }
    let meta = w.finish().unwrap();
    let b = Block::open(dir).unwrap();
    assert_eq!(b.meta(), &meta);
    b
}

/// Series and samples as comparable bits (NaN payloads included).
fn bits(v: &[SeriesSamples]) -> Vec<(String, Vec<(i64, u64)>)> {
    v.iter()
        .map(|s| {
            let samples = s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect();
            (s.labels.to_string(), samples)
        })
        .collect()
}

/// What a select over `data` must return.
fn expected(data: &Data, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesSamples> {
    data.iter()
        .filter(|(l, _)| {
            matchers
                .iter()
                .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
        })
        .map(|(l, s)| SeriesSamples {
            labels: l.clone(),
            samples: s
                .iter()
                .filter(|x| mint <= x.t && x.t <= maxt)
                .copied()
                .collect(),
        })
        .filter(|s| !s.samples.is_empty())
        .collect()
}

fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
    Matcher::new(op, name, value).unwrap()
}

#[test]
fn random_series_round_trip_bit_exactly_for_every_chunk_size() {
    for (seed, max_chunk_samples) in [(1, 1), (2, 7), (3, 120), (4, 480), (5, usize::MAX)] {
        let dir = tempfile::tempdir().unwrap();
        let data = random_data(seed, 150);
        let b = write_block(
            &dir.path().join("b"),
            &data,
            BlockOptions {
                max_chunk_samples,
                ..Default::default()
            },
        );
        let got = b.select(&[], i64::MIN, i64::MAX).unwrap();
        let want = expected(&data, &[], i64::MIN, i64::MAX);
        assert_eq!(bits(&got), bits(&want), "seed {seed}");
        let meta = b.meta();
        assert_eq!(meta.stats.series, want.len() as u64);
        assert_eq!(
            meta.stats.samples,
            want.iter().map(|s| s.samples.len() as u64).sum::<u64>()
        );
        let all_t = want.iter().flat_map(|s| s.samples.iter().map(|x| x.t));
        assert_eq!(meta.min_time, all_t.clone().min().unwrap());
        assert_eq!(meta.max_time, all_t.max().unwrap());
        assert_eq!(meta.compaction.level, 1);
        assert_eq!(meta.compaction.sources, vec!["b".to_string()]);
        b.verify().unwrap();
        assert!(b.size_bytes() > 0);
    }
}

fn table_data() -> Data {
    let mut d = Data::new();
    let s = |t: i64| vec![Sample::new(t, 1.0), Sample::new(t + 1000, 2.0)];
    for (pairs, t) in [
        (vec![("__name__", "up"), ("job", "a")], 0),
        (vec![("__name__", "up"), ("job", "b")], 5000),
        (
            vec![("__name__", "req_bucket"), ("job", "a"), ("le", "1")],
            0,
        ),
        (
            vec![("__name__", "req_bucket"), ("job", "a"), ("le", "+Inf")],
            10_000,
        ),
        (vec![("__name__", "DCGM_FI_DEV_GPU_TEMP"), ("gpu", "0")], 0),
        (
            vec![("__name__", "DCGM_FI_DEV_POWER_USAGE"), ("gpu", "1")],
            20_000,
        ),
    ] {
        d.insert(Labels::from_pairs(pairs), s(t));
    }
    d
}

#[test]
fn selects_by_every_matcher_type_with_absent_labels_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let data = table_data();
    let b = write_block(&dir.path().join("b"), &data, BlockOptions::default());
    let names = |ms: &[Matcher]| -> Vec<String> {
        let got = b.select(ms, i64::MIN, i64::MAX).unwrap();
        assert_eq!(bits(&got), bits(&expected(&data, ms, i64::MIN, i64::MAX)));
        got.iter().map(|s| s.labels.to_string()).collect()
    };
    let f = |ms: &[Matcher], want: usize| assert_eq!(names(ms).len(), want, "{ms:?}");
    f(&[m(MatchOp::NotEqual, "le", "")], 2); // Grafana's {le!=""}
    f(&[m(MatchOp::Equal, "le", "")], 4);
    f(&[m(MatchOp::Equal, "job", "a")], 3);
    f(&[m(MatchOp::Equal, "job", "zz")], 0);
    f(&[m(MatchOp::NotEqual, "job", "a")], 3);
    f(&[m(MatchOp::RegexMatch, "__name__", "DCGM_.*")], 2);
    f(
        &[m(
            MatchOp::RegexMatch,
            "__name__",
            "DCGM_FI_DEV_GPU_TEMP|up",
        )],
        3,
    );
    f(&[m(MatchOp::RegexMatch, "__name__", ".*_bucket")], 2);
    f(&[m(MatchOp::RegexNoMatch, "job", "a|b")], 2);
    f(&[m(MatchOp::RegexMatch, "missing", ".+")], 0);
    f(&[m(MatchOp::RegexMatch, "missing", ".*")], 6);
    f(
        &[
            m(MatchOp::Equal, "job", "a"),
            m(MatchOp::NotEqual, "le", ""),
        ],
        2,
    );
    f(
        &[m(MatchOp::Equal, "job", "a"), m(MatchOp::Equal, "job", "b")],
        0,
    );
    f(&[], 6);
    // Output is sorted by labels.
    let all = names(&[]);
    let mut sorted = b.series(&[], i64::MIN, i64::MAX).unwrap();
    sorted.sort();
    assert_eq!(
        all,
        sorted.iter().map(|l| l.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn reads_stop_on_series_and_sample_budgets_and_the_stop_signal() {
    let dir = tempfile::tempdir().unwrap();
    let b = write_block(
        &dir.path().join("b"),
        &table_data(),
        BlockOptions::default(),
    );
    let all = (i64::MIN, i64::MAX);
    let f = |ctl: &ReadControl<'_>| match b.select_with(&[], all.0, all.1, ctl) {
        Err(BlockError::Read(e)) => Some(e),
        Ok(_) => None,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        f(&ReadControl::new(5, 0, &|| false)),
        Some(ReadError::TooManySeries { limit: 5 })
    );
    assert_eq!(f(&ReadControl::new(6, 0, &|| false)), None);
    assert_eq!(
        f(&ReadControl::new(0, 11, &|| false)),
        Some(ReadError::TooManySamples { limit: 11 })
    );
    assert_eq!(f(&ReadControl::new(0, 12, &|| false)), None);
    assert_eq!(
        f(&ReadControl::new(0, 0, &|| true)),
        Some(ReadError::Stopped)
    );
    let stop = ReadControl::new(0, 0, &|| true);
    let le = [m(MatchOp::NotEqual, "le", "")];
    assert!(matches!(
        b.series_with(&le, all.0, all.1, 0, &stop),
        Err(BlockError::Read(_))
    ));
    assert!(matches!(
        b.label_names_with(&le, all.0, all.1, &stop),
        Err(BlockError::Read(_))
    ));
    assert!(matches!(
        b.label_values_with("le", &le, all.0, all.1, &stop),
        Err(BlockError::Read(_))
    ));
    // A limit builds only that many label sets and still reports the total.
    let (some, matched) = b
        .series_with(&[], all.0, all.1, 2, &ReadControl::new(2, 0, &|| false))
        .unwrap();
    assert_eq!((some.len(), matched), (2, 6));
}

#[test]
fn time_range_filters_samples_inclusively_and_omits_empty_series() {
    let dir = tempfile::tempdir().unwrap();
    let data = table_data();
    let b = write_block(&dir.path().join("b"), &data, BlockOptions::default());
    let got = b.select(&[], 1000, 5000).unwrap();
    let got: Vec<(String, Vec<i64>)> = got
        .iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.samples.iter().map(|x| x.t).collect(),
            )
        })
        .collect();
    // Series starting at 0 keep their sample at 1000; `up{job="b"}` its one at 5000.
    assert_eq!(got.len(), 4);
    assert!(
        got.iter()
            .all(|(_, ts)| ts == &vec![1000] || ts == &vec![5000]),
        "{got:?}"
    );
    assert!(b.select(&[], 21_001, i64::MAX).unwrap().is_empty());
    assert!(b.select(&[], i64::MIN, -1).unwrap().is_empty());
    assert_eq!(b.select(&[], 21_000, 21_000).unwrap().len(), 1);
    // Listings use series bounds: only series spanning 10_500 remain.
    assert_eq!(b.series(&[], 10_500, 10_500).unwrap().len(), 1);
}

#[test]
fn label_names_and_values_follow_matchers_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let b = write_block(
        &dir.path().join("b"),
        &table_data(),
        BlockOptions::default(),
    );
    let all = b.label_names(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(all, vec!["__name__", "gpu", "job", "le"]);
    let le = [m(MatchOp::NotEqual, "le", "")];
    assert_eq!(
        b.label_names(&le, i64::MIN, i64::MAX).unwrap(),
        vec!["__name__", "job", "le"]
    );
    assert_eq!(
        b.label_names(&[], 20_000, 30_000).unwrap(),
        vec!["__name__", "gpu"]
    );
    assert_eq!(
        b.label_values("le", &[], i64::MIN, i64::MAX).unwrap(),
        vec!["+Inf", "1"]
    );
    assert_eq!(b.label_values("le", &[], 0, 1000).unwrap(), vec!["1"]);
    let dcgm = [m(MatchOp::RegexMatch, "__name__", "DCGM.*")];
    assert_eq!(
        b.label_values("gpu", &dcgm, i64::MIN, i64::MAX).unwrap(),
        vec!["0", "1"]
    );
    assert!(
        b.label_values("nope", &[], i64::MIN, i64::MAX)
            .unwrap()
            .is_empty()
    );
    assert!(
        b.label_values("job", &dcgm, i64::MIN, i64::MAX)
            .unwrap()
            .is_empty()
    );
}

/// A random matcher over the random data's labels, including absent ones.
fn random_matcher(rng: &mut Rng) -> Matcher {
    let name = *rng.pick(&["__name__", "job", "instance", "gpu", "le", "nope"]);
    let op = *rng.pick(&[
        MatchOp::Equal,
        MatchOp::NotEqual,
        MatchOp::RegexMatch,
        MatchOp::RegexNoMatch,
    ]);
    let value = match op {
        MatchOp::Equal | MatchOp::NotEqual => rng
            .pick(&[
                "",
                "a",
                "b",
                "node-1",
                "3",
                "+Inf",
                "DCGM_FI_DEV_GPU_TEMP",
                "zz",
            ])
            .to_string(),
        _ => rng
            .pick(&[
                ".*",
                ".+",
                "a|b",
                "DCGM_.*",
                "node-[0-2]",
                "1|\\+Inf",
                "(?:0|1)?",
                "node_.*_total",
                "",
            ])
            .to_string(),
    };
    m(op, name, &value)
}

#[test]
fn block_and_head_agree_on_random_matchers_and_ranges() {
    for seed in 10..14 {
        let data = random_data(seed, 200);
        let db = Db::in_memory(3);
        let st = db
            .append_batch(data.iter().map(|(l, s)| (l, s.as_slice())))
            .unwrap();
        assert_eq!(st.rejected(), 0);
        let dir = tempfile::tempdir().unwrap();
        let opts = BlockOptions {
            max_chunk_samples: [50, 480][seed as usize % 2],
            share_timestamps: seed % 3 != 0,
        };
        let b = write_block(&dir.path().join("b"), &data, opts);
        let mut rng = Rng::new(seed * 7);
        for _ in 0..150 {
            let ms: Vec<Matcher> = (0..rng.below(3))
                .map(|_| random_matcher(&mut rng))
                .collect();
            let (mint, maxt) = match rng.below(4) {
                0 => (i64::MIN, i64::MAX),
                _ => {
                    let a = rng.below(12_000_000) as i64 - 100_000;
                    (a, a + rng.below(6_000_000) as i64)
                }
            };
            let ctx = format!("seed {seed} {ms:?} [{mint}, {maxt}]");
            assert_eq!(
                bits(&b.select(&ms, mint, maxt).unwrap()),
                bits(&db.select(&ms, mint, maxt)),
                "{ctx}"
            );
            assert_eq!(
                b.series(&ms, mint, maxt).unwrap(),
                db.series(&ms, mint, maxt),
                "{ctx}"
            );
            assert_eq!(
                b.label_names(&ms, mint, maxt).unwrap(),
                db.label_names(&ms, mint, maxt),
                "{ctx}"
            );
            for name in ["gpu", "le", "__name__"] {
                assert_eq!(
                    b.label_values(name, &ms, mint, maxt).unwrap(),
                    db.label_values(name, &ms, mint, maxt),
                    "{ctx} {name}"
                );
            }
        }
    }
}

/// A small block for byte-level damage, and its pristine files.
fn small_block(dir: &Path) -> (PathBuf, Vec<u8>, Vec<u8>) {
    // Short series keep the files small enough to damage every byte.
    let mut data = random_data(99, 12);
    data.values_mut().for_each(|s| s.truncate(40));
    let p = dir.join("b");
    write_block(
        &p,
        &data,
        BlockOptions {
            max_chunk_samples: 16,
            ..Default::default()
        },
    );
    let index = std::fs::read(p.join(INDEX_FILE)).unwrap();
    let chunks = std::fs::read(p.join(CHUNKS_FILE)).unwrap();
    (p, index, chunks)
}

/// Opens and reads everything; `Err` on any detected damage. Must not panic.
fn read_all(p: &Path) -> Result<usize, BlockError> {
    let b = Block::open(p)?;
    b.verify()?;
    let n = b.select(&[], i64::MIN, i64::MAX)?.len();
    b.label_names(&[m(MatchOp::NotEqual, "le", "")], 0, 1 << 40)?;
    b.label_values(
        "gpu",
        &[m(MatchOp::RegexMatch, "job", "a|dcgm")],
        0,
        1 << 40,
    )?;
    Ok(n)
}

#[test]
fn every_flipped_index_byte_is_reported_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (p, index, _) = small_block(dir.path());
    let path = p.join(INDEX_FILE);
    for i in 0..index.len() {
        if (5..8).contains(&i) {
            continue; // reserved header bytes, ignored by readers
        }
        let mut bad = index.clone();
        bad[i] ^= 0x41;
        std::fs::write(&path, &bad).unwrap();
        let err = match Block::open(&p) {
            Ok(_) => panic!("flip at index byte {i} went unnoticed"),
            Err(e) => e,
        };
        assert!(matches!(err, BlockError::Corrupt { .. }), "byte {i}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains("index") && msg.contains("byte offset"),
            "{msg}"
        );
    }
}

#[test]
fn every_flipped_chunk_byte_fails_verify_and_select_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _, chunks) = small_block(dir.path());
    let path = p.join(CHUNKS_FILE);
    for i in (0..chunks.len()).filter(|i| !(5..8).contains(i)) {
        let mut bad = chunks.clone();
        bad[i] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let err = read_all(&p).expect_err(&format!("flip at chunks byte {i} went unnoticed"));
        let msg = err.to_string();
        assert!(
            msg.contains("chunks") && msg.contains("byte offset"),
            "byte {i}: {msg}"
        );
        if i >= 8 {
            let b = Block::open(&p).unwrap();
            assert!(
                b.select(&[], i64::MIN, i64::MAX).is_err(),
                "select read a damaged chunk at {i}"
            );
        }
    }
}

/// Rewrites the CRCs of an index after its bytes were changed, so the
/// damage gets past the checksums to the structural checks.
fn reseal_index(b: &mut [u8]) {
    let toc = b.len() - 88;
    for i in 0..4 {
        let at = toc + 20 * i;
        let off = u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
        let len = u64::from_le_bytes(b[at + 8..at + 16].try_into().unwrap()) as usize;
        let crc = crc32c::crc32c(&b[off..off + len]);
        b[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32c::crc32c(&b[toc..toc + 80]);
    b[toc + 80..toc + 84].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn structural_garbage_behind_valid_checksums_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let (p, index, _) = small_block(dir.path());
    let path = p.join(INDEX_FILE);
    let sections_end = index.len() - 88;
    // FUZZ_SEED=<n> picks another seed, for longer runs by hand.
    let mut rng = Rng::new(
        std::env::var("FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(77),
    );
    let (mut ok, mut err) = (0, 0);
    for _ in 0..3000 {
        let mut bad = index.clone();
        for _ in 0..1 + rng.below(3) {
            let at = 8 + rng.below((sections_end - 8) as u64) as usize;
            bad[at] = match rng.below(3) {
                0 => bad[at] ^ (1 << rng.below(8)),
                1 => 0xff,
                _ => 0,
            };
        }
        reseal_index(&mut bad);
        std::fs::write(&path, &bad).unwrap();
        // Either outcome is fine; a panic or a hang is not.
        match read_all(&p) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    assert!(
        err > 0,
        "{ok} reads of damaged indexes succeeded and none failed"
    );
}

#[test]
fn every_truncation_of_each_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (p, index, chunks) = small_block(dir.path());
    for (name, bytes) in [(INDEX_FILE, &index), (CHUNKS_FILE, &chunks)] {
        for len in 0..bytes.len() {
            std::fs::write(p.join(name), &bytes[..len]).unwrap();
            let err = read_all(&p).expect_err(&format!("{name} truncated to {len} bytes was read"));
            assert!(err.to_string().contains(name), "{err}");
        }
        std::fs::write(p.join(name), bytes).unwrap();
    }
    assert!(read_all(&p).unwrap() > 0);
    for bad in ["", "{", "{\"version\": 2}"] {
        std::fs::write(p.join(META_FILE), bad).unwrap();
        assert!(
            matches!(Block::open(&p), Err(BlockError::BadMeta { .. })),
            "{bad:?}"
        );
    }
    std::fs::remove_file(p.join(INDEX_FILE)).unwrap();
    assert!(Block::open(&p).is_err());
}

#[test]
fn a_crash_mid_write_leaves_only_a_tmp_dir_that_cleanup_removes() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_data(5, 20);
    let target = dir.path().join("b1");
    let mut w = BlockWriter::create(&target, BlockOptions::default()).unwrap();
    for (l, s) in data.iter().take(10) {
        w.add_series(l, s.iter().copied()).unwrap();
    }
    // A crash: no finish, no destructor.
    std::mem::forget(w);
    assert!(!target.exists());
    assert!(dir.path().join("b1.tmp").is_dir());
    assert!(list_blocks(dir.path()).unwrap().is_empty());
    assert!(Block::open(&target).is_err());
    write_block(&dir.path().join("b2"), &data, BlockOptions::default());
    assert_eq!(cleanup_tmp(dir.path()).unwrap(), 1);
    assert!(!dir.path().join("b1.tmp").exists());
    assert_eq!(list_blocks(dir.path()).unwrap().len(), 1);
    // A writer started over a leftover replaces it; dropping one unfinished cleans up.
    std::mem::forget(BlockWriter::create(&target, BlockOptions::default()).unwrap());
    let w = BlockWriter::create(&target, BlockOptions::default()).unwrap();
    drop(w);
    assert!(!dir.path().join("b1.tmp").exists() && !target.exists());
}

#[test]
fn writer_rejects_unordered_series_and_samples_and_empty_or_existing_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let a = Labels::from_pairs([("__name__", "a")]);
    let b = Labels::from_pairs([("__name__", "b")]);
    let s = |ts: &[i64]| ts.iter().map(|&t| Sample::new(t, 1.0)).collect::<Vec<_>>();
    let mut w = BlockWriter::create(dir.path().join("x"), BlockOptions::default()).unwrap();
    w.add_series(&b, s(&[1, 2])).unwrap();
    let e = w.add_series(&a, s(&[1])).unwrap_err();
    assert!(matches!(e, BlockError::SeriesOutOfOrder { .. }), "{e}");
    assert!(w.add_series(&b, s(&[3])).is_err(), "same labels twice");
    let c = Labels::from_pairs([("__name__", "c")]);
    let e = w.add_series(&c, s(&[5, 5])).unwrap_err();
    assert!(
        matches!(
            e,
            BlockError::SampleOutOfOrder {
                t: 5,
                prev_t: 5,
                ..
            }
        ),
        "{e}"
    );
    // The failed series is not in the block, and the writer goes on.
    let d = Labels::from_pairs([("__name__", "d")]);
    w.add_series(&d, s(&[8, 9])).unwrap();
    let meta = w.finish().unwrap();
    let st = meta.stats;
    assert_eq!(
        (st.series, st.samples, meta.min_time, meta.max_time),
        (2, 4, 1, 9)
    );
    let blk = Block::open(dir.path().join("x")).unwrap();
    let names = blk
        .label_values("__name__", &[], i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(names, vec!["b", "d"]);
    blk.verify().unwrap();
    let w = BlockWriter::create(dir.path().join("y"), BlockOptions::default()).unwrap();
    assert!(matches!(w.finish(), Err(BlockError::Empty { .. })));
    let mut w = BlockWriter::create(dir.path().join("z"), BlockOptions::default()).unwrap();
    w.add_series(&a, s(&[])).unwrap(); // no samples: left out
    w.add_series(&b, s(&[7])).unwrap();
    assert_eq!(w.finish().unwrap().stats.series, 1);
    assert!(matches!(
        BlockWriter::create(dir.path().join("z"), BlockOptions::default()),
        Err(BlockError::AlreadyExists { .. })
    ));
}

#[test]
fn sealed_head_chunks_are_copied_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let labels = Labels::from_pairs([("__name__", "up")]);
    let mut b = ChunkBuilder::new();
    let mut chunks = Vec::new();
    let mut want = Vec::new();
    for i in 0..500i64 {
        if b.len() == 120 {
            chunks.push(b.seal());
        }
        b.append(i * 15_000, (i % 7) as f64);
        want.push((i * 15_000, ((i % 7) as f64).to_bits()));
    }
    chunks.push(b.seal());
    let mut w = BlockWriter::create(dir.path().join("b"), BlockOptions::default()).unwrap();
    w.add_series_chunks(&labels, chunks.iter().map(|c| c.as_ref()))
        .unwrap();
    let meta = w.finish().unwrap();
    assert_eq!((meta.stats.chunks, meta.stats.samples), (5, 500));
    let blk = Block::open(dir.path().join("b")).unwrap();
    let got = blk.select(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(bits(&got)[0].1, want);
    let sc = blk
        .select_chunks(&[], 15_000 * 130, 15_000 * 130, &ReadControl::unlimited())
        .unwrap();
    assert_eq!(sc[0].chunks.len(), 1);
    let c = sc[0].chunks[0];
    assert_eq!(
        (c.min_t(), c.max_t(), c.len()),
        (chunks[1].min_t(), chunks[1].max_t(), 120)
    );
    // Chunk 0 is stored whole; 1..3 have the same timestamp deltas and
    // share its column; the 20-sample tail has its own.
    let all = &blk
        .select_chunks(&[], i64::MIN, i64::MAX, &ReadControl::unlimited())
        .unwrap()[0]
        .chunks;
    assert_eq!(
        all[0].as_chunk_ref().unwrap().as_bytes(),
        chunks[0].as_bytes()
    );
    assert!(all[1..4].iter().all(|c| c.as_chunk_ref().is_none()));
    assert!(all[4].as_chunk_ref().is_some());
    let ts_col = chunks[0].as_bytes().len() - crate::chunk::HEADER_LEN - all[0].column_lens().1;
    let total: usize = chunks.iter().map(|c| c.as_bytes().len() + 4).sum();
    let file = std::fs::metadata(dir.path().join("b").join(CHUNKS_FILE))
        .unwrap()
        .len() as usize;
    assert_eq!(file, 8 + total - 3 * ts_col);
}

#[test]
fn series_of_one_scrape_store_their_timestamp_column_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Data::new();
    let mut rng = Rng::new(8);
    let ts: Vec<i64> = (0..480)
        .map(|i| i * 15_000 + rng.below(11) as i64 - 5)
        .collect();
    for i in 0..50 {
        let l = Labels::from_pairs([("__name__", format!("m{i:02}")), ("instance", "n1".into())]);
        data.insert(
            l,
            ts.iter()
                .map(|&t| Sample::new(t, (i * t % 97) as f64))
                .collect(),
        );
    }
    let size = |share: bool, name: &str| {
        let opts = BlockOptions {
            share_timestamps: share,
            ..Default::default()
        };
        let b = write_block(&dir.path().join(name), &data, opts);
        let got = b.select(&[], i64::MIN, i64::MAX).unwrap();
        assert_eq!(bits(&got), bits(&expected(&data, &[], i64::MIN, i64::MAX)));
        b.verify().unwrap();
        std::fs::metadata(dir.path().join(name).join(CHUNKS_FILE))
            .unwrap()
            .len()
    };
    let (shared, own) = (size(true, "shared"), size(false, "own"));
    let ts_col = (own - shared) / 49;
    // ±5 ms of jitter costs most deltas-of-deltas 6 or 11 bits: ~450 bytes a column.
    assert!(
        ts_col > 300,
        "saved {ts_col} bytes a series: {own} vs {shared}"
    );
}

#[test]
fn compaction_of_overlapping_and_adjacent_blocks_is_the_deduplicated_union() {
    let dir = tempfile::tempdir().unwrap();
    let full = random_data(21, 120);
    // A: first half of every series' samples, B: second half (adjacent),
    // C: a random third of all samples with different values (overlapping
    // both; A and B come first, so their values win).
    let (mut a, mut b, mut c) = (Data::new(), Data::new(), Data::new());
    let mut rng = Rng::new(3);
    for (l, s) in &full {
        let mid = s.len() / 2;
        a.insert(l.clone(), s[..mid].to_vec());
        b.insert(l.clone(), s[mid..].to_vec());
        let third: Vec<Sample> = s
            .iter()
            .filter(|_| rng.below(3) == 0)
            .map(|x| Sample::new(x.t, -1.0))
            .collect();
        c.insert(l.clone(), third);
    }
    // A series only C has, whose samples are all kept.
    let only_c = Labels::from_pairs([("__name__", "only_in_c")]);
    c.insert(
        only_c.clone(),
        vec![Sample::new(1, 1.0), Sample::new(2, 2.0)],
    );
    let blocks: Vec<Block> = [("a", &a), ("b", &b), ("c", &c)]
        .iter()
        .map(|(n, d)| {
            write_block(
                &dir.path().join(n),
                d,
                BlockOptions {
                    max_chunk_samples: 100,
                    ..Default::default()
                },
            )
        })
        .collect();
    let refs: Vec<&Block> = blocks.iter().collect();
    let meta = compact(&refs, dir.path().join("ab c"), BlockOptions::default()).unwrap();
    let out = Block::open(dir.path().join("ab c")).unwrap();
    let mut want = full.clone();
    want.insert(
        only_c,
        c[&Labels::from_pairs([("__name__", "only_in_c")])].clone(),
    );
    let want = expected(&want, &[], i64::MIN, i64::MAX);
    assert_eq!(
        bits(&out.select(&[], i64::MIN, i64::MAX).unwrap()),
        bits(&want)
    );
    assert_eq!(meta.compaction.level, 2);
    assert_eq!(meta.compaction.sources, vec!["a", "b", "c"]);
    assert_eq!(
        meta.stats.samples,
        want.iter().map(|s| s.samples.len() as u64).sum::<u64>()
    );
    // Compacting again raises the level and keeps the sources; with the
    // options for compaction outputs (longer chunks) the data is the same.
    let again = compact(
        &[&out, &blocks[0]],
        dir.path().join("d"),
        BlockOptions::compacted(),
    )
    .unwrap();
    assert_eq!(again.compaction.level, 3);
    assert_eq!(again.compaction.sources, vec!["a", "b", "c"]);
    assert_eq!(
        (again.stats.series, again.stats.samples),
        (meta.stats.series, meta.stats.samples)
    );
    assert!(again.stats.chunks <= meta.stats.chunks);
    let d = Block::open(dir.path().join("d")).unwrap();
    assert_eq!(
        bits(&d.select(&[], i64::MIN, i64::MAX).unwrap()),
        bits(&want)
    );
    d.verify().unwrap();
}

#[test]
fn constant_series_cost_a_few_bytes_a_chunk() {
    // Half the series of a node-exporter are constant (info metrics,
    // limits, idle CPU modes); one that ends in a staleness marker keeps
    // its fitted column, with the marker as an exception.
    let dir = tempfile::tempdir().unwrap();
    let mut data = Data::new();
    for i in 0..100 {
        let l = Labels::from_pairs([("__name__", format!("c{i:03}")), ("instance", "n1".into())]);
        let mut s: Vec<Sample> = (0..480)
            .map(|t| Sample::new(t * 15_000, f64::from(i) * 0.5))
            .collect();
        if i % 2 == 1 {
            s[479].v = f64::from_bits(STALE_NAN_BITS);
        }
        data.insert(l, s);
    }
    let b = write_block(&dir.path().join("b"), &data, BlockOptions::default());
    assert_eq!(
        bits(&b.select(&[], i64::MIN, i64::MAX).unwrap()),
        bits(&expected(&data, &[], i64::MIN, i64::MAX))
    );
    let chunks = std::fs::metadata(dir.path().join("b").join(CHUNKS_FILE))
        .unwrap()
        .len();
    // Per chunk: 28-byte header, 4-byte CRC, a value column of 6 bytes
    // (16 with the marker); one shared timestamp column.
    assert!(chunks < 100 * (32 + 12) + 100, "{chunks} bytes");
}

#[test]
fn head_plus_blocks_merged_equal_one_db_holding_everything() {
    // The data split by time into two blocks and a "head" (a Db), read
    // through all three and merged, must equal one Db holding it all.
    let data = random_data(31, 150);
    let (mut old, mut mid, mut new) = (Data::new(), Data::new(), Data::new());
    for (l, s) in &data {
        let (a, rest): (Vec<Sample>, Vec<Sample>) = s.iter().partition(|x| x.t < 2_000_000);
        let (b, c): (Vec<Sample>, Vec<Sample>) = rest.iter().partition(|x| x.t < 5_000_000);
        old.insert(l.clone(), a);
        mid.insert(l.clone(), b);
        new.insert(l.clone(), c);
    }
    let dir = tempfile::tempdir().unwrap();
    let b1 = write_block(&dir.path().join("1"), &old, BlockOptions::default());
    let b2 = write_block(&dir.path().join("2"), &mid, BlockOptions::default());
    let head = Db::in_memory(2);
    head.append_batch(new.iter().map(|(l, s)| (l, s.as_slice())))
        .unwrap();
    let all = Db::in_memory(2);
    all.append_batch(data.iter().map(|(l, s)| (l, s.as_slice())))
        .unwrap();
    let mut rng = Rng::new(5);
    for _ in 0..100 {
        let ms: Vec<Matcher> = (0..rng.below(3))
            .map(|_| random_matcher(&mut rng))
            .collect();
        let mint = rng.below(8_000_000) as i64 - 100_000;
        let maxt = mint + rng.below(8_000_000) as i64;
        let merged = merge_series(vec![
            head.select(&ms, mint, maxt),
            b2.select(&ms, mint, maxt).unwrap(),
            b1.select(&ms, mint, maxt).unwrap(),
        ]);
        assert_eq!(
            bits(&merged),
            bits(&all.select(&ms, mint, maxt)),
            "{ms:?} [{mint}, {maxt}]"
        );
    }
    // Overlapping sources: the first one's value wins a shared timestamp.
    let l = Labels::from_pairs([("__name__", "x")]);
    let ss = |v: &[(i64, f64)]| SeriesSamples {
        labels: l.clone(),
        samples: v.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
    };
    let got = merge_series(vec![
        vec![ss(&[(1, 1.0), (3, 1.0)])],
        vec![ss(&[(2, 2.0), (3, 2.0), (4, 2.0)])],
    ]);
    assert_eq!(got, vec![ss(&[(1, 1.0), (2, 2.0), (3, 1.0), (4, 2.0)])]);
}

#[test]
fn retention_lists_only_blocks_entirely_older_than_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let l = Labels::from_pairs([("__name__", "up")]);
    for (i, (lo, hi)) in [(0, 999), (1000, 1999), (2000, 2999)]
        .into_iter()
        .enumerate()
    {
        let p = dir.path().join(block_dir_name(lo, hi, i as u32));
        let mut w = BlockWriter::create(&p, BlockOptions::default()).unwrap();
        w.add_series(&l, [Sample::new(lo, 0.0), Sample::new(hi, 0.0)])
            .unwrap();
        w.finish().unwrap();
    }
    std::fs::create_dir(dir.path().join("junk.tmp")).unwrap();
    let f = |now: i64, keep: i64| {
        list_blocks(dir.path())
            .unwrap()
            .iter()
            .filter(|(_, m)| past_retention(m, now, keep))
            .count()
    };
    assert_eq!(f(3000, 3000), 0);
    assert_eq!(
        f(3000, 2001),
        0,
        "cutoff 999: a max_time of 999 is not older"
    );
    assert_eq!(f(3000, 2000), 1);
    assert_eq!(f(3000, 1000), 2);
    assert_eq!(f(10_000, 0), 3);
    assert_eq!(f(i64::MIN, i64::MAX), 0, "saturates instead of overflowing");
    let listed = list_blocks(dir.path()).unwrap();
    assert_eq!(
        listed.iter().map(|(_, m)| m.min_time).collect::<Vec<_>>(),
        vec![0, 1000, 2000]
    );
    assert!(block_dir_name(-5, 0, 0) < block_dir_name(3, 4, 0));
}
