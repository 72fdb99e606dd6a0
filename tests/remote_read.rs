//! Remote read (`POST /api/v1/read`) against real `tessera serve`
//! processes:
//!
//! - Debian's Prometheus 2.42 with `remote_read` (`read_recent: true`) to
//!   two Tesseras, each holding half of the series, answers PromQL exactly
//!   as one Tessera holding all of them;
//! - a hand-built `STREAMED_XOR_CHUNKS` request decodes under Prometheus'
//!   framing rules (CRC32C, one series per frame, sorted, split at
//!   `--storage.remote.read-max-bytes-in-frame`) into exactly the stored
//!   samples, and Tessera's chunks are byte-identical to the ones
//!   Prometheus 2.42 serves for the same samples (its SAMPLES answer and
//!   its answer to a query without matchers are the same too);
//! - malformed requests get 400 and the server keeps serving.
//!
//! The Prometheus parts are skipped with a visible `SKIPPED:` when the
//! package is missing (a failure in CI: see `common/input.rs`).

mod common;

use std::time::{Duration, Instant};

use common::Proc;
use common::prometheus::{assert_same_answers, promtool};
use common::*;
use prost::Message;
use tessera_ingest::proto::TimeSeries;
use tessera_ingest::remote_read::frame::{
    DEFAULT_CHUNKED_READ_LIMIT, FrameReader, STREAMED_CONTENT_TYPE,
};
use tessera_ingest::remote_read::proto::{
    ChunkedReadResponse, LabelMatcher, MATCH_EQ, MATCH_NRE, MATCH_RE, Query, ReadRequest,
    ReadResponse,
};
use tessera_tsdb::chunk::prom_xor;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn matcher(kind: i32, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: kind,
        name: name.into(),
        value: value.into(),
    }
}

fn query(mint: i64, maxt: i64, matchers: Vec<LabelMatcher>) -> Query {
    Query {
        start_timestamp_ms: mint,
        end_timestamp_ms: maxt,
        matchers,
        hints: None,
    }
}

fn streamed(queries: Vec<Query>) -> ReadRequest {
    ReadRequest {
        queries,
        // As newer clients ask: streamed first, samples as a fallback.
        accepted_response_types: vec![1, 0],
    }
}

/// The frames of a streamed answer, checked as Prometheus' client checks
/// them (size limit, CRC32C, message).
fn frames(r: &Reply) -> Vec<ChunkedReadResponse> {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.content_type.as_deref(), Some(STREAMED_CONTENT_TYPE));
    assert_eq!(r.content_encoding, None, "a streamed answer is not snappy");
    FrameReader::new(&r.body, DEFAULT_CHUNKED_READ_LIMIT)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("framing: {e}"))
}

fn samples_answer(r: &Reply) -> ReadResponse {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.content_type.as_deref(), Some("application/x-protobuf"));
    assert_eq!(r.content_encoding.as_deref(), Some("snappy"));
    let raw = snap::raw::Decoder::new().decompress_vec(&r.body).unwrap();
    ReadResponse::decode(raw.as_slice()).unwrap()
}

fn label_pairs(ts: &TimeSeries) -> Vec<(String, String)> {
    ts.labels
        .iter()
        .map(|l| {
            (
                String::from_utf8(l.name.clone()).unwrap(),
                String::from_utf8(l.value.clone()).unwrap(),
            )
        })
        .collect()
}

type Samples = Vec<(i64, f64)>;
type SampleBits = Vec<(i64, u64)>;

/// `(t, value bits)`, so NaN payloads compare exactly.
fn bits(samples: &[(i64, f64)]) -> SampleBits {
    samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

/// Starts a Prometheus with `config`; returns it and its URL once ready.
fn start_prometheus(tmp: &std::path::Path, config: &str, extra: &[&str]) -> (Proc, String) {
    let port = free_port();
    let prom = start_prometheus_with(config, tmp, port, extra);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !get(&format!("{url}/-/ready")).is_ok_and(|r| r.0 == 200) {
        assert!(Instant::now() < deadline, "prometheus not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    (prom, url)
}

/// 20 instances of a gauge and a counter, every 15 s for 40 minutes up to
/// `end_ms`, with the values that stress a codec: NaN, +Inf, 0, a
/// staleness marker, a counter reset.
fn dataset(end_ms: i64) -> Vec<TimeSeries> {
    let n = 160;
    let mut out = Vec::new();
    for i in 0..20 {
        let inst = format!("n{i}");
        let g: Vec<(i64, f64)> = (0..n)
            .map(|k| {
                let t = end_ms - (n - 1 - k) * 15_000;
                let v = match (i, k) {
                    (3, 50) => f64::NAN,
                    (4, 60) => f64::INFINITY,
                    (5, 70) => 0.0,
                    (6, 80) => tessera_tsdb::stale_nan(),
                    _ => ((i * 7 + k) % 13) as f64 * 1.25 + i as f64,
                };
                (t, v)
            })
            .collect();
        out.push(series(
            &[
                ("__name__", "rr_gauge"),
                ("job", "gpu"),
                ("instance", &inst),
            ],
            &g,
        ));
        let code = if i % 3 == 0 { "500" } else { "200" };
        let mut total = 0.0;
        let c: Vec<(i64, f64)> = (0..n)
            .map(|k| {
                let t = end_ms - (n - 1 - k) * 15_000;
                total = if i == 7 && k == 90 {
                    3.0
                } else {
                    total + (i + k % 5) as f64
                };
                (t, total)
            })
            .collect();
        out.push(series(
            &[
                ("__name__", "rr_requests_total"),
                ("job", "api"),
                ("instance", &inst),
                ("code", code),
            ],
            &c,
        ));
    }
    out
}

#[test]
fn prometheus_remote_read_over_two_tesseras_answers_like_one_holding_everything() {
    if !have("prometheus") || !have("promtool") {
        return;
    }
    let (a, b, all) = (
        Tessera::start(&[]),
        Tessera::start(&[]),
        Tessera::start(&[]),
    );
    // On a 15 s grid a minute in the past: query times below are off the
    // grid, so no sample sits exactly on a range boundary (Prometheus 2.42
    // includes one there, Tessera, like Prometheus 3, does not).
    let end_ms = (now_ms() / 15_000 - 4) * 15_000;
    let data = dataset(end_ms);
    let (even, odd): (Vec<_>, Vec<_>) = data
        .iter()
        .cloned()
        .enumerate()
        .partition(|(k, _)| (k / 2) % 2 == 0);
    let strip = |v: Vec<(usize, TimeSeries)>| v.into_iter().map(|(_, s)| s).collect();
    for (t, part) in [(&a, strip(even)), (&b, strip(odd)), (&all, data.clone())] {
        let (st, body) = t.write(&request(part));
        assert_eq!(st, 204, "{body}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "global:\n  scrape_interval: 15s\nremote_read:\n  - url: {}\n    read_recent: true\n  - url: {}\n    read_recent: true\n",
        a.url("/api/v1/read"),
        b.url("/api/v1/read")
    );
    let (_prom, prom_url) = start_prometheus(tmp.path(), &config, &[]);
    let all_url = all.url("");

    // Each Tessera holds only its half, and the halves are disjoint.
    let count = |t: &Tessera| {
        t.data("/api/v1/series?match[]={__name__=~\"rr_.*\"}&start=0")
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!((count(&a), count(&b), count(&all)), (20, 20, 40));

    let t = (end_ms / 1000 - 8).to_string();
    let mut compared = 0;
    for q in [
        "rr_gauge",
        "rr_gauge[5m]",
        "rr_requests_total{code=\"500\"}[3m]",
        "rate(rr_requests_total[5m])",
        "sum by (job) (rr_gauge)",
        "max by (code) (rr_requests_total)",
        "rr_gauge{instance=~\"n1.*\"}",
        "rr_requests_total{instance!~\"n1|n2\",code!=\"200\"}",
        "count(rr_gauge)",
        "{__name__=~\"rr_.+\",instance=\"n6\"}",
        "rr_gauge offset 20m",
        "absent(rr_nothing)",
    ] {
        let args = ["query", "instant", "-o", "json", "--time", &t];
        assert_same_answers(&all_url, &prom_url, q, &args);
        compared += 1;
    }
    let start = (end_ms / 1000 - 38 * 60 + 7).to_string();
    for q in [
        "rr_gauge",
        "rate(rr_requests_total[2m])",
        "sum(rr_gauge)",
        "max_over_time(rr_gauge[1m])",
    ] {
        let args = [
            "query", "range", "-o", "json", "--start", &start, "--end", &t, "--step", "15s",
        ];
        assert_same_answers(&all_url, &prom_url, q, &args);
        compared += 1;
    }
    // Not vacuous: the global server really returned both halves.
    let out = promtool(&[
        "query", "instant", "-o", "json", "--time", &t, &prom_url, "rr_gauge",
    ])
    .unwrap();
    let got = common::prometheus::result_map(&out);
    assert_eq!(got.len(), 20, "{out}");
    eprintln!("remote read: {compared} queries through Prometheus match one Tessera");
}

#[test]
fn streamed_xor_chunks_follow_prometheus_framing_and_hold_the_stored_samples() {
    let t = Tessera::start(&["--storage.remote.read-max-bytes-in-frame", "300"]);
    let end = (now_ms() / 1000 - 60) * 1000;
    // One long noisy series (several chunks, several frames), two short
    // ones, written out of label order.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let long: Vec<(i64, f64)> = (0..700)
        .map(|k| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = match k {
                10 => f64::NAN,
                11 => tessera_tsdb::stale_nan(),
                12 => f64::NEG_INFINITY,
                // (-0.0 cannot travel in remote write: proto3 omits a zero
                // double, so it arrives as 0.0; the codec's tests cover it.)
                13 => 0.0,
                _ => (x % 100_000) as f64 / 7.0,
            };
            (end - (700 - k) * 10_000 + (x % 5_000) as i64, v)
        })
        .collect();
    let short_b: Vec<(i64, f64)> = (0..5).map(|k| (end - k * 1000, k as f64)).rev().collect();
    let short_a: Vec<(i64, f64)> = vec![(end - 500, 42.0)];
    let written = request(vec![
        series(&[("__name__", "st_z"), ("job", "b")], &short_b),
        series(&[("__name__", "st_long"), ("job", "a")], &long),
        series(&[("__name__", "st_a"), ("job", "a")], &short_a),
    ]);
    let (st, body) = t.write(&written);
    assert_eq!(st, 204, "{body}");

    let all = query(0, i64::MAX, vec![matcher(MATCH_RE, "__name__", "st_.*")]);
    let only_b = query(0, i64::MAX, vec![matcher(MATCH_EQ, "job", "b")]);
    let fs = frames(&t.read(&streamed(vec![all, only_b])));

    // Frames of query 0 then query 1; one series per frame; within a query
    // series in label order, each in consecutive frames only.
    // (query index, metric name, samples) in the order frames brought them.
    let mut seen: Vec<(i64, String, Samples)> = Vec::new();
    let mut frames_of_long = 0;
    let mut last_index = 0;
    for f in &fs {
        assert_eq!(f.chunked_series.len(), 1, "one series per frame");
        assert!(
            f.query_index >= last_index,
            "queries stream in request order"
        );
        last_index = f.query_index;
        let s = &f.chunked_series[0];
        let name = String::from_utf8(s.labels[0].value.clone()).unwrap();
        let names: Vec<&[u8]> = s.labels.iter().map(|l| l.name.as_slice()).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "labels sorted");
        let size = f.encoded_len();
        if name == "st_long" {
            frames_of_long += 1;
            // A frame stops at the first chunk that reaches the budget.
            let last = s.chunks.last().unwrap().encoded_len() + 2;
            assert!(
                size - last < 300,
                "frame of {size} bytes passed the budget early"
            );
        }
        let mut samples = Vec::new();
        for c in &s.chunks {
            assert_eq!(c.r#type, 1, "XOR chunk");
            assert!(c.data.len() <= prom_xor::MAX_BYTES);
            let d = prom_xor::decode(&c.data).unwrap();
            assert!(d.len() <= prom_xor::MAX_SAMPLES);
            assert_eq!((d[0].t, d[d.len() - 1].t), (c.min_time_ms, c.max_time_ms));
            samples.extend(d.iter().map(|s| (s.t, s.v)));
        }
        match seen.last_mut() {
            Some((q, n, acc)) if *q == f.query_index && *n == name => acc.extend(samples),
            _ => {
                assert!(
                    !seen
                        .iter()
                        .any(|(q, n, _)| *q == f.query_index && *n == name),
                    "{name} came back after another series"
                );
                if let Some((q, n, _)) = seen.last() {
                    assert!(*q < f.query_index || *n < name, "series out of order");
                }
                seen.push((f.query_index, name, samples));
            }
        }
    }
    assert!(
        frames_of_long > 3,
        "the long series was split: {frames_of_long} frames"
    );
    let got: Vec<(i64, &str, SampleBits)> = seen
        .iter()
        .map(|(q, n, s)| (*q, n.as_str(), bits(s)))
        .collect();
    let want = vec![
        (0, "st_a", bits(&short_a)),
        (0, "st_long", bits(&long)),
        (0, "st_z", bits(&short_b)),
        (1, "st_z", bits(&short_b)),
    ];
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.0, g.1, g.2.len()), (w.0, w.1, w.2.len()));
        for (k, (a, b)) in g.2.iter().zip(&w.2).enumerate() {
            assert_eq!(a, b, "{} sample {k}", g.1);
        }
    }
    assert_eq!(got.len(), want.len());

    // A time range inside the data: only chunks of samples in range.
    let (lo, hi) = (long[100].0, long[400].0);
    let fs = frames(&t.read(&streamed(vec![query(
        lo,
        hi,
        vec![matcher(MATCH_EQ, "__name__", "st_long")],
    )])));
    let got: Vec<(i64, f64)> = fs
        .iter()
        .flat_map(|f| f.chunked_series[0].chunks.iter())
        .flat_map(|c| prom_xor::decode(&c.data).unwrap())
        .map(|s| (s.t, s.v))
        .collect();
    assert_eq!(bits(&got), bits(&long[100..=400]));

    // The same data as SAMPLES, for the size comparison in BENCHMARKS.md.
    let mut req = streamed(vec![query(
        0,
        i64::MAX,
        vec![matcher(MATCH_RE, "__name__", "st_.*")],
    )]);
    let stream_bytes = t.read(&req).body.len();
    req.accepted_response_types = vec![0];
    let r = t.read(&req);
    let ts = &samples_answer(&r).results[0].timeseries;
    assert_eq!(ts.len(), 3);
    assert_eq!(
        label_pairs(&ts[1])[0],
        ("__name__".into(), "st_long".into())
    );
    eprintln!(
        "706 samples: SAMPLES {} bytes (snappy), STREAMED_XOR_CHUNKS {} bytes",
        r.body.len(),
        stream_bytes
    );
}

#[test]
fn streamed_chunks_are_byte_identical_to_what_prometheus_serves() {
    if !have("prometheus") || !have("promtool") {
        return;
    }
    let t = Tessera::start(&[]);
    // Within one 2 h block range of Prometheus' head and at most 120
    // samples, so Prometheus holds them in one chunk, as Tessera cuts them.
    let now = now_ms();
    let t0 = (now - 120_000).max(now / 7_200_000 * 7_200_000);
    let mut t_k = t0;
    let samples: Vec<(i64, f64)> = (0..100)
        .map(|k| {
            t_k += 1000 + [0, 1, -1, 7, 300, -250, 0, 0][k % 8];
            let v = match k {
                5 => f64::INFINITY,
                6 => 0.0,
                7 => f64::NAN,
                _ => ((k * k) % 17) as f64 * 0.5 + if k > 50 { 1e9 } else { 0.0 },
            };
            (t_k, v)
        })
        .collect();
    let req = request(vec![
        series(&[("__name__", "golden"), ("k", "a")], &samples),
        series(&[("__name__", "golden"), ("k", "b")], &samples[..40]),
    ]);
    assert_eq!(t.write(&req).0, 204);
    let tmp = tempfile::tempdir().unwrap();
    let (_prom, prom_url) = start_prometheus(
        tmp.path(),
        "global:\n  scrape_interval: 15s\n",
        &["--web.enable-remote-write-receiver"],
    );
    let (st, body) = post_raw(
        &format!("{prom_url}/api/v1/write"),
        &snappy(&req.encode_to_vec()),
    );
    assert!(st / 100 == 2, "{st} {body}");
    let read = streamed(vec![query(
        0,
        i64::MAX,
        vec![matcher(MATCH_EQ, "__name__", "golden")],
    )]);
    let prom = post_protobuf(
        &format!("{prom_url}/api/v1/read"),
        &snappy(&read.encode_to_vec()),
        ("X-Prometheus-Remote-Read-Version", "0.1.0"),
    );
    let (want, got) = (frames(&prom), frames(&t.read(&read)));
    assert_eq!(want.len(), 2, "{want:?}");
    assert_eq!(got, want, "Tessera's frames differ from Prometheus'");

    // The SAMPLES answer too: same series, labels and sample bits.
    let mut as_samples = read.clone();
    as_samples.accepted_response_types = vec![0];
    let prom = post_protobuf(
        &format!("{prom_url}/api/v1/read"),
        &snappy(&as_samples.encode_to_vec()),
        ("X-Prometheus-Remote-Read-Version", "0.1.0"),
    );
    let flat = |r: &ReadResponse| -> Vec<(Vec<(String, String)>, SampleBits)> {
        r.results[0]
            .timeseries
            .iter()
            .map(|ts| {
                let s: Vec<(i64, f64)> =
                    ts.samples.iter().map(|s| (s.timestamp, s.value)).collect();
                (label_pairs(ts), bits(&s))
            })
            .collect()
    };
    let want = flat(&samples_answer(&prom));
    assert_eq!(want.len(), 2);
    assert_eq!(flat(&samples_answer(&t.read(&as_samples))), want);

    // A query without matchers: Prometheus answers it with no series.
    let none = ReadRequest {
        queries: vec![query(0, i64::MAX, vec![])],
        accepted_response_types: vec![],
    };
    let prom = post_protobuf(
        &format!("{prom_url}/api/v1/read"),
        &snappy(&none.encode_to_vec()),
        ("X-Prometheus-Remote-Read-Version", "0.1.0"),
    );
    let want = samples_answer(&prom);
    assert_eq!(want.results.len(), 1);
    assert_eq!(samples_answer(&t.read(&none)), want);
}

#[test]
fn malformed_read_requests_get_400_and_the_server_keeps_serving() {
    let t = Tessera::start(&["--storage.remote.read-sample-limit", "10"]);
    let base = (now_ms() / 1000 - 60) * 1000;
    let pts: Vec<(i64, f64)> = (0..20).map(|k| (base + k * 1000, k as f64)).collect();
    assert_eq!(
        t.write(&request(vec![series(&[("__name__", "m")], &pts)]))
            .0,
        204
    );
    let good = |types: Vec<i32>| ReadRequest {
        queries: vec![query(0, i64::MAX, vec![matcher(MATCH_EQ, "__name__", "m")])],
        accepted_response_types: types,
    };
    let still_serving = || {
        assert_eq!(get(&t.url("/-/healthy")).unwrap().0, 200);
        let fs = frames(&t.read(&good(vec![1])));
        assert_eq!(fs.len(), 1);
    };
    let valid = snappy(&good(vec![]).encode_to_vec());
    let mut bomb = vec![0xff, 0xff, 0xff, 0xff, 0x0f]; // declares 4 GiB - 1
    bomb.extend_from_slice(&[0u8; 16]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"this is not snappy at all".to_vec(), "snappy"),
        ("empty body", vec![], "snappy"),
        (
            "truncated snappy",
            valid[..valid.len() - 3].to_vec(),
            "snappy",
        ),
        ("4 GiB snappy header", bomb, "over the limit"),
        (
            "garbage protobuf",
            snappy(&[0x0a, 0xff, 0xff, 0x01, 0x02]),
            "protobuf",
        ),
        (
            "1 MiB of empty queries",
            snappy(&[0x0a, 0x00].repeat(1 << 19)),
            "implausibly many",
        ),
        (
            "unknown response type",
            snappy(&good(vec![5, 7]).encode_to_vec()),
            "response types",
        ),
        (
            "unknown matcher type",
            snappy(
                &ReadRequest {
                    queries: vec![query(0, 1, vec![matcher(9, "a", "b")])],
                    accepted_response_types: vec![],
                }
                .encode_to_vec(),
            ),
            "matcher type",
        ),
        (
            "invalid regex",
            snappy(
                &ReadRequest {
                    queries: vec![query(0, 1, vec![matcher(MATCH_NRE, "a", "(")])],
                    accepted_response_types: vec![],
                }
                .encode_to_vec(),
            ),
            "regex",
        ),
        (
            "sample limit",
            snappy(&good(vec![0]).encode_to_vec()),
            "exceeded sample limit (10)",
        ),
    ];
    for (what, body, needle) in cases {
        let r = t.read_raw(&body);
        let msg = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 400, "{what}: {msg}");
        assert!(msg.contains(needle), "{what}: {msg}");
        still_serving();
    }
    // The sample limit applies to SAMPLES only, as in Prometheus.
    let fs = frames(&t.read(&good(vec![1, 0])));
    let n: usize = fs[0].chunked_series[0]
        .chunks
        .iter()
        .map(|c| prom_xor::decode(&c.data).unwrap().len())
        .sum();
    assert_eq!(n, 20);
    // At the limit (10 samples), SAMPLES answers in full; one more is over.
    let mut small = good(vec![0]);
    small.queries[0].end_timestamp_ms = base + 9_000;
    let ans = samples_answer(&t.read(&small));
    assert_eq!(ans.results[0].timeseries[0].samples.len(), 10);
    small.queries[0].end_timestamp_ms = base + 10_000;
    assert_eq!(t.read(&small).status, 400);
    // Nothing left in flight, and the refusals were counted.
    let (_, metrics) = get(&t.url("/metrics")).unwrap();
    assert!(
        metrics.contains("tessera_remote_read_queries 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tessera_remote_read_requests_refused_total{reason=\"bad_request\"} 9"),
        "{metrics}"
    );
}

/// Not a check: the figures in BENCHMARKS.md ("Remote read"). A GPU-fleet
/// workload from the capacity harness (`TESSERA_RR_NODES` nodes, default
/// 23: 103,086 series; `TESSERA_RR_ROUNDS` rounds 15 s apart, default 20)
/// is written into one Tessera,
/// then every series is read back as SAMPLES and as STREAMED_XOR_CHUNKS;
/// prints wire bytes per sample and the time of each read.
#[test]
#[ignore = "a measurement; run it with the command in BENCHMARKS.md"]
fn measure_remote_read_wire_size_and_time() {
    use tessera_bench::client::Client;
    use tessera_bench::generator::{Fleet, FleetConfig};
    use tessera_bench::modes::{LoadArgs, Rate, TargetArgs, ingest};

    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (nodes, rounds) = (env("TESSERA_RR_NODES", 23), env("TESSERA_RR_ROUNDS", 20));
    let t = Tessera::start(&[]);
    let fleet = Fleet::new(FleetConfig {
        nodes,
        seed: 1,
        ..FleetConfig::default()
    });
    let load = LoadArgs {
        interval: Duration::from_secs(15),
        rounds: rounds as u64,
        rate: Rate::Max,
        concurrency: 2,
        batch_samples: 2000,
        max_duration: Duration::from_secs(600),
    };
    let target = TargetArgs {
        url: t.url(""),
        name: "tessera".into(),
        pid: None,
        data_dir: None,
        timeout: Duration::from_secs(60),
        json: true,
        auth: Default::default(),
    };
    let client = Client::new(Duration::from_secs(60), 3);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rep, _) = rt.block_on(ingest::run(fleet, &load, &target, &client, false));
    assert_eq!(rep.requests_failed + rep.requests_rejected, 0);
    let all = || query(0, i64::MAX, vec![matcher(MATCH_RE, "__name__", ".+")]);
    for (name, types) in [("SAMPLES", vec![0]), ("STREAMED_XOR_CHUNKS", vec![1])] {
        let req = ReadRequest {
            queries: vec![all()],
            accepted_response_types: types,
        };
        let started = Instant::now();
        let r = t.read(&req);
        let took = started.elapsed();
        assert_eq!(r.status, 200);
        let (series, samples) = if name == "SAMPLES" {
            let ts = &samples_answer(&r).results[0].timeseries;
            (ts.len(), ts.iter().map(|s| s.samples.len()).sum::<usize>())
        } else {
            let fs = frames(&r);
            let n: usize = fs
                .iter()
                .flat_map(|f| f.chunked_series[0].chunks.iter())
                .map(|c| prom_xor::decode(&c.data).unwrap().len())
                .sum();
            (fs.len(), n)
        };
        assert_eq!(samples as u64, rep.samples_acked);
        eprintln!(
            "{name}: {series} series/frames, {samples} samples, {} bytes = {:.2} bytes/sample, read in {took:?} (debug build, whole body received)",
            r.body.len(),
            r.body.len() as f64 / samples as f64
        );
    }
}
