//! The backup and restore procedures of `docs/operations.md`, run as
//! written: the test extracts the shell blocks that follow a
//! `<!-- tested: NAME -->` marker in the guide and runs them with `sh -e`,
//! `$DATA`/`$BACKUP` set and the built `tessera` first on `PATH`.
//!
//! - a stopped server's data dir copied with the guide's cold copy and
//!   restored holds every acknowledged sample;
//! - the guide's hot copy, taken while a client writes and segments are
//!   being cut, restores (after the guide's repair + inspect) a gap-free
//!   prefix of every series that includes everything acknowledged before
//!   the copy began; `tessera tsdb analyze` reads the copy.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use common::*;

const SERIES: usize = 40;

/// The shell block after `<!-- tested: name -->` in docs/operations.md.
fn guide_block(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md");
    let text = std::fs::read_to_string(&path).expect("docs/operations.md");
    let marker = format!("<!-- tested: {name} -->");
    let after = &text[text
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} in the guide"))..];
    let start = after
        .find("```sh\n")
        .expect("a ```sh block after the marker")
        + 6;
    let len = after[start..].find("```").expect("closed block");
    after[start..start + len].to_string()
}

/// Runs a guide block; returns its stdout.
fn run_block(name: &str, data: &Path, backup: &Path) -> String {
    let script = guide_block(name);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tessera")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .args(["-e", "-c", &script])
        .env("DATA", data)
        .env("BACKUP", backup)
        .env("PATH", path)
        .output()
        .expect("sh");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "block {name} failed:\n{script}\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout.into_owned()
}

fn step(i: i64) -> tessera_ingest::proto::WriteRequest {
    request(
        (0..SERIES)
            .map(|s| {
                series(
                    &[("__name__", "ops_guide"), ("s", &s.to_string())],
                    &[(i * 1000, i as f64)],
                )
            })
            .collect(),
    )
}

/// The steps stored for series `s` (raw samples of the last day).
fn stored(t: &Tessera, s: usize, last: i64) -> Vec<i64> {
    let d = t.data(&format!(
        "/api/v1/query?query=ops_guide{{s=\"{s}\"}}[1d]&time={last}"
    ));
    let Some(series) = d["result"].as_array().and_then(|a| a.first()) else {
        return Vec::new();
    };
    series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap() as i64)
        .collect()
}

/// SIGTERM (the graceful stop the guide asks for) and wait, at most 30 s.
fn stop(t: &mut Tessera) {
    let ok = Command::new("kill")
        .args(["-TERM", &t.child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.child.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "tessera did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn cold_copy_of_a_stopped_data_dir_restores_every_acknowledged_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, backup, restored) = (
        tmp.path().join("data"),
        tmp.path().join("backup"),
        tmp.path().join("restored"),
    );
    let mut t = Tessera::start_in(&data, &["--shards", "2", "--wal.segment-size", "65536"]);
    for i in 1..=300 {
        assert_eq!(t.write(&step(i)).0, 204);
    }
    stop(&mut t);
    run_block("cold-backup", &data, &backup);
    std::fs::remove_dir_all(&data).unwrap();
    // Restore into a new path, as onto a new volume.
    run_block("restore", &restored, &backup);
    let t = Tessera::start_in(&restored, &["--shards", "2"]);
    for s in 0..SERIES {
        assert_eq!(
            stored(&t, s, 301),
            (1..=300).collect::<Vec<_>>(),
            "series {s}"
        );
    }
}

#[test]
fn hot_copy_during_writes_restores_a_gap_free_prefix_with_everything_acknowledged_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, backup, restored) = (
        tmp.path().join("data"),
        tmp.path().join("backup"),
        tmp.path().join("restored"),
    );
    // Small segments: several are cut while the copy runs.
    let t = Tessera::start_in(&data, &["--shards", "2", "--wal.segment-size", "16384"]);
    let acked = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let url = t.url("/api/v1/write");
    let writer = {
        let (acked, done) = (acked.clone(), done.clone());
        std::thread::spawn(move || {
            let mut i = 1;
            while !done.load(Ordering::Relaxed) && i < 200_000 {
                let (status, body) =
                    post_raw(&url, &snappy(&prost::Message::encode_to_vec(&step(i))));
                assert_eq!(status, 204, "{body}");
                acked.store(i, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.load(Ordering::SeqCst) < 500 {
        assert!(Instant::now() < deadline, "writer too slow");
        std::thread::sleep(Duration::from_millis(10));
    }
    let acked_before = acked.load(Ordering::SeqCst);
    run_block("hot-backup", &data, &backup);
    let acked_after_copy = acked.load(Ordering::SeqCst);
    done.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    drop(t);
    eprintln!("hot copy taken while steps {acked_before}..{acked_after_copy} were acknowledged");

    let report = run_block("restore", &restored, &backup);
    assert!(report.contains("repair finished"), "{report}");
    assert!(report.contains("data dir"), "inspect output: {report}");
    let analyze = run_block("analyze-copy", &restored, &backup);
    assert!(
        analyze.contains("ops_guide"),
        "analyze names the metric: {analyze}"
    );

    let t = Tessera::start_in(&restored, &["--shards", "2"]);
    for s in 0..SERIES {
        let got = stored(&t, s, acked_after_copy + 10);
        let n = got.len() as i64;
        assert_eq!(
            got,
            (1..=n).collect::<Vec<_>>(),
            "series {s}: not a gap-free prefix"
        );
        assert!(
            n >= acked_before,
            "series {s}: {n} steps restored, {acked_before} were acknowledged before the copy"
        );
    }
}
