//! decode_v1's hand-written protobuf reader against prost, the reference:
//! the same requests out of every valid encoding, and the same verdict
//! (accept or refuse) on malformed ones.

mod support;

use proptest::prelude::*;
use prost::Message;
use support::damage;
use tessera_ingest::ProtobufError;
use tessera_ingest::proto;
use tessera_ingest::{DecodeLimits, IngestError, decode_v1};

fn snappy(pb: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(pb).unwrap()
}

/// Both decoders on the same protobuf bytes. Results are compared by their
/// encodings, which is bit-exact for NaN payloads where `==` is not.
fn assert_same_verdict(pb: &[u8]) -> Result<(), TestCaseError> {
    let ours = decode_v1(&snappy(pb), &DecodeLimits::default());
    let reference = proto::WriteRequest::decode(pb);
    match (ours, reference) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a.encode_to_vec(), b.encode_to_vec()),
        (Err(IngestError::InvalidProtobuf(_)), Err(_)) => {}
        (a, b) => prop_assert!(false, "decode_v1 gave {:?}, prost gave {:?}", a, b),
    }
    Ok(())
}

fn arb_label() -> impl Strategy<Value = proto::Label> {
    // Arbitrary bytes, not strings: non-UTF-8 must survive decoding.
    (
        proptest::collection::vec(any::<u8>(), 0..12),
        proptest::collection::vec(any::<u8>(), 0..24),
    )
        .prop_map(|(name, value)| proto::Label { name, value })
}

fn arb_series() -> impl Strategy<Value = proto::TimeSeries> {
    (
        proptest::collection::vec(arb_label(), 0..6),
        proptest::collection::vec((any::<u64>(), any::<i64>()), 0..5),
        proptest::collection::vec((arb_label(), any::<u64>(), any::<i64>()), 0..2),
        proptest::collection::vec(any::<i64>(), 0..2),
    )
        .prop_map(
            |(labels, samples, exemplars, histograms)| proto::TimeSeries {
                labels,
                samples: samples
                    .into_iter()
                    .map(|(bits, timestamp)| proto::Sample {
                        value: f64::from_bits(bits),
                        timestamp,
                    })
                    .collect(),
                exemplars: exemplars
                    .into_iter()
                    .map(|(l, bits, timestamp)| proto::Exemplar {
                        labels: vec![l],
                        value: f64::from_bits(bits),
                        timestamp,
                    })
                    .collect(),
                histograms: histograms
                    .into_iter()
                    .map(|timestamp| proto::Histogram { timestamp })
                    .collect(),
            },
        )
}

fn arb_request() -> impl Strategy<Value = proto::WriteRequest> {
    (
        proptest::collection::vec(arb_series(), 0..6),
        proptest::collection::vec((0..8i32, "[a-z_]{0,8}", ".{0,8}"), 0..2),
    )
        .prop_map(|(timeseries, metadata)| proto::WriteRequest {
            timeseries,
            metadata: metadata
                .into_iter()
                .map(|(r#type, name, help)| proto::MetricMetadata {
                    r#type,
                    metric_family_name: name,
                    help,
                    unit: String::new(),
                })
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_encodings_decode_to_what_prost_decodes(req in arb_request()) {
        let pb = req.encode_to_vec();
        assert_same_verdict(&pb)?;
        // And to what was encoded (prost drops -0.0 when encoding, so the
        // comparison is on encodings again).
        let ours = decode_v1(&snappy(&pb), &DecodeLimits::default()).unwrap();
        prop_assert_eq!(ours.encode_to_vec(), pb);
    }

    #[test]
    fn corrupted_encodings_get_the_same_verdict_as_prost(req in arb_request(), damage in damage()) {
        assert_same_verdict(&damage.apply(req.encode_to_vec()))?;
    }

    #[test]
    fn arbitrary_bytes_get_the_same_verdict_as_prost(pb in proptest::collection::vec(any::<u8>(), 0..512)) {
        assert_same_verdict(&pb)?;
    }
}

#[test]
fn malformed_fields_are_reported_with_their_offset() {
    // Each case: protobuf bytes, the error wanted. Hand-written so the byte
    // offsets in the messages are checked, not just "some error".
    let f = |pb: &[u8], want: ProtobufError| {
        assert!(
            proto::WriteRequest::decode(pb).is_err(),
            "prost accepted {pb:x?}"
        );
        match decode_v1(&snappy(pb), &DecodeLimits::default()) {
            Err(IngestError::InvalidProtobuf(e)) => assert_eq!(e, want, "{:x?}", pb),
            other => panic!("{pb:x?}: wanted {want}, got {other:?}"),
        }
    };
    // TimeSeries (field 1) with a length past the end.
    f(
        &[0x0a, 0x05, 0x0a],
        ProtobufError::Truncated {
            what: "TimeSeries",
            needed: 5,
            available: 1,
            offset: 1,
        },
    );
    // TimeSeries sent as a varint.
    f(
        &[0x08, 0x01],
        ProtobufError::WrongWireType {
            message: "WriteRequest",
            field: 1,
            got: 0,
            want: 2,
            offset: 0,
        },
    );
    // Sample.value (fixed64) sent as a varint, inside a series.
    f(
        &[0x0a, 0x04, 0x12, 0x02, 0x08, 0x01],
        ProtobufError::WrongWireType {
            message: "Sample",
            field: 1,
            got: 0,
            want: 1,
            offset: 4,
        },
    );
    // Field number 0.
    f(
        &[0x02, 0x00],
        ProtobufError::InvalidKey { key: 2, offset: 0 },
    );
    // Wire type 7 does not exist.
    f(
        &[0x0f],
        ProtobufError::InvalidKey {
            key: 0x0f,
            offset: 0,
        },
    );
    // Varint whose 10th byte carries more than the top bit of a u64.
    f(
        &[
            0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ],
        ProtobufError::OverlongVarint { offset: 1 },
    );
    // Varint cut off by the end of the message.
    f(&[0x10, 0xff], ProtobufError::TruncatedVarint { offset: 1 });
    // Group of field 5 closed as field 6.
    f(
        &[0x2b, 0x08, 0x01, 0x34],
        ProtobufError::UnexpectedEndGroup {
            field: 6,
            offset: 3,
        },
    );
}

#[test]
fn unknown_fields_and_groups_are_skipped_and_last_scalar_wins() {
    let label = |n: &[u8], v: &[u8]| {
        let mut b = vec![0x0a, n.len() as u8];
        b.extend_from_slice(n);
        b.push(0x12);
        b.push(v.len() as u8);
        b.extend_from_slice(v);
        b
    };
    // Label with its name given twice (the second wins) and an unknown
    // fixed32 field 7.
    let mut l = label(b"first", b"up");
    l.extend_from_slice(&[0x0a, 0x08]);
    l.extend_from_slice(b"__name__");
    l.extend_from_slice(&[0x3d, 1, 2, 3, 4]);
    let mut ts = vec![0x0a, l.len() as u8];
    ts.extend_from_slice(&l);
    // An unknown group (field 9) holding a varint and a nested group.
    ts.extend_from_slice(&[0x4b, 0x08, 0x96, 0x01, 0x53, 0x54, 0x4c]);
    let mut pb = vec![0x0a, ts.len() as u8];
    pb.extend_from_slice(&ts);
    // An unknown top-level length-delimited field 15.
    pb.extend_from_slice(&[0x7a, 0x02, 0xff, 0xff]);

    let got = decode_v1(&snappy(&pb), &DecodeLimits::default()).unwrap();
    assert_eq!(got, proto::WriteRequest::decode(pb.as_slice()).unwrap());
    assert_eq!(got.timeseries.len(), 1);
    assert_eq!(got.timeseries[0].labels[0].name, b"__name__");
    assert_eq!(got.timeseries[0].labels[0].value, b"up");
}
