//! Remote write 2.0 against a real `tessera serve`, with payloads built here
//! (no 2.0 sender is installable on this machine: Debian's Prometheus 2.42
//! predates it), and the written-count headers on 1.0 and 2.0 answers.
//! After every refused request the server must still be healthy, have kept
//! the valid rest, and still accept a good write.

mod common;

use common::*;
use prost::Message;
use tessera_ingest::proto_v2 as pb;

const V1: &str = "application/x-protobuf";

/// A 2.0 request under construction: a symbols table starting with "".
struct Rw2 {
    req: pb::Request,
}

impl Rw2 {
    fn new() -> Self {
        Rw2 {
            req: pb::Request {
                symbols: vec![Vec::new()],
                timeseries: vec![],
            },
        }
    }

    fn sym(&mut self, s: &str) -> u32 {
        let s = s.as_bytes();
        if let Some(i) = self.req.symbols.iter().position(|x| x == s) {
            return i as u32;
        }
        self.req.symbols.push(s.to_vec());
        (self.req.symbols.len() - 1) as u32
    }

    /// Adds a series; returns it for further editing.
    fn series(&mut self, labels: &[(&str, &str)], samples: &[(i64, f64)]) -> &mut pb::TimeSeries {
        let labels_refs = labels
            .iter()
            .flat_map(|(n, v)| [self.sym(n), self.sym(v)])
            .collect();
        self.req.timeseries.push(pb::TimeSeries {
            labels_refs,
            samples: samples
                .iter()
                .map(|&(timestamp, value)| pb::Sample {
                    value,
                    timestamp,
                    start_timestamp: 0,
                })
                .collect(),
            ..Default::default()
        });
        self.req.timeseries.last_mut().unwrap()
    }

    fn body(&self) -> Vec<u8> {
        snappy(&self.req.encode_to_vec())
    }
}

fn write_v2(t: &Tessera, req: &Rw2) -> WriteReply {
    post_write(&t.url("/api/v1/write"), &req.body(), RW2_CONTENT_TYPE)
}

/// The value of `query` at `t_ms`, or None when it has no result.
fn value_at(t: &Tessera, query: &str, t_ms: i64) -> Option<f64> {
    let d = t.data(&format!(
        "/api/v1/query?query={query}&time={}",
        t_ms as f64 / 1000.0
    ));
    let r = d["result"].as_array()?.first()?;
    r["value"][1].as_str()?.parse().ok()
}

fn assert_still_serving(t: &Tessera, ts: i64) {
    assert_eq!(get(&t.url("/-/healthy")).unwrap().0, 200);
    let mut ok = Rw2::new();
    ok.series(&[("__name__", "canary"), ("job", "t")], &[(ts, 1.0)]);
    let r = write_v2(t, &ok);
    assert_eq!(
        r.status, 204,
        "server stopped accepting good writes: {}",
        r.body
    );
}

#[test]
fn a_v2_write_is_stored_and_served_back_with_its_metadata_and_counts() {
    let t = Tessera::start(&[]);
    let now = now_ms() - 60_000;
    let mut w = Rw2::new();
    let s = w.series(
        &[
            ("__name__", "DCGM_FI_DEV_GPU_UTIL"),
            ("Hostname", "n1"),
            ("UUID", "GPU-1"),
            ("gpu", "0"),
        ],
        &[(now, 42.0), (now + 15_000, 43.0)],
    );
    // A 2.54–3.7 sender's created timestamp: accepted, not stored.
    s.created_timestamp = now - 3_600_000;
    let (help, unit) = (w.sym("GPU utilization (in %)."), w.sym("percent"));
    w.req.timeseries[0].metadata = Some(pb::Metadata {
        r#type: 2,
        help_ref: help,
        unit_ref: unit,
    });
    let s = w.series(
        // Unsorted labels are fine, as in 1.0: the receiver sorts them.
        &[("job", "node"), ("__name__", "node_cpu_seconds_total")],
        &[(now, 7.5)],
    );
    // A 3.8+ sender's start timestamp: accepted, not stored.
    s.samples[0].start_timestamp = now - 3_600_000;

    let r = write_v2(&t, &w);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.written, [Some(3), Some(0), Some(0)]);

    assert_eq!(
        value_at(&t, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"}", now + 15_000),
        Some(43.0)
    );
    assert_eq!(value_at(&t, "node_cpu_seconds_total", now), Some(7.5));
    let listed = t.data("/api/v1/series?match[]=DCGM_FI_DEV_GPU_UTIL&start=0");
    assert_eq!(
        listed,
        serde_json::json!([{"Hostname": "n1", "UUID": "GPU-1", "__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "0"}])
    );
    let md = t.data("/api/v1/metadata?metric=DCGM_FI_DEV_GPU_UTIL");
    assert_eq!(
        md["DCGM_FI_DEV_GPU_UTIL"][0],
        serde_json::json!({"type": "gauge", "help": "GPU utilization (in %).", "unit": "percent"})
    );

    // 1.0 answers carry the same headers, on 204 and on 400.
    let v1 = request(vec![series(
        &[("__name__", "v1_metric")],
        &[(now, 1.0), (now + 1000, 2.0)],
    )]);
    let r = post_write(&t.url("/api/v1/write"), &snappy(&v1.encode_to_vec()), V1);
    assert_eq!(
        (r.status, r.written),
        (204, [Some(2), Some(0), Some(0)]),
        "{}",
        r.body
    );
    let mut v1 = request(vec![
        series(&[("__name__", "v1_metric")], &[(now + 2000, 3.0)]),
        series(&[("job", "no_name")], &[(now, 1.0)]),
    ]);
    v1.timeseries[0]
        .histograms
        .push(tessera_ingest::proto::Histogram { timestamp: now });
    let r = post_write(
        &t.url("/api/v1/write"),
        &snappy(&v1.encode_to_vec()),
        "application/x-protobuf;proto=prometheus.WriteRequest",
    );
    assert_eq!(
        (r.status, r.written),
        (400, [Some(1), Some(0), Some(0)]),
        "{}",
        r.body
    );
    assert!(r.body.contains("no __name__"), "{}", r.body);
    assert!(r.body.contains("native histogram"), "{}", r.body);
}

#[test]
fn bad_v2_requests_get_the_right_status_and_the_valid_rest_is_kept() {
    let t = Tessera::start(&["--ingest.max-request-bytes", "100000"]);
    let url = t.url("/api/v1/write");
    let now = now_ms() - 60_000;
    let mut ts = now;
    let mut next = || {
        ts += 1000;
        ts
    };

    // Per series: (what, the bad series' refs, a phrase of its reason).
    for (what, bad_refs, reason) in [
        (
            "ref past the symbols table",
            vec![1, 2, 3, 999],
            "reference 999 is past the end",
        ),
        ("odd refs count", vec![1, 2, 3], "odd number"),
        ("huge ref", vec![u32::MAX, 2], "4294967295"),
    ] {
        let t0 = next();
        let mut w = Rw2::new();
        w.series(&[("__name__", "good"), ("case", what)], &[(t0, 1.0)]);
        w.series(&[("__name__", "bad")], &[(t0, 2.0)]).labels_refs = bad_refs;
        w.series(&[("__name__", "good2"), ("case", what)], &[(t0, 3.0)]);
        let r = write_v2(&t, &w);
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert!(r.body.contains(reason), "{what}: {}", r.body);
        assert!(
            r.body.contains("series 1 of the request"),
            "{what}: {}",
            r.body
        );
        assert_eq!(r.written, [Some(2), Some(0), Some(0)], "{what}");
        assert_eq!(
            value_at(&t, &format!("good2{{case=\"{what}\"}}"), t0),
            Some(3.0),
            "{what}"
        );
        assert_still_serving(&t, next());
    }

    // Samples and histograms in one series (the spec says one or the
    // other): the histograms are refused, the samples kept.
    let t0 = next();
    let mut w = Rw2::new();
    let s = w.series(&[("__name__", "mixed")], &[(t0, 5.0)]);
    s.histograms.push(pb::Histogram {
        timestamp: t0,
        start_timestamp: 0,
    });
    let r = write_v2(&t, &w);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("rejected 1 native histogram samples"),
        "{}",
        r.body
    );
    assert_eq!(r.written, [Some(1), Some(0), Some(0)]);
    assert_eq!(value_at(&t, "mixed", t0), Some(5.0));
    assert_still_serving(&t, next());

    // Whole-request refusals: nothing written, and the headers say so.
    let mut not_empty_first = Rw2::new();
    not_empty_first.req.symbols[0] = b"__name__".to_vec();
    not_empty_first.series(&[("__name__", "x")], &[(next(), 1.0)]);
    let huge_table = pb::Request {
        symbols: vec![Vec::new(); 45_000],
        timeseries: vec![],
    };
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        (
            "symbol 0 not empty",
            not_empty_first.body(),
            RW2_CONTENT_TYPE,
            400,
            "must start with the empty string",
        ),
        (
            "oversized symbols table",
            snappy(&huge_table.encode_to_vec()),
            RW2_CONTENT_TYPE,
            413,
            "implausibly many",
        ),
        (
            "garbage",
            snappy(b"\xff\xff\xff not protobuf"),
            RW2_CONTENT_TYPE,
            400,
            "protobuf",
        ),
        (
            "unknown proto",
            Rw2::new().body(),
            "application/x-protobuf;proto=io.prometheus.write.v3.Request",
            415,
            "proto=io.prometheus.write.v2.Request",
        ),
        (
            "not protobuf",
            Rw2::new().body(),
            "application/json",
            415,
            "accepted",
        ),
    ];
    for (what, body, content_type, status, phrase) in cases {
        let r = post_write(&url, &body, content_type);
        assert_eq!(r.status, status, "{what}: {}", r.body);
        assert!(r.body.contains(phrase), "{what}: {}", r.body);
        assert_eq!(r.written, [Some(0), Some(0), Some(0)], "{what}");
        assert_still_serving(&t, next());
    }
    // A Content-Encoding other than snappy.
    let r = agent()
        .post(&url)
        .header("Content-Type", RW2_CONTENT_TYPE)
        .header("Content-Encoding", "gzip")
        .send(&Rw2::new().body()[..])
        .expect("POST");
    assert_eq!(r.status().as_u16(), 415);
    assert!(
        r.headers()
            .contains_key("x-prometheus-remote-write-samples-written")
    );

    let metrics = get(&t.url("/metrics")).unwrap().1;
    for (reason, want) in [("bad_symbols", 1.0), ("unsupported_media_type", 3.0)] {
        assert_eq!(
            metric_value(
                &metrics,
                &format!("tessera_ingest_requests_refused_total{{reason=\"{reason}\"}}")
            ),
            Some(want),
            "{reason}"
        );
    }
}
