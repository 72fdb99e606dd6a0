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

/// Seals `samples` with `seal` and with `seal_smallest`, reads both back
/// through every read path and checks each is bit-exact; returns `seal`'s
/// chunk. `seal_smallest` must never be larger.
fn assert_round_trip(samples: &[(i64, f64)]) -> Chunk {
    let small = assert_sealed_round_trip(samples, ChunkBuilder::seal_smallest);
    let c = assert_sealed_round_trip(samples, ChunkBuilder::seal);
    assert!(
        small.as_bytes().len() <= c.as_bytes().len(),
        "seal_smallest {:?} {} bytes, seal {:?} {}",
        small.value_encoding(),
        small.as_bytes().len(),
        c.value_encoding(),
        c.as_bytes().len()
    );
    c
}

fn assert_sealed_round_trip(samples: &[(i64, f64)], seal: fn(&mut ChunkBuilder) -> Chunk) -> Chunk {
    let want = bits(samples.iter().copied());
    let mut b = build(samples);
    assert_eq!(bits(b.iter()), want, "unsealed builder");
    let c = seal(&mut b);
    assert!(b.is_empty(), "sealing resets the builder");
    assert_eq!(c.len(), samples.len());
    assert_eq!(
        bits(c.iter()),
        want,
        "sealed chunk {:?}",
        c.value_encoding()
    );
    let r = ChunkRef::new(c.as_bytes()).expect("sealed header is valid");
    assert_eq!(bits(r.iter()), want, "ChunkRef over the bytes");
    let again = Chunk::from_bytes(c.as_bytes().into()).expect("from_bytes accepts sealed bytes");
    assert_eq!(bits(again.iter()), want, "Chunk::from_bytes");
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        assert_eq!((c.min_t(), c.max_t()), (first.0, last.0));
        // Seeking to every sample finds it (exceptions and the fitted
        // preamble included).
        for (i, &(t, v)) in samples.iter().enumerate().step_by(7) {
            let got = c.iter().seek(t).map(|(t, v)| (t, v.to_bits()));
            assert_eq!(got, Some((t, v.to_bits())), "seek to sample {i}");
        }
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
        0x02, 0x02, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x00,
        0xe8, 0x03, 0, 0, 0, 0, 0, 0,
        0x80, 0x3e, 0, 0, 0, 0, 0, 0,
        0x02, 0x00, 0x00, 0x00,
        0x98, 0x75,
        0x02, 0x84,
    ];
    assert_eq!(c.as_bytes(), want);
    // Version 2 only added an encoding: the same bytes as version 1 read
    // the same.
    let mut v1 = want;
    v1[0] = 1;
    let r = ChunkRef::new(&v1).expect("version 1 is still read");
    assert_eq!(bits(r.iter()), bits([(1000, 1.0), (16000, 2.0)]));
}

#[test]
fn documented_fitted_example_bytes_match_the_encoder() {
    // docs/format/chunk.md, "Example: encoding 3": 40 scrapes of a constant
    // gauge, the last one a staleness marker.
    let mut samples: Vec<(i64, f64)> = (0..40).map(|i| (i * 15_000, 2619.0)).collect();
    samples[39].1 = f64::from_bits(STALE_NAN_BITS);
    let c = build(&samples).seal_smallest();
    assert_eq!(
        c.value_encoding(),
        ValueEncoding::Fitted {
            decimals: 0,
            mul: false,
            dod: false
        }
    );
    #[rustfmt::skip]
    let want: [u8; 51] = [
        0x02, 0x03, 0x00, 0x00,
        0x28, 0x00, 0x00, 0x00,
        0, 0, 0, 0, 0, 0, 0, 0,
        0x28, 0xed, 0x08, 0, 0, 0, 0, 0,
        0x07, 0x00, 0x00, 0x00,
        0x98, 0x75, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x40, 0x00, 0x49, 0xfd, 0x8a, 0x1f,
        0xfc, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,
    ];
    assert_eq!(c.as_bytes(), want);
    assert_eq!(bits(c.iter()), bits(samples.iter().copied()));
}

#[test]
fn seal_smallest_finds_what_seal_cannot() {
    let n = 480;
    let len = |c: &Chunk| c.as_bytes().len();
    let ts_len = |c: &Chunk| u32::from_le_bytes(c.as_bytes()[24..28].try_into().unwrap()) as usize;
    let vals_len = |c: &Chunk| len(c) - HEADER_LEN - ts_len(c);
    // A constant: a few bytes of value column, whatever its length.
    let constant: Vec<(i64, f64)> = (0..n).map(|i| (i as i64 * 15_000, 2619.0)).collect();
    let c = assert_round_trip(&constant);
    let small = build(&constant).seal_smallest();
    assert!(vals_len(&small) <= 8, "{} bytes", vals_len(&small));
    assert!(vals_len(&c) >= n / 8);
    // CPU seconds computed as ticks × 0.01: not decimal text, so `seal`
    // falls back to XOR; the multiplying scale reproduces them.
    let mut ticks = 123_456_789i64;
    let cpu: Vec<(i64, f64)> = (0..n)
        .map(|i| {
            ticks += 1400 + (i as i64 * 7919) % 200;
            (i as i64 * 15_000, ticks as f64 * 0.01)
        })
        .collect();
    assert_eq!(assert_round_trip(&cpu).value_encoding(), ValueEncoding::Xor);
    let small = build(&cpu).seal_smallest();
    assert!(
        matches!(
            small.value_encoding(),
            ValueEncoding::Fitted {
                decimals: 2,
                mul: true,
                ..
            }
        ),
        "{:?}",
        small.value_encoding()
    );
    // 8-bit noise around a 1500 step: about a byte and a bit a sample.
    assert!(vals_len(&small) < n * 10 / 8, "{} bytes", vals_len(&small));
    // A decimal series ending in a staleness marker keeps its scale.
    let mut gauge: Vec<(i64, f64)> = (0..n)
        .map(|i| {
            (
                i as i64 * 15_000,
                (60_000 + (i as i64 * 31) % 900) as f64 / 1000.0,
            )
        })
        .collect();
    gauge[n - 1].1 = f64::from_bits(STALE_NAN_BITS);
    assert_eq!(
        assert_round_trip(&gauge).value_encoding(),
        ValueEncoding::Xor
    );
    let small = build(&gauge).seal_smallest();
    assert!(
        matches!(
            small.value_encoding(),
            ValueEncoding::Fitted {
                decimals: 3,
                mul: false,
                ..
            }
        ),
        "{:?}",
        small.value_encoding()
    );
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
    f(&|b| b[0] = 3, ChunkError::UnsupportedVersion { found: 3 });
    f(&|b| b[0] = 0, ChunkError::UnsupportedVersion { found: 0 });
    // Encoding 3 came with version 2; a version 1 chunk cannot have it.
    f(
        &|b| b[0..4].copy_from_slice(&[1, 3, 0, 0]),
        ChunkError::BadValueEncoding {
            offset: 1,
            found: 3,
        },
    );
    f(
        &|b| b[1..4].copy_from_slice(&[3, 10, 0]),
        ChunkError::BadValueEncoding {
            offset: 2,
            found: 10,
        },
    );
    f(
        &|b| b[1..4].copy_from_slice(&[3, 2, 4]),
        ChunkError::BadValueEncoding {
            offset: 3,
            found: 4,
        },
    );
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

/// Values Prometheus can store that no decimal scale reproduces.
const ODD_BITS: [u64; 9] = [
    STALE_NAN_BITS,
    0x7ff8_0000_0000_0000, // the default NaN
    0xfff8_0000_0000_0001, // a negative NaN with a payload
    0x7ff0_dead_beef_0001, // a signalling NaN
    0x7ff0_0000_0000_0000, // +Inf
    0xfff0_0000_0000_0000, // -Inf
    0x8000_0000_0000_0000, // -0.0
    1,                     // the smallest subnormal
    0x3fd3_3333_3333_3334, // 0.1 + 0.2
];

fn sample_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (-1000i64..1000).prop_map(|i| i as f64),
        (-100_000i64..100_000, 0u8..4).prop_map(|(i, k)| i as f64 / 10f64.powi(k as i32)),
        // A tick count times a resolution, as some exporters compute it:
        // often not what parsing the decimal text gives.
        (-100_000_000i64..100_000_000, 0usize..10).prop_map(
            |(i, k)| i as f64 * [1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9][k]
        ),
        prop::sample::select(ODD_BITS.to_vec()).prop_map(f64::from_bits),
    ]
}

/// A series shaped like a scraped counter or gauge (steady steps with
/// noise, often repeating, at one decimal scale) with a few values no scale
/// reproduces: what fitted columns with exceptions are for.
fn mostly_scaled_series() -> impl Strategy<Value = Vec<(i64, f64)>> {
    (
        -1_000_000_000i64..1_000_000_000,
        0i64..5000,
        0i64..200,
        0usize..10,
        any::<bool>(),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                prop::sample::select(ODD_BITS.to_vec()),
            ),
            0..6,
        ),
        2usize..1500,
    )
        .prop_map(|(start, step, noise, k, mul, odd, n)| {
            let (mut x, mut seed) = (start, start as u64 | 1);
            let mut out: Vec<(i64, f64)> = (0..n)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    if seed % 3 != 0 {
                        x += step + (seed >> 8) as i64 % (noise + 1);
                    }
                    let v = if mul {
                        x as f64 * [1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9][k]
                    } else {
                        x as f64 / 10f64.powi(k as i32)
                    };
                    (1_700_000_000_000 + i as i64 * 15_000, v)
                })
                .collect();
            for (at, b) in odd {
                let i = at.index(out.len());
                out[i].1 = f64::from_bits(b);
            }
            out
        })
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
    fn mostly_scaled_series_round_trip_and_fit_with_exceptions(samples in mostly_scaled_series()) {
        assert_round_trip(&samples);
        let mut b = build(&samples);
        let c = b.seal_smallest();
        let odd = samples
            .iter()
            .filter(|s| ODD_BITS.contains(&s.1.to_bits()))
            .count();
        // A handful of odd values among hundreds of scaled ones keeps the
        // chunk in a scaled encoding.
        if samples.len() >= 200 && odd <= 5 {
            prop_assert!(
                !matches!(c.value_encoding(), ValueEncoding::Xor),
                "{:?} with {odd} odd values of {}",
                c.value_encoding(),
                samples.len()
            );
        }
    }

    #[test]
    fn random_bytes_after_a_fitted_header_never_panic(
        decimals in 0u8..10,
        flags in 0u8..4,
        count in 0u32..2000,
        ts_len in 0u32..64,
        rest in prop::collection::vec(any::<u8>(), 0..300)
    ) {
        let mut b = vec![VERSION, 3, decimals, flags];
        b.extend_from_slice(&count.to_le_bytes());
        b.extend_from_slice(&0i64.to_le_bytes());
        b.extend_from_slice(&1_000_000i64.to_le_bytes());
        b.extend_from_slice(&ts_len.to_le_bytes());
        b.extend_from_slice(&rest);
        if let Ok(c) = Chunk::from_bytes(b.into()) {
            prop_assert!(c.iter().count() <= c.len());
            let _ = c.iter().seek(500_000);
        }
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
    fn corrupting_a_valid_chunk_never_panics(samples in series(), smallest in any::<bool>(), flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4)) {
        let mut b = build(&samples);
        let c = if smallest { b.seal_smallest() } else { b.seal() };
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
