//! Round-trip, seek and corruption tests for the chunk codec as a whole.

use super::*;
use crate::sample::STALE_NAN_BITS;
use proptest::prelude::*;

fn build(samples: &[(i64, f64)]) -> ChunkBuilder {
    let mut b = ChunkBuilder::new();
    for &(t, v) in samples {
        b.append(t, v);
    }
    b
}

fn bits(samples: impl IntoIterator<Item = (i64, f64)>) -> Vec<(i64, u64)> {
    samples.into_iter().map(|(t, v)| (t, v.to_bits())).collect()
}

/// Seals `samples`, reads them back through every read path and checks each
/// is bit-exact.
fn assert_round_trip(samples: &[(i64, f64)]) -> Chunk {
    let want = bits(samples.iter().copied());
    let mut b = build(samples);
    assert_eq!(bits(b.iter()), want, "unsealed builder");
    let c = b.seal();
    assert!(b.is_empty(), "seal resets the builder");
    assert_eq!(c.len(), samples.len());
    assert_eq!(bits(c.iter()), want, "sealed chunk");
    let r = ChunkRef::new(c.as_bytes()).expect("sealed header is valid");
    assert_eq!(bits(r.iter()), want, "ChunkRef over the bytes");
    let again = Chunk::from_bytes(c.as_bytes().into()).expect("from_bytes accepts sealed bytes");
    assert_eq!(bits(again.iter()), want, "Chunk::from_bytes");
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        assert_eq!((c.min_t(), c.max_t()), (first.0, last.0));
    }
    c
}

#[test]
fn special_floats_round_trip_bit_exactly() {
    let specials = [
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff8_dead_beef_0001),
        f64::from_bits(0xfff0_0000_0000_0001),
        f64::from_bits(STALE_NAN_BITS),
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        f64::from_bits(1),
        f64::MIN_POSITIVE / 3.0,
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        1.0,
        f64::from_bits(STALE_NAN_BITS),
    ];
    let samples: Vec<_> = specials
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as i64 * 1000, v))
        .collect();
    let c = assert_round_trip(&samples);
    assert_eq!(c.value_encoding(), ValueEncoding::Xor);
}

#[test]
fn huge_tiny_and_negative_timestamp_deltas_round_trip() {
    let ts = [
        i64::MIN,
        i64::MIN + 1,
        -1_000_000_000_000,
        -1,
        0,
        1,
        2,
        1 << 40,
        i64::MAX - 1,
        i64::MAX,
    ];
    let samples: Vec<_> = ts.iter().map(|&t| (t, 1.5)).collect();
    assert_round_trip(&samples);
    assert_round_trip(&[(i64::MIN, 0.0), (i64::MAX, 1.0)]);
}

#[test]
fn single_sample_chunk_round_trips_with_equal_min_and_max() {
    let c = assert_round_trip(&[(-5, 42.0)]);
    assert_eq!((c.min_t(), c.max_t(), c.len()), (-5, -5, 1));
}

#[test]
fn sealing_an_empty_builder_gives_an_empty_chunk() {
    let c = ChunkBuilder::new().seal();
    assert!(c.is_empty());
    assert_eq!(c.iter().count(), 0);
    assert!(!c.as_ref().overlaps(i64::MIN, i64::MAX));
}

#[test]
fn builder_iter_sees_every_append_and_last_is_the_newest() {
    let mut b = ChunkBuilder::new();
    assert_eq!(b.last(), None);
    let mut want = Vec::new();
    for i in 0..300i64 {
        let s = (
            1_700_000_000_000 + i * 15_000 + (i * 7) % 5,
            (i as f64) * 0.25 - 3.0,
        );
        b.append(s.0, s.1);
        want.push(s);
        assert_eq!(b.last(), Some(s));
        assert_eq!(b.len(), want.len());
        assert_eq!(
            bits(b.iter()),
            bits(want.iter().copied()),
            "after {} appends",
            i + 1
        );
    }
    assert!(b.heap_bytes() >= b.encoded_len() - HEADER_LEN);
}

#[test]
fn builder_is_reusable_after_seal() {
    let mut b = build(&[(1, 1.0), (2, 2.0)]);
    let first = b.seal();
    b.append(10, 7.5);
    b.append(20, f64::NAN);
    let second = b.seal();
    assert_eq!(bits(first.iter()), bits([(1, 1.0), (2, 2.0)]));
    assert_eq!(bits(second.iter()), bits([(10, 7.5), (20, f64::NAN)]));
}

#[test]
fn seek_returns_the_first_sample_at_or_after_t() {
    let c = build(&[(10, 1.0), (20, 2.0), (30, 3.0), (40, 4.0)]).seal();
    let f = |t: i64, want: Option<(i64, f64)>| assert_eq!(c.iter().seek(t), want, "seek({t})");
    f(i64::MIN, Some((10, 1.0)));
    f(10, Some((10, 1.0)));
    f(11, Some((20, 2.0)));
    f(40, Some((40, 4.0)));
    f(41, None);

    let mut it = c.iter();
    assert_eq!(it.seek(15), Some((20, 2.0)));
    assert_eq!(
        it.next(),
        Some((30, 3.0)),
        "seek consumes the sample it returns"
    );
    assert_eq!(it.seek(0), Some((40, 4.0)), "seek never goes backwards");
    assert_eq!(it.next(), None);
}

#[test]
fn integral_gauges_seal_in_a_decimal_mode_smaller_than_xor() {
    let samples: Vec<_> = (0..120)
        .map(|i: i64| (i * 15_000, (50 + (i * 37 % 11) - 5) as f64))
        .collect();
    let mut w = super::bstream::BitWriter::new();
    let mut x = super::values::XorEncoder::default();
    for (n, &(_, v)) in samples.iter().enumerate() {
        x.push(&mut w, n as u32, v);
    }
    let xor_len = w.bytes().len();
    let c = assert_round_trip(&samples);
    assert!(
        matches!(
            c.value_encoding(),
            ValueEncoding::DecimalDelta { decimals: 0, .. }
                | ValueEncoding::DecimalDod { decimals: 0, .. }
        ),
        "{:?}",
        c.value_encoding()
    );
    let h = c.as_bytes();
    let ts_len = u32::from_le_bytes([h[24], h[25], h[26], h[27]]) as usize;
    let value_len = h.len() - HEADER_LEN - ts_len;
    assert!(value_len < xor_len, "{value_len} vs XOR {xor_len}");
}

#[test]
fn two_decimal_counters_seal_as_decimal_dod() {
    let samples: Vec<_> = (0..120)
        .map(|i: i64| {
            (
                i * 15_000,
                (123_456_700 + i * 1_350 + (i * 13) % 7) as f64 / 100.0,
            )
        })
        .collect();
    let c = assert_round_trip(&samples);
    assert!(
        matches!(
            c.value_encoding(),
            ValueEncoding::DecimalDod { decimals: 2, .. }
        ),
        "{:?}",
        c.value_encoding()
    );
}

#[test]
fn one_non_decimal_value_keeps_the_chunk_in_xor() {
    for odd in [
        f64::NAN,
        -0.0,
        0.1 + 0.2,
        f64::from_bits(STALE_NAN_BITS),
        1e300,
    ] {
        let mut samples: Vec<_> = (0..50).map(|i: i64| (i, i as f64)).collect();
        samples[25].1 = odd;
        let c = assert_round_trip(&samples);
        assert_eq!(c.value_encoding(), ValueEncoding::Xor, "{odd:?}");
    }
}

#[test]
fn decimals_widen_when_a_later_value_needs_more_places() {
    let samples = [(1, 1.0), (2, 2.5), (3, 2.75), (4, 63.451), (5, 100.0)];
    let c = assert_round_trip(&samples);
    assert!(matches!(
        c.value_encoding(),
        ValueEncoding::Xor
            | ValueEncoding::DecimalDelta { decimals: 3, .. }
            | ValueEncoding::DecimalDod { decimals: 3, .. }
    ));
}

#[test]
fn decimal_chunks_longer_than_the_stack_buffer_round_trip() {
    let samples: Vec<_> = (0..1000)
        .map(|i: i64| (i * 15_000, (i * 3 % 101) as f64 / 4.0))
        .collect();
    let c = assert_round_trip(&samples);
    assert!(
        matches!(
            c.value_encoding(),
            ValueEncoding::DecimalDelta { decimals: 2, .. }
                | ValueEncoding::DecimalDod { decimals: 2, .. }
        ),
        "{:?}",
        c.value_encoding()
    );
}

#[test]
fn widening_decimals_past_2_pow_53_falls_back_to_xor() {
    // 1e15 is an integer below 2^53, but at one decimal it would be 1e16.
    let c = assert_round_trip(&[(1, 1e15), (2, 0.5), (3, 1e15 + 2.0)]);
    assert_eq!(c.value_encoding(), ValueEncoding::Xor);
}

#[test]
fn open_builder_stays_small_for_per_series_memory() {
    // The head keeps one builder per active series (tens of millions).
    assert!(
        std::mem::size_of::<ChunkBuilder>() <= 128,
        "{}",
        std::mem::size_of::<ChunkBuilder>()
    );
    let mut b = ChunkBuilder::new();
    assert_eq!(b.heap_bytes(), 0, "an empty builder allocates nothing");
    for i in 0..120 {
        b.append(i * 15_000, (i % 7) as f64);
    }
    let held = b.heap_bytes();
    assert!(held > 0 && held < 512, "{held}");
    b.seal();
    assert_eq!(
        b.heap_bytes(),
        held,
        "seal keeps the buffers for the next chunk"
    );
}

#[test]
fn documented_example_bytes_match_the_encoder() {
    // docs/format/chunk.md, "Example".
    let c = build(&[(1000, 1.0), (16000, 2.0)]).seal();
    #[rustfmt::skip]
    let want: [u8; 32] = [
        0x01, 0x02, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x00,
        0xe8, 0x03, 0, 0, 0, 0, 0, 0,
        0x80, 0x3e, 0, 0, 0, 0, 0, 0,
        0x02, 0x00, 0x00, 0x00,
        0x98, 0x75,
        0x02, 0x84,
    ];
    assert_eq!(c.as_bytes(), want);
}

#[test]
fn header_errors_name_the_bad_byte() {
    // NaN keeps it in XOR mode, where a non-zero decimals byte is invalid.
    let good = build(&[(1, 1.0), (2, f64::NAN)]).seal().into_bytes();
    let f = |edit: &dyn Fn(&mut Vec<u8>), want: ChunkError| {
        let mut b = good.to_vec();
        edit(&mut b);
        assert_eq!(ChunkRef::new(&b).unwrap_err(), want);
        assert_eq!(Chunk::from_bytes(b.into()).unwrap_err(), want);
    };
    f(&|b| b.truncate(27), ChunkError::TooShort { len: 27 });
    f(&|b| b[0] = 2, ChunkError::UnsupportedVersion { found: 2 });
    f(
        &|b| b[1] = 9,
        ChunkError::BadValueEncoding {
            offset: 1,
            found: 9,
        },
    );
    f(
        &|b| b[2] = 1,
        ChunkError::BadValueEncoding {
            offset: 2,
            found: 1,
        },
    );
    f(
        &|b| b[3] = 1,
        ChunkError::BadValueEncoding {
            offset: 3,
            found: 1,
        },
    );
    f(
        &|b| b[1..4].copy_from_slice(&[1, 10, 0]),
        ChunkError::BadValueEncoding {
            offset: 2,
            found: 10,
        },
    );
    f(
        &|b| b[1..4].copy_from_slice(&[2, 2, 4]),
        ChunkError::BadValueEncoding {
            offset: 3,
            found: 4,
        },
    );
    f(
        &|b| b[8..16].copy_from_slice(&5i64.to_le_bytes()),
        ChunkError::BadTimeRange {
            min_t: 5,
            max_t: 2,
            count: 2,
        },
    );
    f(
        &|b| b[24..28].copy_from_slice(&1000u32.to_le_bytes()),
        ChunkError::TimestampColumnOverrun {
            ts_len: 1000,
            available: good.len() - HEADER_LEN,
        },
    );
    f(
        &|b| b[4..8].copy_from_slice(&u32::MAX.to_le_bytes()),
        ChunkError::CountExceedsColumn {
            count: u32::MAX,
            ts_len: 1,
        },
    );
    let msg = ChunkError::BadValueEncoding {
        offset: 1,
        found: 9,
    }
    .to_string();
    assert!(msg.contains("byte 1") && msg.contains('9'), "{msg}");
}

#[test]
fn truncated_chunks_yield_a_prefix_of_the_samples() {
    let samples: Vec<_> = (0..120)
        .map(|i: i64| (i * 15_001, (i as f64).sin()))
        .collect();
    let c = build(&samples).seal();
    let b = c.as_bytes();
    for cut in HEADER_LEN..b.len() {
        let Ok(r) = ChunkRef::new(&b[..cut]) else {
            continue;
        };
        let got = bits(r.iter());
        assert!(
            got.len() < samples.len(),
            "cut at {cut} still decoded everything"
        );
        assert_eq!(
            got,
            bits(samples[..got.len()].iter().copied()),
            "cut at {cut}"
        );
    }
}

fn sample_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (-1000i64..1000).prop_map(|i| i as f64),
        (-100_000i64..100_000, 0u8..4).prop_map(|(i, k)| i as f64 / 10f64.powi(k as i32)),
        Just(f64::from_bits(STALE_NAN_BITS)),
        Just(-0.0),
    ]
}

fn series() -> impl Strategy<Value = Vec<(i64, f64)>> {
    let delta = prop_oneof![
        1u64..100,
        14_990u64..15_010,
        1u64..(1u64 << 40),
        1u64..u64::MAX
    ];
    (
        any::<i64>(),
        prop::collection::vec((delta, sample_value()), 0..400),
    )
        .prop_map(|(start, steps)| {
            let mut t = start;
            let mut out = Vec::with_capacity(steps.len());
            for (i, (d, v)) in steps.into_iter().enumerate() {
                if i > 0 {
                    // Stop rather than wrap: timestamps must strictly increase.
                    match t.checked_add_unsigned(d) {
                        Some(next) => t = next,
                        None => break,
                    }
                }
                out.push((t, v));
            }
            out
        })
}

proptest! {
    #[test]
    fn any_increasing_series_round_trips_bit_exactly(samples in series()) {
        assert_round_trip(&samples);
    }

    #[test]
    fn open_builder_reads_back_exactly_after_every_append(
        samples in prop::collection::vec(sample_value(), 1..40)
    ) {
        // Short series of mixed decimals and arbitrary floats exercise every
        // open-column transition (rescale, move to XOR) mid-chunk.
        let mut b = ChunkBuilder::new();
        for (i, &v) in samples.iter().enumerate() {
            b.append(i as i64 * 15_000, v);
            let want: Vec<u64> = samples[..=i].iter().map(|v| v.to_bits()).collect();
            let got: Vec<u64> = b.iter().map(|(_, v)| v.to_bits()).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(b.last().map(|(_, v)| v.to_bits()), Some(v.to_bits()));
        }
        let c = b.seal();
        prop_assert_eq!(c.iter().map(|(_, v)| v.to_bits()).collect::<Vec<_>>(),
            samples.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }

    #[test]
    fn random_bytes_never_panic_and_decode_increasing_times(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(c) = Chunk::from_bytes(bytes.into()) {
            let mut prev = None;
            let mut n = 0;
            for (t, _) in c.iter() {
                prop_assert!(prev.is_none_or(|p| t > p));
                prop_assert!(t >= c.min_t() && t <= c.max_t());
                prev = Some(t);
                n += 1;
            }
            prop_assert!(n <= c.len());
            let _ = c.iter().seek(c.min_t().wrapping_add(1));
        }
    }

    #[test]
    fn corrupting_a_valid_chunk_never_panics(samples in series(), flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4)) {
        let c = build(&samples).seal();
        let mut b = c.into_bytes().into_vec();
        for (i, bit) in flips {
            let i = i.index(b.len());
            b[i] ^= 1 << bit;
        }
        if let Ok(r) = ChunkRef::new(&b) {
            prop_assert!(r.iter().count() <= r.len());
        }
    }
}
