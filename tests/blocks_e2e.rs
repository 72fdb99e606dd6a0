//! Through the HTTP API: a server that cut its data into blocks (10 s
//! blocks, compacted) answers PromQL and the series APIs exactly like one
//! that kept everything in its head, before and after a restart.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// 3 minutes of 1 s scrapes of a few counters and gauges, with gaps,
/// written in order as remote write would (one request per scrape).
fn load(t: &Tessera) {
    for i in 0..180i64 {
        let ts = 1_000_000 + i * 1000;
        let mut all = Vec::new();
        for s in 0..6 {
            if (i + s) % 17 == 0 {
                continue; // a missed scrape
            }
            let counter = (i * (s + 1)) as f64 * 1.5;
            let gauge = ((i * 7 + s * 13) % 50) as f64;
            let job = if s % 2 == 0 { "gpu" } else { "node" };
            all.push(series(
                &[("__name__", "c_total"), ("job", job), ("s", &s.to_string())],
                &[(ts, counter)],
            ));
            all.push(series(
                &[("__name__", "g"), ("job", job), ("s", &s.to_string())],
                &[(ts, gauge)],
            ));
        }
        let (code, body) = t.write(&request(all));
        assert_eq!(code, 204, "{body}");
    }
}

const QUERIES: [&str; 7] = [
    "c_total",
    "rate(c_total[20s])",
    "sum by (job) (rate(c_total[30s]))",
    "max_over_time(g[25s])",
    "avg(g) by (job)",
    "increase(c_total[1m])",
    "count_over_time(g[15s]) - 1",
];

fn answers(t: &Tessera) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for q in QUERIES {
        // 1 s steps across every 10 s block boundary.
        out.push(t.data(&format!(
            "/api/v1/query_range?query={q}&start=1000&end=1180&step=1"
        )));
        out.push(t.data(&format!("/api/v1/query?query={q}&time=1090")));
    }
    out.push(t.data("/api/v1/series?match[]={__name__=~\".+\"}&start=1000&end=1200"));
    out.push(t.data("/api/v1/label/s/values?start=1000&end=1200"));
    out
}

fn blocks_in(dir: &std::path::Path) -> usize {
    (0..2)
        .map(|i| {
            std::fs::read_dir(tessera_tsdb::layout::shard_block_dir(dir, i))
                .map_or(0, |d| d.count())
        })
        .sum()
}

#[test]
fn a_server_with_blocks_answers_like_one_without() {
    let tmp = tempfile::tempdir().unwrap();
    let (head_dir, block_dir) = (tmp.path().join("head"), tmp.path().join("blocks"));
    let common = ["--shards", "2", "--tsdb.maintenance-interval", "100ms"];
    let head_only = Tessera::start_in(&head_dir, &common);
    let blocky_args = [
        &common[..],
        &[
            "--block.duration",
            "10s",
            "--retention",
            "0",
            "--ingest.max-future",
            "1s",
        ],
    ]
    .concat();
    let blocky = Tessera::start_in(&block_dir, &blocky_args);
    load(&head_only);
    load(&blocky);
    // Wait for the cuts: the head keeps at most 15 s, so ~16 blocks' worth.
    let deadline = Instant::now() + Duration::from_secs(30);
    while blocks_in(&block_dir) < 4 {
        assert!(Instant::now() < deadline, "no blocks were cut");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(blocks_in(&head_dir), 0);
    let want = answers(&head_only);
    same(&answers(&blocky), &want);

    // Blocks and the checkpointed WAL come back after a restart.
    drop(blocky);
    let blocky = Tessera::start_in(&block_dir, &blocky_args);
    same(&answers(&blocky), &want);
    let metrics = get(&blocky.url("/metrics")).unwrap().1;
    assert!(
        metrics.contains("tessera_blocks{shard=\"0\"}"),
        "block metrics are exported"
    );
}

/// Equal answers; on a difference, names the query and the first series
/// that differs instead of printing every answer.
fn same(got: &[serde_json::Value], want: &[serde_json::Value]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g == w {
            continue;
        }
        let what = QUERIES.get(i / 2).copied().unwrap_or("series/values");
        let (gr, wr) = (&g["result"], &w["result"]);
        if let (Some(ga), Some(wa)) = (gr.as_array(), wr.as_array()) {
            for (a, b) in ga.iter().zip(wa) {
                assert_eq!(a, b, "answer {i} ({what}) differs");
            }
            panic!(
                "answer {i} ({what}): {} series, want {}",
                ga.len(),
                wa.len()
            );
        }
        panic!("answer {i} ({what}) differs:\n{g}\nwant\n{w}");
    }
}
