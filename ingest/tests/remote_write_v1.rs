//! Remote write 1.0 decode and validation, end to end from HTTP body bytes.

use std::time::{Duration, Instant};

use prost::Message;
use tessera_ingest::proto;
use tessera_ingest::{DecodeLimits, IngestError, StatusClass, ValidatedWrite, decode_v1, validate};
use tessera_tsdb::{Labels, stale_nan};

fn label(n: &str, v: &str) -> proto::Label {
    proto::Label {
        name: n.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
    }
}

fn series(labels: Vec<proto::Label>, samples: &[(i64, f64)]) -> proto::TimeSeries {
    proto::TimeSeries {
        labels,
        samples: samples
            .iter()
            .map(|&(timestamp, value)| proto::Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

fn snappy(pb: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(pb).unwrap()
}

fn body_of(req: &proto::WriteRequest) -> Vec<u8> {
    snappy(&req.encode_to_vec())
}

fn decode_and_validate(req: &proto::WriteRequest) -> ValidatedWrite {
    let limits = DecodeLimits::default();
    validate(decode_v1(&body_of(req), &limits).unwrap(), &limits)
}

/// What dcgm-exporter behind Prometheus' kubernetes SD sends for one GPU.
fn dcgm_series(host: usize, gpu: usize, metric: &str, t: i64, v: f64) -> proto::TimeSeries {
    series(
        vec![
            // Deliberately not sorted: clients need not sort.
            label("gpu", &gpu.to_string()),
            label("__name__", metric),
            label("UUID", &format!("GPU-{host:08x}-6c2b-4d6e-9a1f-{gpu:012x}")),
            label("device", &format!("nvidia{gpu}")),
            label("modelName", "NVIDIA H100 80GB HBM3"),
            label("Hostname", &format!("gpu-node-{host:04}")),
            label(
                "instance",
                &format!("10.42.{}.{}:9400", host / 256, host % 256),
            ),
            label("job", "dcgm-exporter"),
            label("pod", &format!("trainer-{host}-{gpu}")),
            label("namespace", "ml-training"),
            label("container", "pytorch"),
        ],
        &[(t, v)],
    )
}

const DCGM_METRICS: [&str; 5] = [
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
];

fn err_of(body: &[u8], limits: &DecodeLimits) -> IngestError {
    match decode_v1(body, limits) {
        Ok(req) => panic!("decoded to {req:?}, wanted an error"),
        Err(e) => e,
    }
}

#[test]
fn dcgm_series_set_round_trips_with_sorted_labels_and_metadata() {
    let mut req = proto::WriteRequest::default();
    for host in 0..4 {
        for gpu in 0..8 {
            for (i, m) in DCGM_METRICS.iter().enumerate() {
                let v = (host * 100 + gpu * 10 + i) as f64;
                req.timeseries
                    .push(dcgm_series(host, gpu, m, 1_700_000_000_000, v));
            }
        }
    }
    req.metadata.push(proto::MetricMetadata {
        r#type: 2,
        metric_family_name: "DCGM_FI_DEV_GPU_UTIL".into(),
        help: "GPU utilization (in %).".into(),
        unit: String::new(),
    });

    let got = decode_and_validate(&req);

    assert!(got.rejected.is_empty(), "{}", got.rejected.summary());
    assert_eq!(got.series.len(), 4 * 8 * 5);
    assert_eq!(got.metadata, req.metadata);
    let first = &got.series[0];
    let names: Vec<&str> = first.labels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Hostname",
            "UUID",
            "__name__",
            "container",
            "device",
            "gpu",
            "instance",
            "job",
            "modelName",
            "namespace",
            "pod"
        ]
    );
    assert_eq!(first.labels.metric_name(), Some("DCGM_FI_DEV_GPU_UTIL"));
    assert_eq!(
        first.labels.get("UUID"),
        Some("GPU-00000000-6c2b-4d6e-9a1f-000000000000")
    );
    // Request order is kept, so the last series is host 3, GPU 7, last metric.
    let last = got.series.last().unwrap();
    assert_eq!(last.labels.get("Hostname"), Some("gpu-node-0003"));
    assert_eq!(last.samples[0].v, 374.0);
    assert_eq!(last.samples[0].t, 1_700_000_000_000);
}

#[test]
fn empty_request_is_valid_and_yields_nothing() {
    let got = decode_and_validate(&proto::WriteRequest::default());
    assert!(got.series.is_empty());
    assert!(got.metadata.is_empty());
    assert!(got.rejected.is_empty());
}

#[test]
fn malformed_bodies_are_bad_requests_naming_the_layer() {
    let valid = body_of(&proto::WriteRequest {
        timeseries: vec![dcgm_series(1, 1, "up", 1, 1.0)],
        metadata: vec![],
    });
    let garbage_protobuf = snap::raw::Encoder::new()
        .compress_vec(b"\x0a\xff\xff\xff\xff\x0f not a protobuf")
        .unwrap();
    let f = |name: &str, body: &[u8], want_prefix: &str| {
        let e = err_of(body, &DecodeLimits::default());
        assert_eq!(e.status_class(), StatusClass::BadRequest, "{name}: {e}");
        assert_eq!(e.status_class().http_status(), 400);
        let msg = e.to_string();
        assert!(msg.starts_with(want_prefix), "{name}: {msg}");
        assert!(
            msg.len() > want_prefix.len(),
            "{name}: no detail in {msg:?}"
        );
    };
    f("empty body", b"", "invalid snappy block: ");
    f(
        "plain text",
        b"this is not snappy at all",
        "invalid snappy block: ",
    );
    f(
        "truncated",
        &valid[..valid.len() / 2],
        "invalid snappy block: ",
    );
    f("header only", &valid[..1], "invalid snappy block: ");
    f(
        "implausible length",
        &[0x80, 0x80, 0x40, 0x00, 0x01, 0x02, 0x03],
        "invalid snappy block: header declares 1048576 decoded bytes, more than 7",
    );
    f(
        "over-long varint",
        b"\xff\xff\xff\xff\xff\xff\x01",
        "invalid snappy block: ",
    );
    f(
        "garbage protobuf",
        &garbage_protobuf,
        "invalid protobuf WriteRequest: ",
    );
    f(
        "uncompressed protobuf",
        &proto::WriteRequest {
            timeseries: vec![dcgm_series(1, 1, "up", 1, 1.0)],
            metadata: vec![],
        }
        .encode_to_vec(),
        "invalid snappy block: ",
    );
}

#[test]
fn snappy_header_declaring_4_gib_is_refused_as_too_large() {
    // varint(2^32) followed by junk: five bytes that would ask for 4 GiB.
    let body = [0x80, 0x80, 0x80, 0x80, 0x10, 0x00, 0x01, 0x02];
    let e = err_of(&body, &DecodeLimits::default());
    assert_eq!(e.status_class(), StatusClass::TooLarge);
    assert_eq!(e.status_class().http_status(), 413);
    let msg = e.to_string();
    assert!(msg.contains("4294967296"), "{msg}");
    assert!(msg.contains("33554432"), "{msg}");
}

#[test]
fn snappy_header_over_the_configured_limit_is_refused_before_decompressing() {
    let limits = DecodeLimits {
        max_decoded_bytes: 1000,
        ..DecodeLimits::default()
    };
    // A real body declaring 1001 bytes, and junk declaring 3 GiB (under
    // snappy's own u32 ceiling, so only our limit stops it).
    let real = snap::raw::Encoder::new()
        .compress_vec(&[0u8; 1001])
        .unwrap();
    let bomb = [0x80, 0x80, 0x80, 0x80, 0x0c, 0xde, 0xad];
    let f = |body: &[u8], declared: u64| match err_of(body, &limits) {
        IngestError::DecodedTooLarge { declared: d, limit } => {
            assert_eq!((d, limit), (declared, 1000));
        }
        e => panic!("wanted DecodedTooLarge, got {e}"),
    };
    f(&real, 1001);
    f(&bomb, 3 << 30);
    // Exactly at the limit is fine (and then fails as protobuf, not size).
    let at = snap::raw::Encoder::new()
        .compress_vec(&[0xffu8; 1000])
        .unwrap();
    assert!(matches!(
        err_of(&at, &limits),
        IngestError::InvalidProtobuf(_)
    ));
}

#[test]
fn requests_that_expand_implausibly_in_memory_are_too_large() {
    let limits = DecodeLimits {
        max_decoded_bytes: 1 << 20,
        ..DecodeLimits::default()
    };
    // Each case: protobuf bytes; all are valid protobuf, under the decoded
    // limit, and would take 24-48x their size in memory.
    let f = |name: &str, pb: Vec<u8>| {
        let e = err_of(&snappy(&pb), &limits);
        assert!(
            matches!(e, IngestError::ExpandsTooMuch { limit, .. } if limit == 4 << 20),
            "{name}: {e}"
        );
        assert_eq!(e.status_class(), StatusClass::TooLarge, "{name}");
        assert!(e.to_string().contains("implausibly many"), "{name}: {e}");
    };
    // 512k empty series (2 bytes each on the wire, 96 in memory).
    f("empty series", [0x0a, 0x00].repeat(512 << 10));
    // One series with 100k empty labels (2 bytes each, 48 in memory).
    let labels = [0x0a, 0x00].repeat(100_000);
    let mut ts = vec![0x0a];
    prost::encoding::encode_varint(labels.len() as u64, &mut ts);
    ts.extend_from_slice(&labels);
    f("empty labels", ts);
}

#[test]
fn realistic_request_at_the_decoded_limit_fits_the_memory_budget() {
    let mut req = proto::WriteRequest::default();
    for host in 0..50 {
        for gpu in 0..8 {
            for m in DCGM_METRICS {
                req.timeseries.push(dcgm_series(host, gpu, m, 1, 1.0));
            }
        }
    }
    let pb = req.encode_to_vec();
    let limits = DecodeLimits {
        max_decoded_bytes: pb.len(),
        ..DecodeLimits::default()
    };
    let got = decode_v1(&snappy(&pb), &limits).unwrap();
    assert_eq!(got.timeseries.len(), 2000);
}

#[test]
fn oversized_compressed_body_is_too_large_naming_both_sizes() {
    let limits = DecodeLimits {
        max_compressed_bytes: 64,
        ..DecodeLimits::default()
    };
    let body = vec![0u8; 65];
    let e = err_of(&body, &limits);
    assert!(
        matches!(
            e,
            IngestError::BodyTooLarge {
                size: 65,
                limit: 64
            }
        ),
        "{e}"
    );
    assert_eq!(e.status_class(), StatusClass::TooLarge);
    assert!(e.to_string().contains("65 bytes"), "{e}");
    assert!(e.to_string().contains("--ingest.max-request-bytes"), "{e}");
}

#[test]
fn invalid_series_are_rejected_with_reason_and_the_rest_kept() {
    let good = || dcgm_series(0, 0, "DCGM_FI_DEV_GPU_UTIL", 1000, 42.0);
    // Each case: one bad series between two good ones; the message must
    // contain `want` and name the series.
    let f = |labels: Vec<proto::Label>, want: &str| {
        let req = proto::WriteRequest {
            timeseries: vec![good(), series(labels, &[(1, 1.0), (2, 2.0)]), good()],
            metadata: vec![],
        };
        let got = decode_and_validate(&req);
        assert_eq!(got.series.len(), 2, "{want}");
        assert_eq!(got.rejected.invalid_series, 1, "{want}");
        assert_eq!(got.rejected.invalid_series_samples, 2, "{want}");
        let ex = &got.rejected.examples()[0];
        assert!(ex.contains(want), "wanted {want:?} in {ex:?}");
        assert!(ex.contains(" in series "), "{ex}");
        // Bounded whatever the client sent: it goes into the HTTP answer.
        assert!(ex.len() < 1024, "{} bytes: {ex}", ex.len());
        assert!(got.rejected.summary().contains(want), "{want}");
    };
    f(
        vec![label("__name__", "up"), label("1job", "x")],
        r#"invalid label name "1job""#,
    );
    f(
        vec![label("__name__", "up"), label("job-name", "x")],
        r#"invalid label name "job-name""#,
    );
    f(
        vec![
            label("__name__", "up"),
            label("job", "a"),
            label("job", "b"),
        ],
        r#"duplicate label name "job""#,
    );
    f(vec![label("job", "x")], "series has no __name__ label");
    f(
        vec![label("__name__", "up"), label("job", "")],
        r#"label "job" has an empty value"#,
    );
    f(
        vec![label("__name__", "9up")],
        r#"invalid metric name "9up""#,
    );
    f(
        vec![label("__name__", &format!("9{}", "a".repeat(4000)))],
        &format!(r#"invalid metric name "9{}...""#, "a".repeat(63)),
    );
    f(
        vec![
            label("__name__", "up"),
            label(&"n".repeat(1000), "x"),
            label(&"n".repeat(1000), "y"),
        ],
        &format!(r#"duplicate label name "{}...""#, "n".repeat(64)),
    );
    f(
        vec![
            label("__name__", "up"),
            proto::Label {
                name: b"job".to_vec(),
                value: b"ok\xffno".to_vec(),
            },
        ],
        r#"value of label "job" is not valid UTF-8 (bad byte at offset 2)"#,
    );
    f(
        vec![
            label("__name__", "up"),
            proto::Label {
                name: b"j\xc3".to_vec(),
                value: b"x".to_vec(),
            },
        ],
        "is not valid UTF-8 (bad byte at offset 1)",
    );
    f(
        vec![label("__name__", "up"), label(&"n".repeat(1025), "x")],
        "is 1025 bytes, over the limit of 1024",
    );
    f(
        vec![label("__name__", "up"), label("path", &"v".repeat(4097))],
        r#"value of label "path" is 4097 bytes, over the limit of 4096"#,
    );
    f(
        (0..129).map(|i| label(&format!("l{i}"), "x")).collect(),
        "series has 129 labels, over the limit of 128",
    );
}

#[test]
fn rejected_series_message_renders_its_labels() {
    let req = proto::WriteRequest {
        timeseries: vec![series(
            vec![
                label("job", "dcgm"),
                label("__name__", "DCGM_FI_DEV_GPU_UTIL"),
                label("bad-name", "x"),
            ],
            &[(1, 1.0)],
        )],
        metadata: vec![],
    };
    let got = decode_and_validate(&req);
    assert_eq!(
        got.rejected.examples(),
        [
            r#"invalid label name "bad-name": must match [a-zA-Z_][a-zA-Z0-9_]* in series DCGM_FI_DEV_GPU_UTIL{bad-name="x", job="dcgm"}"#
        ]
    );
}

#[test]
fn series_with_100k_labels_is_rejected_quickly() {
    let mut labels = vec![label("__name__", "up")];
    labels.extend((0..100_000).map(|i| label(&format!("label_{i}"), "value")));
    let req = proto::WriteRequest {
        timeseries: vec![series(labels, &[(1, 1.0)]), dcgm_series(0, 0, "up", 1, 1.0)],
        metadata: vec![],
    };
    let limits = DecodeLimits::default();
    let decoded = decode_v1(&body_of(&req), &limits).unwrap();
    let start = Instant::now();
    let got = validate(decoded, &limits);
    let took = start.elapsed();
    assert_eq!(got.series.len(), 1);
    assert_eq!(got.rejected.invalid_series, 1);
    let ex = &got.rejected.examples()[0];
    assert!(
        ex.starts_with("series has 100001 labels, over the limit of 128"),
        "{ex}"
    );
    assert!(ex.len() < 1024, "example is {} bytes", ex.len());
    // Mostly the cost of freeing 200k small vectors; generous for a debug
    // build on a loaded machine, yet far below anything quadratic.
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn special_float_values_pass_through_bit_exactly() {
    let values = [
        stale_nan(),
        f64::NAN,
        f64::from_bits(0x7ff8_dead_beef_0001),
        f64::from_bits(0xfff0_0000_0000_0001),
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::from_bits(1), // smallest subnormal
        f64::MAX,
    ];
    let samples: Vec<(i64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as i64 * 15_000, v))
        .collect();
    let req = proto::WriteRequest {
        timeseries: vec![series(vec![label("__name__", "up")], &samples)],
        metadata: vec![],
    };
    let got = decode_and_validate(&req);
    let bits: Vec<u64> = got.series[0]
        .samples
        .iter()
        .map(|s| s.v.to_bits())
        .collect();
    let want: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
    assert_eq!(bits, want);
    assert!(tessera_tsdb::is_stale_nan(got.series[0].samples[0].v));
    assert!(!tessera_tsdb::is_stale_nan(got.series[0].samples[1].v));
}

#[test]
fn negative_zero_on_the_wire_is_kept() {
    // prost (like the gogo code in Prometheus) omits a value that compares
    // equal to 0.0, so -0.0 never leaves an encoder built from these types;
    // write the bytes by hand to check that the decoder keeps it.
    let label = [&[0x0a, 0x08][..], b"__name__", &[0x12, 0x02], b"up"].concat();
    let sample = [&[0x09][..], &(-0.0f64).to_le_bytes(), &[0x10, 0x07]].concat();
    let ts = [
        &[0x0a, label.len() as u8][..],
        &label,
        &[0x12, sample.len() as u8],
        &sample,
    ]
    .concat();
    let pb = [&[0x0a, ts.len() as u8][..], &ts].concat();
    let body = snap::raw::Encoder::new().compress_vec(&pb).unwrap();
    let limits = DecodeLimits::default();
    let got = validate(decode_v1(&body, &limits).unwrap(), &limits);
    let s = got.series[0].samples[0];
    assert_eq!((s.t, s.v.to_bits()), (7, (-0.0f64).to_bits()));
}

#[test]
fn samples_keep_client_order_even_when_out_of_order() {
    let req = proto::WriteRequest {
        timeseries: vec![series(
            vec![label("__name__", "up")],
            &[(3000, 3.0), (1000, 1.0), (2000, 2.0), (2000, 2.5)],
        )],
        metadata: vec![],
    };
    let got = decode_and_validate(&req);
    let ts: Vec<(i64, f64)> = got.series[0].samples.iter().map(|s| (s.t, s.v)).collect();
    assert_eq!(ts, [(3000, 3.0), (1000, 1.0), (2000, 2.0), (2000, 2.5)]);
}

#[test]
fn exemplars_and_histograms_are_counted_while_float_samples_are_kept() {
    let exemplar = proto::Exemplar {
        labels: vec![label("trace_id", "abc")],
        value: 1.0,
        timestamp: 5,
    };
    let mut with_both = series(
        vec![label("__name__", "http_requests_total")],
        &[(1, 1.0), (2, 2.0)],
    );
    with_both.exemplars = vec![exemplar.clone(); 3];
    with_both.histograms = vec![proto::Histogram { timestamp: 1 }];
    let mut only_histograms = series(vec![label("__name__", "latency_seconds")], &[]);
    only_histograms.histograms = vec![proto::Histogram { timestamp: 1 }; 2];
    let req = proto::WriteRequest {
        timeseries: vec![with_both, only_histograms],
        metadata: vec![],
    };

    let got = decode_and_validate(&req);

    // The histogram-only series has nothing to append but is not "invalid".
    assert_eq!(got.series.len(), 1);
    assert_eq!(got.series[0].samples.len(), 2);
    assert_eq!(
        got.series[0].labels,
        Labels::from_pairs([("__name__", "http_requests_total")])
    );
    let r = &got.rejected;
    assert_eq!((r.exemplars, r.histograms, r.invalid_series), (3, 3, 0));
    assert_eq!(r.total(), 6);
    let s = r.summary();
    assert!(
        s.contains("rejected 3 exemplars: exemplars are not supported yet"),
        "{s}"
    );
    assert!(
        s.contains("rejected 3 native histogram samples: native histograms are not supported yet"),
        "{s}"
    );
}

#[test]
fn only_the_first_few_rejections_are_rendered() {
    let bad = || series(vec![label("job", "x")], &[(1, 1.0)]);
    let req = proto::WriteRequest {
        timeseries: vec![bad(); 50],
        metadata: vec![],
    };
    let got = decode_and_validate(&req);
    assert_eq!(got.rejected.invalid_series, 50);
    assert_eq!(got.rejected.invalid_series_samples, 50);
    assert_eq!(got.rejected.examples().len(), tessera_ingest::MAX_EXAMPLES);
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decode_v1_on_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let limits = DecodeLimits::default();
            if let Ok(req) = decode_v1(&body, &limits) {
                let _ = validate(req, &limits);
            }
        }

        // Random bytes almost never get past snappy; wrapping them in a valid
        // block exercises the protobuf decoder and validation instead.
        #[test]
        fn arbitrary_protobuf_in_valid_snappy_never_panics(pb in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let limits = DecodeLimits { max_labels_per_series: 4, ..DecodeLimits::default() };
            let body = snap::raw::Encoder::new().compress_vec(&pb).unwrap();
            match decode_v1(&body, &limits) {
                Ok(req) => { let _ = validate(req, &limits); }
                Err(e) => prop_assert_eq!(e.status_class(), StatusClass::BadRequest),
            }
        }
    }
}
