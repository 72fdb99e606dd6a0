//! Size and speed figures of the block format on dcgm/node-exporter shaped
//! data, printed by an ignored test:
//! `cargo test --release -p tessera-tsdb block::measure -- --ignored --nocapture`
//! (the "synthetic noisy data" figures in `docs/format/block.md` come from
//! it; those on the bench harness' fleet from `tessera-bench block-size`).

use super::tests::{Data, Rng, write_block};
use super::*;
use crate::{Labels, ReadControl, Sample};

/// dcgm-exporter-like gauges and node-exporter-like counters: 15 s scrapes
/// with a few ms of jitter over 2 h; series per kind as on one 8-GPU node.
fn fleet_like(nodes: usize, jitter_ms: u64) -> (Data, Data) {
    let mut rng = Rng::new(42);
    let (mut gauges, mut counters) = (Data::new(), Data::new());
    let n = 480;
    for node in 0..nodes {
        // One scrape stamps every series of a target with the same
        // timestamp, so jitter is per node and scrape, not per series.
        let jitter: Vec<i64> = (0..n)
            .map(|_| {
                if jitter_ms == 0 {
                    0
                } else {
                    rng.below(2 * jitter_ms + 1) as i64 - jitter_ms as i64
                }
            })
            .collect();
        let ts = |_: &mut Rng, i: i64| i * 15_000 + jitter[i as usize];
        let host = format!("node-{node:04}");
        for gpu in 0..8 {
            let mut util = rng.below(100) as i64;
            let mut temp = 55 + rng.below(15) as i64;
            let mut fb = 20_000 + rng.below(40_000) as i64;
            let clock = [1410, 1980][gpu % 2];
            let mut energy = rng.below(1 << 30) as i64;
            for metric in [
                "DCGM_FI_DEV_GPU_UTIL",
                "DCGM_FI_DEV_GPU_TEMP",
                "DCGM_FI_DEV_POWER_USAGE",
                "DCGM_FI_DEV_SM_CLOCK",
                "DCGM_FI_DEV_FB_USED",
                "DCGM_FI_DEV_XID_ERRORS",
                "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
            ] {
                let labels = Labels::from_pairs([
                    ("__name__", metric),
                    ("Hostname", &host),
                    ("gpu", &gpu.to_string()),
                    ("UUID", &format!("GPU-{node:04}-{gpu}")),
                    ("modelName", "NVIDIA H100 80GB HBM3"),
                ]);
                let mut s = Vec::with_capacity(n);
                for i in 0..n as i64 {
                    let v = match metric {
                        "DCGM_FI_DEV_GPU_UTIL" => {
                            util = (util + rng.below(21) as i64 - 10).clamp(0, 100);
                            util as f64
                        }
                        "DCGM_FI_DEV_GPU_TEMP" => {
                            if rng.below(4) == 0 {
                                temp += rng.below(3) as i64 - 1;
                            }
                            temp as f64
                        }
                        "DCGM_FI_DEV_POWER_USAGE" => {
                            (300_000 + rng.below(200_000) as i64) as f64 / 1000.0
                        }
                        "DCGM_FI_DEV_SM_CLOCK" => clock as f64,
                        "DCGM_FI_DEV_FB_USED" => {
                            if rng.below(10) == 0 {
                                fb += rng.below(2001) as i64 - 1000;
                            }
                            fb as f64
                        }
                        "DCGM_FI_DEV_XID_ERRORS" => 0.0,
                        _ => {
                            energy += 15 * (300_000 + rng.below(200_000) as i64);
                            energy as f64
                        }
                    };
                    s.push(Sample::new(ts(&mut rng, i), v));
                }
                gauges.insert(labels, s);
            }
        }
        let mut add_counter =
            |labels: Labels, step: &dyn Fn(&mut Rng) -> i64, scale: f64, rng: &mut Rng| {
                let mut acc = rng.below(1 << 40) as i64;
                let s = (0..n as i64)
                    .map(|i| {
                        acc += step(rng);
                        Sample::new(ts(rng, i), acc as f64 / scale)
                    })
                    .collect();
                counters.insert(labels, s);
            };
        for cpu in 0..16 {
            for mode in ["idle", "iowait", "system", "user"] {
                let labels = Labels::from_pairs([
                    ("__name__", "node_cpu_seconds_total"),
                    ("instance", &*host),
                    ("cpu", &*cpu.to_string()),
                    ("mode", mode),
                ]);
                // Centiseconds: ~15 s per scrape split across modes.
                let step = move |r: &mut Rng| match mode {
                    "idle" => 1000 + r.below(400) as i64,
                    "user" => 200 + r.below(300) as i64,
                    _ => r.below(40) as i64,
                };
                add_counter(labels, &step, 100.0, &mut rng);
            }
        }
        for dev in ["eth0", "eth1", "ib0", "lo"] {
            for dir in ["receive", "transmit"] {
                let labels = Labels::from_pairs([
                    ("__name__", &*format!("node_network_{dir}_bytes_total")),
                    ("instance", &*host),
                    ("device", dev),
                ]);
                add_counter(
                    labels,
                    &|r: &mut Rng| r.below(50_000_000) as i64,
                    1.0,
                    &mut rng,
                );
            }
        }
    }
    (gauges, counters)
}

/// Bytes Prometheus' XOR (Gorilla) chunks of 120 samples would take in a
/// Prometheus block's chunk files for `samples`: per chunk a length varint,
/// an encoding byte, a 2-byte sample count and a CRC32, then t0 varint, v0
/// raw, delta varint, dod buckets (1/16/20/24/68 bits) and XOR values.
fn gorilla_bytes(samples: &[Sample]) -> usize {
    let mut total = 0;
    for c in samples.chunks(120) {
        let mut bits = 0u64;
        let varint_bits = |v: u64| 8 * (1 + (64 - v.leading_zeros()).saturating_sub(1) / 7) as u64;
        let (mut lead, mut trail) = (u32::MAX, 0u32);
        for (i, x) in c.iter().enumerate() {
            match i {
                0 => bits += varint_bits(((x.t << 1) ^ (x.t >> 63)) as u64) + 64,
                1 => bits += varint_bits((x.t - c[0].t) as u64),
                _ => {
                    let dod = (x.t - c[i - 1].t) - (c[i - 1].t - c[i - 2].t);
                    let fits = |n: u32| -(1i64 << (n - 1)) <= dod && dod < (1i64 << (n - 1));
                    bits += if dod == 0 {
                        1
                    } else if fits(14) {
                        16
                    } else if fits(17) {
                        20
                    } else if fits(20) {
                        24
                    } else {
                        68
                    };
                }
            }
            if i > 0 {
                let xor = x.v.to_bits() ^ c[i - 1].v.to_bits();
                if xor == 0 {
                    bits += 1;
                } else {
                    let (l, t) = (xor.leading_zeros().min(31), xor.trailing_zeros());
                    if lead != u32::MAX && l >= lead && t >= trail {
                        bits += 2 + u64::from(64 - lead - trail);
                    } else {
                        (lead, trail) = (l, t);
                        bits += 2 + 5 + 6 + u64::from(64 - l - t);
                    }
                }
            }
        }
        total += 2 + 1 + 2 + 4 + bits.div_ceil(8) as usize;
    }
    total
}

#[test]
#[ignore = "prints bytes/sample figures; run with --release -- --ignored --nocapture"]
fn measure_bytes_per_sample() {
    let dir = tempfile::tempdir().unwrap();
    for jitter in [0u64, 5] {
        let (gauges, counters) = fleet_like(16, jitter);
        for (kind, data) in [("dcgm gauges", &gauges), ("node counters", &counters)] {
            let n: usize = data.values().map(|s| s.len()).sum();
            let g: usize = data.values().map(|s| gorilla_bytes(s)).sum();
            println!(
                "{kind:13} jitter ±{jitter} ms: Prometheus XOR chunks of 120 samples: {:.3} bytes/sample (chunk files only)",
                g as f64 / n as f64
            );
            for (max, share) in [(120, false), (480, false), (480, true)] {
                let p = dir
                    .path()
                    .join(format!("{kind}-{jitter}-{max}-{share}").replace(' ', "_"));
                let b = write_block(
                    &p,
                    data,
                    BlockOptions {
                        max_chunk_samples: max,
                        share_timestamps: share,
                    },
                );
                let s = b.meta().stats;
                // Where the bytes go: per chunk header + CRC, timestamp
                // column, value column; then the index.
                let (mut ts, mut vals) = (0usize, 0usize);
                for sc in b
                    .select_chunks(&[], i64::MIN, i64::MAX, &ReadControl::unlimited())
                    .unwrap()
                {
                    for c in sc.chunks {
                        let (ts_len, vals_len) = c.column_lens();
                        // A shared column is stored once, with the first chunk.
                        ts += if c.as_chunk_ref().is_some() {
                            ts_len
                        } else {
                            0
                        };
                        vals += vals_len;
                    }
                }
                let chunks = std::fs::metadata(p.join(CHUNKS_FILE)).unwrap().len() as usize;
                let t0 = std::time::Instant::now();
                let read: usize = b
                    .select(&[], i64::MIN, i64::MAX)
                    .unwrap()
                    .iter()
                    .map(|s| s.samples.len())
                    .sum();
                let secs = t0.elapsed().as_secs_f64();
                assert_eq!(read as u64, s.samples);
                let per = |x: usize| x as f64 / s.samples as f64;
                println!(
                    "{kind:13} jitter ±{jitter} ms, {max:3} samples/chunk, shared ts {share:5}: {} series, {} samples: \
                     {:.3} bytes/sample = timestamps {:.3} + values {:.3} + chunk headers/CRCs {:.3} + index {:.3}",
                    s.series,
                    s.samples,
                    per(b.size_bytes() as usize),
                    per(ts),
                    per(vals),
                    per(chunks - ts - vals),
                    per(b.size_bytes() as usize - chunks),
                );
                println!(
                    "    select of everything: {:.0} M samples/s",
                    read as f64 / secs / 1e6
                );
            }
        }
    }
}

/// Decoding speed of the head's encodings (`seal`) against the block
/// writer's (`seal_smallest`) on the same 480-sample chunks, in one process
/// so that machine load hits both alike.
#[test]
#[ignore = "prints decode speeds; run with --release -- --ignored --nocapture"]
fn measure_decode_speed() {
    use crate::chunk::{Chunk, ChunkBuilder};
    let (gauges, counters) = fleet_like(16, 5);
    for (kind, data) in [("dcgm gauges", &gauges), ("node counters", &counters)] {
        let mut b = ChunkBuilder::new();
        let mut seal = |smallest: bool| -> Vec<Chunk> {
            let mut out = Vec::new();
            for s in data.values() {
                for c in s.chunks(480) {
                    for x in c {
                        b.append(x.t, x.v);
                    }
                    out.push(if smallest {
                        b.seal_smallest()
                    } else {
                        b.seal()
                    });
                }
            }
            out
        };
        let (fast, small) = (seal(false), seal(true));
        let bytes = |cs: &[Chunk]| cs.iter().map(|c| c.as_bytes().len()).sum::<usize>();
        let n: usize = data.values().map(|s| s.len()).sum();
        let mut best = [f64::MAX; 2];
        for _ in 0..5 {
            for (i, cs) in [&fast, &small].into_iter().enumerate() {
                let t0 = std::time::Instant::now();
                let mut sum = 0.0;
                for c in cs {
                    for (_, v) in c.iter() {
                        sum += v;
                    }
                }
                std::hint::black_box(sum);
                best[i] = best[i].min(t0.elapsed().as_secs_f64());
            }
        }
        println!(
            "{kind:13}: seal {:.3} bytes/sample, decode {:.0} M samples/s; seal_smallest {:.3} bytes/sample, decode {:.0} M samples/s",
            bytes(&fast) as f64 / n as f64,
            n as f64 / best[0] / 1e6,
            bytes(&small) as f64 / n as f64,
            n as f64 / best[1] / 1e6,
        );
    }
}
