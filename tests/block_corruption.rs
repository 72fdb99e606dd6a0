//! Damaged blocks: `tessera tsdb inspect --verify` names the file and
//! offset; `tessera tsdb repair` rewrites a block without its damaged
//! chunks (everything else still answers, bit for bit) and moves a block
//! with a damaged index to `<data>/damaged/`, after which the server, which
//! refused to start naming the index and the repair command, starts.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tessera_tsdb::block::{Block, CHUNKS_FILE, INDEX_FILE, block_dirs};
use tessera_tsdb::layout::shard_block_dir;
use tessera_tsdb::{BlockPolicy, Db, DbOptions, Labels, MatchOp, Matcher, Sample, SeriesSamples};

const SHARDS: usize = 2;
const SERIES: usize = 16;
/// Samples every 100 ms for 10 s: with 1 s blocks, many blocks per shard.
const STEPS: i64 = 100;
const BLOCK_MS: i64 = 1000;
/// `serve` flags matching [`opts`].
const SERVE_FLAGS: &[&str] = &[
    "--block.duration",
    "1s",
    "--retention",
    "30s",
    "--ingest.max-future",
    "100ms",
];

/// Stdout and stderr of a run, also echoed (seen with `--nocapture`).
fn text(o: &Output) -> String {
    let s = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("---- tessera exited with {}:\n{s}", o.status);
    s
}

fn opts(dir: &Path, read_only: bool) -> DbOptions {
    DbOptions {
        data_dir: Some(dir.to_path_buf()),
        read_only,
        blocks: BlockPolicy {
            block_duration_ms: BLOCK_MS,
            // Caps compaction at 3 s windows: blocks of levels 1 and 2.
            retention_ms: Some(30_000),
        },
        ..DbOptions::in_memory(SHARDS)
    }
}

fn labels(s: usize) -> Labels {
    Labels::from_pairs([("__name__", "bc".to_string()), ("s", s.to_string())])
}

/// A data dir whose older ranges are blocks and the newest in the WAL.
fn make_data_dir(dir: &Path) {
    let db = Db::open(opts(dir, false)).unwrap();
    for s in 0..SERIES {
        let samples: Vec<Sample> = (0..STEPS)
            .map(|i| Sample::new(i * 100, (i * i) as f64 / 8.0 + s as f64))
            .collect();
        db.append(&labels(s), &samples).unwrap();
    }
    let r = db.maintain().unwrap();
    assert!(!r.cuts.is_empty(), "maintain cut no blocks");
    drop(db);
    for i in 0..SHARDS {
        let n = block_dirs(&shard_block_dir(dir, i)).unwrap().len();
        assert!(n > 1, "shard {i} has {n} blocks");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x20;
    std::fs::write(path, b).unwrap();
}

/// Every series with every sample, as comparable bits.
fn everything(dir: &Path) -> Vec<(String, Vec<(i64, u64)>)> {
    let db = Db::open(opts(dir, true)).unwrap();
    let m = Matcher::new(MatchOp::Equal, "__name__", "bc").unwrap();
    bits(&db.select(&[m], i64::MIN, i64::MAX))
}

fn bits(v: &[SeriesSamples]) -> Vec<(String, Vec<(i64, u64)>)> {
    v.iter()
        .map(|s| {
            let samples = s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect();
            (s.labels.to_string(), samples)
        })
        .collect()
}

/// The number after `<path> at byte offset ` in `out`.
fn offset_after(out: &str, path: &Path) -> u64 {
    let key = format!("{} at byte offset ", path.display());
    let at = out
        .find(&key)
        .unwrap_or_else(|| panic!("no {key:?} in:\n{out}"))
        + key.len();
    let digits: String = out[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

#[test]
fn a_damaged_chunk_is_named_by_verify_and_repair_keeps_every_other_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, copy) = (tmp.path().join("data"), tmp.path().join("copy"));
    make_data_dir(&data);
    let reference = everything(&data);
    let total: usize = reference.iter().map(|s| s.1.len()).sum();
    assert_eq!(total, SERIES * STEPS as usize, "blocks + head hold it all");
    copy_dir(&data, &copy);

    let out = tessera_cli(&["tsdb", "inspect", "--verify"], &copy);
    let clean = text(&out);
    assert!(out.status.success(), "{clean}");
    assert!(
        clean.contains("verify: OK") && !clean.contains("DAMAGED"),
        "{clean}"
    );
    assert!(clean.contains("total blocks: "), "{clean}");
    assert!(
        clean.contains("1970-01-01T00:00:0"),
        "times as RFC 3339: {clean}"
    );

    // The last value byte of the last chunk of a middle block of shard 0:
    // the chunk of the block's last series (in label order).
    let blocks = block_dirs(&shard_block_dir(&copy, 0)).unwrap();
    let victim = blocks[blocks.len() / 2].clone();
    let (lost_labels, lo, hi) = {
        let b = Block::open(&victim).unwrap();
        let sc = b
            .series_chunks(b.series_count() - 1, i64::MIN, i64::MAX)
            .unwrap();
        let last = sc.chunks.last().unwrap();
        (sc.labels.clone(), last.min_t(), last.max_t())
    };
    let chunks = victim.join(CHUNKS_FILE);
    let len = std::fs::metadata(&chunks).unwrap().len() as usize;
    flip(&chunks, len - 5);

    let out = tessera_cli(&["tsdb", "inspect", "--verify"], &copy);
    let report = text(&out);
    assert!(
        !out.status.success(),
        "verify must fail on damage: {report}"
    );
    let off = offset_after(&report, &chunks);
    assert!(off >= 8 && off < (len - 5) as u64, "offset {off}: {report}");
    assert!(
        report.contains("verify: DAMAGED") && report.contains("repair"),
        "{report}"
    );

    let out = tessera_cli(&["tsdb", "repair"], &copy);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert_eq!(offset_after(&report, &chunks), off, "{report}");
    assert!(
        report.contains(&format!("dropped chunk of {lost_labels}"))
            && report.contains(&format!("({lo}..{hi} ms)")),
        "{report}"
    );
    assert!(
        report.contains("1 rewritten") && report.contains("repair finished"),
        "{report}"
    );
    let name = victim.file_name().unwrap();
    assert!(
        copy.join("damaged/shard-000")
            .join(name)
            .join(CHUNKS_FILE)
            .is_file()
    );

    let out = tessera_cli(&["tsdb", "inspect", "--verify"], &copy);
    let after = text(&out);
    assert!(
        out.status.success() && !after.contains("DAMAGED"),
        "{after}"
    );

    // Every sample but the dropped chunk's, bit for bit.
    let want: Vec<_> = reference
        .into_iter()
        .map(|(l, mut s)| {
            if l == lost_labels.to_string() {
                s.retain(|&(t, _)| t < lo || t > hi);
            }
            (l, s)
        })
        .collect();
    let got = everything(&copy);
    let kept: usize = got.iter().map(|s| s.1.len()).sum();
    assert!(kept < total, "nothing was dropped");
    assert_eq!(got, want);
}

/// Runs `tessera serve` and waits for it to exit (it must refuse to start).
fn serve_must_fail(dir: &Path) -> String {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(SERVE_FLAGS)
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tessera");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            eprintln!("---- tessera serve exited with {status}:\n{err}");
            assert!(!status.success(), "serve started on a damaged index: {err}");
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve neither failed nor exited within 30 s on a damaged index");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_damaged_index_stops_the_server_until_repair_moves_the_block_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("data");
    make_data_dir(&dir);
    let blocks = block_dirs(&shard_block_dir(&dir, 1)).unwrap();
    let victim = blocks[0].clone();
    let index = victim.join(INDEX_FILE);
    let len = std::fs::metadata(&index).unwrap().len() as usize;
    flip(&index, len / 2);

    let err = serve_must_fail(&dir);
    assert!(
        err.contains(&index.display().to_string()),
        "error must name the index: {err}"
    );
    assert!(
        err.contains("byte offset"),
        "error must name the offset: {err}"
    );
    assert!(
        err.contains("tessera tsdb repair"),
        "error must name the repair command: {err}"
    );

    let out = tessera_cli(&["tsdb", "repair"], &dir);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    let moved = dir
        .join("damaged/shard-001")
        .join(victim.file_name().unwrap());
    assert!(report.contains(&index.display().to_string()), "{report}");
    assert!(report.contains(&moved.display().to_string()), "{report}");
    assert!(report.contains("1 moved to"), "{report}");
    assert!(!victim.exists());
    assert!(
        moved.join(INDEX_FILE).is_file(),
        "the block is kept, not deleted"
    );

    let t = Tessera::start_in(&dir, SERVE_FLAGS);
    let d = t.data("/api/v1/query?query=count(bc)&time=9.9");
    assert_eq!(d["result"][0]["value"][1], "16", "{d}");

    // Never under a running server.
    let out = tessera_cli(&["tsdb", "repair"], &dir);
    let report = text(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains("is in use by another process") && report.contains("stop the server"),
        "{report}"
    );
}
