//! Chunk codec: encode (append 120 samples + seal) and decode (iterate a
//! sealed chunk) for dcgm-exporter and node-exporter shaped series, plus the
//! bytes per sample each shape compresses to.
//!
//! Values are generated as `integer / 10^k`, which is bit-for-bit what
//! Prometheus gets when it parses a `k`-decimal exposition line, so the
//! chunk's decimal modes see what they would see in production. Timestamps
//! are a 15 s scrape interval with ±3 ms jitter.
//!
//! Run: `cargo bench -p tessera-bench --bench chunk -- --quick`
//! (bytes/sample are printed first).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tessera_tsdb::chunk::{Chunk, ChunkBuilder};

const SAMPLES: usize = 120;
const CHUNKS: usize = 64;

/// xorshift64*: deterministic, dependency-free, good enough for shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform integer in `lo..=hi`.
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

fn timestamps(rng: &mut Rng) -> impl Iterator<Item = i64> + '_ {
    let start = 1_764_000_000_000 + rng.int(0, 14_999);
    (0..SAMPLES as i64).map(move |i| start + i * 15_000 + rng.int(-3, 3))
}

/// One shape: a generator of a series' values for one chunk.
struct Shape {
    name: &'static str,
    values: fn(&mut Rng) -> Vec<f64>,
}

/// DCGM_FI_DEV_GPU_UTIL: integer percent, wandering with occasional jumps
/// when a kernel mix changes.
fn gpu_util(rng: &mut Rng) -> Vec<f64> {
    let mut v = rng.int(0, 100);
    (0..SAMPLES)
        .map(|_| {
            v = if rng.int(0, 9) == 0 {
                rng.int(0, 100)
            } else {
                (v + rng.int(-6, 6)).clamp(0, 100)
            };
            v as f64
        })
        .collect()
}

/// DCGM_FI_DEV_POWER_USAGE: watts with 3 decimals, noisy around a load level.
fn power_w(rng: &mut Rng) -> Vec<f64> {
    let base = rng.int(60_000, 400_000);
    let mut v = base;
    (0..SAMPLES)
        .map(|_| {
            v = (v + rng.int(-8_000, 8_000) + (base - v) / 4).max(20_000);
            v as f64 / 1000.0
        })
        .collect()
}

/// DCGM_FI_DEV_GPU_TEMP: integer degrees, moving by at most one a scrape.
fn temp_c(rng: &mut Rng) -> Vec<f64> {
    let mut v = rng.int(35, 80);
    (0..SAMPLES)
        .map(|_| {
            if rng.int(0, 3) == 0 {
                v = (v + rng.int(-1, 1)).clamp(30, 90);
            }
            v as f64
        })
        .collect()
}

/// node_cpu_seconds_total: USER_HZ ticks / 100, growing 15 s × a busy
/// fraction per scrape.
fn cpu_seconds(rng: &mut Rng) -> Vec<f64> {
    let mut ticks = rng.int(1_000_000, 5_000_000_000);
    let busy = rng.int(1, 99);
    (0..SAMPLES)
        .map(|_| {
            ticks += 15 * busy + rng.int(-15, 15).max(-15 * busy);
            ticks as f64 / 100.0
        })
        .collect()
}

/// node_network_receive_bytes_total: integer bytes, bursty increments.
fn net_bytes(rng: &mut Rng) -> Vec<f64> {
    let mut b = rng.int(1 << 30, 1 << 44);
    let rate = rng.int(1_000, 50_000_000);
    (0..SAMPLES)
        .map(|_| {
            b += rng.int(rate / 2, rate * 3 / 2);
            b as f64
        })
        .collect()
}

/// A non-decimal gauge (a computed ratio), which stays in XOR mode.
fn ratio(rng: &mut Rng) -> Vec<f64> {
    let mut v = 0.5f64;
    (0..SAMPLES)
        .map(|_| {
            v = (v + (rng.int(-1000, 1000) as f64) / 7919.0).clamp(0.0, 1.0);
            v
        })
        .collect()
}

const SHAPES: [Shape; 6] = [
    Shape {
        name: "dcgm_gpu_util",
        values: gpu_util,
    },
    Shape {
        name: "dcgm_power_w",
        values: power_w,
    },
    Shape {
        name: "dcgm_temp_c",
        values: temp_c,
    },
    Shape {
        name: "node_cpu_seconds",
        values: cpu_seconds,
    },
    Shape {
        name: "node_net_bytes",
        values: net_bytes,
    },
    Shape {
        name: "ratio_float",
        values: ratio,
    },
];

/// `CHUNKS` chunks' worth of samples for one shape.
fn series(shape: &Shape) -> Vec<Vec<(i64, f64)>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ shape.name.len() as u64);
    (0..CHUNKS)
        .map(|_| {
            let vals = (shape.values)(&mut rng);
            timestamps(&mut rng).zip(vals).collect()
        })
        .collect()
}

fn seal(samples: &[(i64, f64)], b: &mut ChunkBuilder) -> Chunk {
    for &(t, v) in samples {
        b.append(t, v);
    }
    b.seal()
}

/// Bits of a Gorilla XOR value column (Prometheus' chunkenc values).
fn xor_bits(values: impl Iterator<Item = f64>) -> u64 {
    let (mut bits, mut prev, mut window) = (0u64, 0u64, None::<(u32, u32)>);
    for (n, v) in values.enumerate() {
        let x = v.to_bits() ^ prev;
        prev = v.to_bits();
        bits += match (n, x) {
            (0, _) => 64,
            (_, 0) => 1,
            _ => {
                let (lead, trail) = (x.leading_zeros().min(31), x.trailing_zeros());
                match window {
                    Some((l, t)) if lead >= l && trail >= t => u64::from(2 + 64 - l - t),
                    _ => {
                        window = Some((lead, trail));
                        u64::from(2 + 5 + 6 + 64 - lead - trail)
                    }
                }
            }
        };
    }
    bits
}

/// Bytes Prometheus' chunkenc XOR chunk would take for `samples`: a 2-byte
/// count, t0 as a varint, the first delta as a uvarint, dods in its
/// 14/17/20/64-bit buckets behind 1-4 bit prefixes, interleaved with the
/// XOR values. For comparison only.
fn chunkenc_estimate(samples: &[(i64, f64)]) -> usize {
    let varint_bytes = |u: u64| (64 - u.leading_zeros()).max(1).div_ceil(7) as usize;
    let mut bits = 0u64;
    let mut prev_delta = 0i64;
    for (n, w) in samples.windows(2).enumerate() {
        let delta = w[1].0 - w[0].0;
        if n == 0 {
            bits += 8 * varint_bytes(delta as u64) as u64;
        } else {
            let dod = delta - prev_delta;
            let fits = |b: u32| -(1i64 << (b - 1)) < dod && dod <= 1i64 << (b - 1);
            bits += match dod {
                0 => 1,
                _ if fits(14) => 2 + 14,
                _ if fits(17) => 3 + 17,
                _ if fits(20) => 4 + 20,
                _ => 4 + 64,
            };
        }
        prev_delta = delta;
    }
    let t0 = samples[0].0;
    bits += xor_bits(samples.iter().map(|s| s.1));
    2 + varint_bytes(((t0 << 1) ^ (t0 >> 63)) as u64) + bits.div_ceil(8) as usize
}

/// CPU time of this thread: the machine is shared, and wall-clock figures
/// swing with other processes' load while CPU time does not.
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Samples per CPU-second of `f`, which processes `samples` samples a call.
fn cpu_rate(samples: usize, mut f: impl FnMut()) -> f64 {
    let start = thread_cpu_secs();
    let mut calls = 0;
    while thread_cpu_secs() - start < 0.3 {
        f();
        calls += 1;
    }
    (calls * samples) as f64 / (thread_cpu_secs() - start)
}

/// Prints bytes/sample of the sealed chunks (header included), of their
/// timestamp column alone, of the open chunk just before sealing (what the
/// head holds per series), and of Prometheus' chunkenc estimate, with encode and decode rates in thread CPU
/// time; checks the round trip.
fn report_sizes() {
    println!(
        "chunk codec, {SAMPLES}-sample chunks (28-byte header included), rates per thread CPU-second:"
    );
    println!(
        "{:<18} {:>8} {:>8} {:>9} {:>9} {:>11} {:>11}  value encoding",
        "shape", "B/sample", "ts part", "open", "chunkenc", "enc Msam/s", "dec Msam/s"
    );
    for shape in &SHAPES {
        let data = series(shape);
        let mut b = ChunkBuilder::new();
        let (mut sealed, mut open, mut ts, mut prom) = (0, 0, 0, 0);
        let mut chunks = Vec::new();
        for s in &data {
            for &(t, v) in s {
                b.append(t, v);
            }
            open += b.encoded_len();
            let c = b.seal();
            sealed += c.as_bytes().len();
            // Header bytes 24..28: the timestamp column's length.
            let h = c.as_bytes();
            let ts_len = u32::from_le_bytes([h[24], h[25], h[26], h[27]]) as usize;
            ts += ts_len;
            prom += chunkenc_estimate(s);
            let back: Vec<(i64, u64)> = c.iter().map(|(t, v)| (t, v.to_bits())).collect();
            let want: Vec<(i64, u64)> = s.iter().map(|&(t, v)| (t, v.to_bits())).collect();
            assert_eq!(back, want, "{} round trip", shape.name);
            chunks.push(c);
        }
        let n = CHUNKS * SAMPLES;
        let enc = cpu_rate(n, || {
            for s in &data {
                black_box(seal(s, &mut b));
            }
        });
        let dec = cpu_rate(n, || {
            for c in &chunks {
                for s in c.iter() {
                    black_box(s);
                }
            }
        });
        println!(
            "{:<18} {:>8.3} {:>8.3} {:>9.3} {:>9.3} {:>11.1} {:>11.1}  {:?}",
            shape.name,
            sealed as f64 / n as f64,
            ts as f64 / n as f64,
            open as f64 / n as f64,
            prom as f64 / n as f64,
            enc / 1e6,
            dec / 1e6,
            chunks[0].value_encoding()
        );
    }
}

fn bench(c: &mut Criterion) {
    report_sizes();
    let mut enc = c.benchmark_group("chunk_encode");
    enc.throughput(Throughput::Elements((CHUNKS * SAMPLES) as u64));
    for shape in &SHAPES {
        let data = series(shape);
        let mut b = ChunkBuilder::new();
        enc.bench_with_input(
            BenchmarkId::from_parameter(shape.name),
            &data,
            |bench, data| {
                bench.iter(|| {
                    for s in data {
                        black_box(seal(s, &mut b));
                    }
                })
            },
        );
    }
    enc.finish();

    let mut dec = c.benchmark_group("chunk_decode");
    dec.throughput(Throughput::Elements((CHUNKS * SAMPLES) as u64));
    for shape in &SHAPES {
        let mut b = ChunkBuilder::new();
        let chunks: Vec<Chunk> = series(shape).iter().map(|s| seal(s, &mut b)).collect();
        dec.bench_with_input(
            BenchmarkId::from_parameter(shape.name),
            &chunks,
            |bench, chunks| {
                bench.iter(|| {
                    let mut acc = 0f64;
                    for c in chunks {
                        for (t, v) in c.iter() {
                            acc += v + t as f64;
                        }
                    }
                    black_box(acc)
                })
            },
        );
    }
    dec.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
