//! decode_v2's hand-written protobuf reader against prost, the reference
//! (the same requests out of every valid encoding, the same verdict on
//! malformed ones), and validate_v2's handling of symbol references: a bad
//! one refuses its series with a reason, never the request, never a panic.

mod support;

use proptest::prelude::*;
use prost::Message;
use support::damage;
use tessera_ingest::proto_v2 as pb;
use tessera_ingest::{DecodeLimits, IngestError, decode_v2, validate_v2};

fn snappy(pb: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(pb).unwrap()
}

/// Both decoders on the same protobuf bytes, compared by their encodings
/// (bit-exact for NaN payloads where `==` is not). A request whose symbols
/// table does not start with "" is refused by decode_v2 on purpose, after
/// decoding; prost has no such rule.
fn assert_same_verdict(bytes: &[u8]) -> Result<(), TestCaseError> {
    let ours = decode_v2(&snappy(bytes), &DecodeLimits::default());
    let reference = pb::Request::decode(bytes);
    match (ours, reference) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a.encode_to_vec(), b.encode_to_vec()),
        (Err(IngestError::SymbolsStart { .. }), Ok(b)) => {
            prop_assert!(!b.symbols[0].is_empty())
        }
        (Err(IngestError::InvalidProtobuf(_)), Err(_)) => {}
        (a, b) => prop_assert!(false, "decode_v2 gave {:?}, prost gave {:?}", a, b),
    }
    Ok(())
}

fn arb_series() -> impl Strategy<Value = pb::TimeSeries> {
    (
        proptest::collection::vec(any::<u32>(), 0..8),
        proptest::collection::vec((any::<u64>(), any::<i64>(), any::<i64>()), 0..4),
        proptest::collection::vec((any::<i64>(), any::<i64>()), 0..2),
        proptest::collection::vec((any::<u32>(), any::<u64>(), any::<i64>()), 0..2),
        proptest::option::of((0..8i32, any::<u32>(), any::<u32>())),
        any::<i64>(),
    )
        .prop_map(
            |(labels_refs, samples, histograms, exemplars, metadata, created_timestamp)| {
                pb::TimeSeries {
                    labels_refs,
                    samples: samples
                        .into_iter()
                        .map(|(bits, timestamp, start_timestamp)| pb::Sample {
                            value: f64::from_bits(bits),
                            timestamp,
                            start_timestamp,
                        })
                        .collect(),
                    histograms: histograms
                        .into_iter()
                        .map(|(timestamp, start_timestamp)| pb::Histogram {
                            timestamp,
                            start_timestamp,
                        })
                        .collect(),
                    exemplars: exemplars
                        .into_iter()
                        .map(|(r, bits, timestamp)| pb::Exemplar {
                            labels_refs: vec![r, r / 2],
                            value: f64::from_bits(bits),
                            timestamp,
                        })
                        .collect(),
                    metadata: metadata.map(|(r#type, help_ref, unit_ref)| pb::Metadata {
                        r#type,
                        help_ref,
                        unit_ref,
                    }),
                    created_timestamp,
                }
            },
        )
}

fn arb_request() -> impl Strategy<Value = pb::Request> {
    (
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..8),
        proptest::collection::vec(arb_series(), 0..5),
    )
        .prop_map(|(mut symbols, timeseries)| {
            // Mostly valid tables; a few start with a non-empty symbol.
            if symbols.len() % 4 != 1 {
                symbols.insert(0, Vec::new());
            }
            pb::Request {
                symbols,
                timeseries,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_encodings_decode_to_what_prost_decodes(req in arb_request()) {
        let bytes = req.encode_to_vec();
        assert_same_verdict(&bytes)?;
        if req.symbols.first().is_none_or(|s| s.is_empty()) {
            let ours = decode_v2(&snappy(&bytes), &DecodeLimits::default()).unwrap();
            prop_assert_eq!(ours.encode_to_vec(), bytes);
        }
    }

    #[test]
    fn corrupted_encodings_get_the_same_verdict_as_prost(req in arb_request(), damage in damage()) {
        assert_same_verdict(&damage.apply(req.encode_to_vec()))?;
    }

    #[test]
    fn arbitrary_bytes_get_the_same_verdict_as_prost(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        assert_same_verdict(&bytes)?;
    }

    /// Whatever references a request holds, validation ends with every
    /// series either kept or counted as refused, and never panics.
    #[test]
    fn any_references_are_kept_or_refused_never_a_panic(req in arb_request()) {
        let n = req.timeseries.len();
        let with_samples = req.timeseries.iter().filter(|t| !t.samples.is_empty()).count();
        let v = validate_v2(req, &DecodeLimits::default()).unwrap();
        prop_assert!(v.series.len() <= with_samples);
        prop_assert!(v.series.len() + v.rejected.invalid_series as usize <= n);
    }
}

/// A request over `symbols` with one series per `refs`, one sample each.
fn request(symbols: &[&str], refs: &[&[u32]]) -> pb::Request {
    pb::Request {
        symbols: symbols.iter().map(|s| s.as_bytes().to_vec()).collect(),
        timeseries: refs
            .iter()
            .enumerate()
            .map(|(i, r)| pb::TimeSeries {
                labels_refs: r.to_vec(),
                samples: vec![pb::Sample {
                    value: i as f64,
                    timestamp: 1000 + i as i64,
                    start_timestamp: 0,
                }],
                ..Default::default()
            })
            .collect(),
    }
}

#[test]
fn bad_references_refuse_their_series_and_keep_the_rest() {
    // (refs of the bad series, a phrase its reason must contain)
    let f = |bad: &[u32], want: &str| {
        let req = request(
            &["", "__name__", "up", "job", "a"],
            &[&[1, 2, 3, 4], bad, &[1, 2]],
        );
        let v = validate_v2(req, &DecodeLimits::default()).unwrap();
        assert_eq!(v.series.len(), 2, "{bad:?}: the good series are kept");
        assert_eq!(v.rejected.invalid_series, 1, "{bad:?}");
        assert_eq!(v.rejected.invalid_series_samples, 1, "{bad:?}");
        let msg = v.rejected.summary();
        assert!(msg.contains(want), "{bad:?}: {msg}");
        // Broken references name the series by position (there are no
        // labels to show); resolved ones by their labels.
        let names_position = msg.contains("series 1 of the request");
        assert_eq!(names_position, msg.contains("reference"), "{msg}");
    };
    f(&[1, 2, 3], "odd number");
    f(&[1, 2, 3, 5], "label value reference 5 is past the end");
    f(&[1, 2, 99, 4], "label name reference 99");
    f(&[1, 2, u32::MAX, 4], "4294967295");
    // Resolved but invalid: the 1.0 validation's own reasons.
    f(&[3, 4], "no __name__ label in series {job=\"a\"}");
    f(&[1, 2, 3, 0], "empty value");
}

#[test]
fn symbols_table_must_start_with_the_empty_string() {
    let body = |symbols: &[&str]| snappy(&request(symbols, &[&[1, 2]]).encode_to_vec());
    let err = decode_v2(&body(&["__name__", "up"]), &DecodeLimits::default()).unwrap_err();
    assert!(matches!(err, IngestError::SymbolsStart { .. }), "{err:?}");
    assert_eq!(err.status_class().http_status(), 400);
    assert!(err.to_string().contains("\"__name__\""), "{err}");
    assert!(decode_v2(&body(&["", "__name__", "up"]), &DecodeLimits::default()).is_ok());
    // An empty request has no table at all, and that is fine.
    assert!(decode_v2(&snappy(&[]), &DecodeLimits::default()).is_ok());
}

#[test]
fn metadata_goes_to_the_family_of_the_series_name() {
    let mut req = request(
        &["", "__name__", "gpu_util", "Utilisation.", "percent"],
        &[&[1, 2], &[1, 2]],
    );
    let md = pb::Metadata {
        r#type: 2,
        help_ref: 3,
        unit_ref: 4,
    };
    req.timeseries[0].metadata = Some(md.clone());
    req.timeseries[1].metadata = Some(md);
    let v = validate_v2(req.clone(), &DecodeLimits::default()).unwrap();
    assert_eq!(v.metadata.len(), 1, "the same entry twice is recorded once");
    let m = &v.metadata[0];
    assert_eq!(
        (
            m.metric_family_name.as_str(),
            m.type_name(),
            m.help.as_str(),
            m.unit.as_str()
        ),
        ("gpu_util", "gauge", "Utilisation.", "percent")
    );
    // A help reference past the table refuses the series like a label one.
    req.timeseries[1].metadata = Some(pb::Metadata {
        r#type: 2,
        help_ref: 40,
        unit_ref: 0,
    });
    let v = validate_v2(req, &DecodeLimits::default()).unwrap();
    assert_eq!((v.series.len(), v.rejected.invalid_series), (1, 1));
    assert!(v.rejected.summary().contains("metadata help reference 40"));
}

#[test]
fn start_timestamps_are_accepted_in_both_places() {
    let mut req = request(&["", "__name__", "c_total"], &[&[1, 2]]);
    req.timeseries[0].created_timestamp = 500; // Prometheus 2.54–3.7
    req.timeseries[0].samples[0].start_timestamp = 400; // 3.8+
    let v = validate_v2(
        decode_v2(&snappy(&req.encode_to_vec()), &DecodeLimits::default()).unwrap(),
        &DecodeLimits::default(),
    )
    .unwrap();
    assert!(v.rejected.is_empty(), "{}", v.rejected.summary());
    assert_eq!(v.sample_count(), 1);
}

#[test]
fn histograms_and_exemplars_are_refused_per_item_and_samples_kept() {
    let mut req = request(&["", "__name__", "h"], &[&[1, 2]]);
    req.timeseries[0].histograms = vec![
        pb::Histogram {
            timestamp: 1000,
            start_timestamp: 0,
        };
        2
    ];
    req.timeseries[0].exemplars = vec![pb::Exemplar {
        labels_refs: vec![],
        value: 1.0,
        timestamp: 1000,
    }];
    let v = validate_v2(req, &DecodeLimits::default()).unwrap();
    assert_eq!(v.sample_count(), 1);
    assert_eq!((v.rejected.histograms, v.rejected.exemplars), (2, 1));
    assert!(
        v.rejected
            .summary()
            .contains("native histograms are not supported yet")
    );
}

#[test]
fn a_huge_symbols_table_or_its_expansion_is_refused_as_too_large() {
    let limits = DecodeLimits {
        max_compressed_bytes: 100_000,
        max_decoded_bytes: 100_000,
        ..DecodeLimits::default()
    };
    // 40,000 empty symbols: 80 kB of protobuf, 960 kB of vectors.
    let req = pb::Request {
        symbols: vec![Vec::new(); 40_000],
        timeseries: vec![],
    };
    let err = decode_v2(&snappy(&req.encode_to_vec()), &limits).unwrap_err();
    assert!(matches!(err, IngestError::ExpandsTooMuch { .. }), "{err:?}");
    assert_eq!(err.status_class().http_status(), 413);

    // One 4 kB symbol named by 20,000 two-byte references: 40 kB of
    // protobuf that would resolve to 80 MB of labels.
    let big = "v".repeat(4000);
    let refs: Vec<u32> = [1, 2].repeat(10_000);
    let req = request(&["", "__name__", &big], &[&refs]);
    let decoded = decode_v2(&snappy(&req.encode_to_vec()), &limits).unwrap();
    let err = validate_v2(decoded, &limits).unwrap_err();
    assert!(
        matches!(err, IngestError::LabelsExpandTooMuch { .. }),
        "{err:?}"
    );
    assert_eq!(err.status_class().http_status(), 413);
}

#[test]
fn unpacked_label_refs_decode_like_packed_ones() {
    // TimeSeries { labels_refs: 1 (unpacked), 2 (unpacked) }, symbols "",
    // "__name__", "up".
    let mut bytes = pb::Request {
        symbols: vec![b"".to_vec(), b"__name__".to_vec(), b"up".to_vec()],
        timeseries: vec![],
    }
    .encode_to_vec();
    bytes.extend_from_slice(&[0x2a, 0x04, 0x08, 0x01, 0x08, 0x02]);
    let ours = decode_v2(&snappy(&bytes), &DecodeLimits::default()).unwrap();
    assert_eq!(ours, pb::Request::decode(bytes.as_slice()).unwrap());
    assert_eq!(ours.timeseries[0].labels_refs, [1, 2]);
}
