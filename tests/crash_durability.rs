//! Durability: a `tessera serve` killed with SIGKILL at arbitrary moments
//! while a client writes must, after restart, hold every sample it
//! acknowledged, and nothing the client never sent.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;

const SERIES: usize = 8;

/// Small WAL segments and a 20 s block duration checked every 50 ms: the
/// steps are 1 s apart, so within each cycle the head is cut into blocks,
/// the WAL checkpointed and truncated and blocks compacted, and the kills
/// land in the middle of that too.
const FLAGS: [&str; 12] = [
    "--shards",
    "4",
    "--wal.segment-size",
    "65536",
    "--block.duration",
    "20s",
    "--tsdb.maintenance-interval",
    "50ms",
    "--retention",
    "0",
    "--ingest.max-future",
    "1s",
];

/// One request: the same step `i` for every test series.
fn step(i: i64) -> tessera_ingest::proto::WriteRequest {
    let ts = (0..SERIES)
        .map(|s| {
            series(
                &[("__name__", "crash"), ("s", &s.to_string())],
                &[(i * 1000, i as f64)],
            )
        })
        .collect();
    request(ts)
}

/// The timestamps (as steps) Tessera holds for series `s`.
fn stored(t: &Tessera, s: usize, last: i64) -> Vec<i64> {
    let d = t.data(&format!(
        "/api/v1/query?query=crash{{s=\"{s}\"}}[1d]&time={last}"
    ));
    let Some(series) = d["result"].as_array().and_then(|a| a.first()) else {
        return Vec::new();
    };
    series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let v: f64 = p[1].as_str().unwrap().parse().unwrap();
            let ts = p[0].as_f64().unwrap();
            assert_eq!(ts, v, "sample value must equal its step");
            v as i64
        })
        .collect()
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut acked: BTreeSet<i64> = BTreeSet::new();
    let mut next: i64 = 1;
    let mut seed: u64 = 0x5eed_1234;
    for cycle in 0..4 {
        let mut t = Tessera::start_in(&dir, &FLAGS);
        // Everything acknowledged before must have survived every crash.
        let last = next + 1;
        for s in 0..SERIES {
            let got: BTreeSet<i64> = stored(&t, s, last).into_iter().collect();
            let missing: Vec<_> = acked.difference(&got).take(10).collect();
            assert!(
                missing.is_empty(),
                "cycle {cycle}, series {s}: acknowledged steps lost: {missing:?}"
            );
            assert!(
                got.iter().all(|i| *i < next),
                "cycle {cycle}: a step that was never sent is stored"
            );
        }
        // Write from a thread; kill the server after a seeded random delay.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(100 + (seed >> 33) % 400);
        let stop = Arc::new(AtomicBool::new(false));
        let url = t.url("/api/v1/write");
        let stop2 = stop.clone();
        let start = next;
        let writer = std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut i = start;
            while !stop2.load(Ordering::Relaxed) {
                let body = snappy(&prost::Message::encode_to_vec(&step(i)));
                match try_post(&url, &body) {
                    Some(204) => acked.push(i),
                    Some(other) => panic!("unexpected status {other} for step {i}"),
                    None => break, // connection refused or reset: the kill
                }
                i += 1;
            }
            (acked, i)
        });
        std::thread::sleep(delay);
        t.child.kill().expect("SIGKILL tessera");
        let _ = t.child.wait();
        stop.store(true, Ordering::Relaxed);
        let (new_acked, sent_upto) = writer.join().unwrap();
        assert!(
            !new_acked.is_empty(),
            "cycle {cycle}: nothing was acknowledged before the kill"
        );
        acked.extend(new_acked);
        next = sent_upto + 1;
        drop(t);
    }
    let t = Tessera::start_in(&dir, &FLAGS);
    let blocks: usize = (0..4)
        .map(|i| {
            std::fs::read_dir(tessera_tsdb::layout::shard_block_dir(&dir, i))
                .map_or(0, |d| d.count())
        })
        .sum();
    assert!(blocks > 0, "no block was cut: the test did not cover cuts");
    for s in 0..SERIES {
        let got: BTreeSet<i64> = stored(&t, s, next + 1).into_iter().collect();
        assert!(
            acked.is_subset(&got),
            "series {s}: acknowledged samples lost in the last crash"
        );
    }
    eprintln!(
        "crash loop: {} acknowledged steps x {SERIES} series survived 4 SIGKILLs ({blocks} blocks)",
        acked.len()
    );
}

/// POST that returns `None` on a transport error (the server was killed).
fn try_post(url: &str, body: &[u8]) -> Option<u16> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    agent
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .send(body)
        .ok()
        .map(|r| r.status().as_u16())
}
