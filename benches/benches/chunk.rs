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

/// Prints bytes/sample of the sealed chunks (header included) next to what
/// the XOR-only encoding would take, and checks the round trip.
fn report_sizes() {
    println!("chunk bytes/sample ({SAMPLES}-sample chunks, 28-byte header included):");
    println!(
        "{:<18} {:>10} {:>10}  value encoding",
        "shape", "sealed", "xor-only"
    );
    for shape in &SHAPES {
        let mut b = ChunkBuilder::new();
        let (mut sealed, mut xor) = (0, 0);
        let mut enc = None;
        for s in series(shape) {
            for &(t, v) in &s {
                b.append(t, v);
            }
            xor += b.encoded_len();
            let c = b.seal();
            sealed += c.as_bytes().len();
            let back: Vec<(i64, u64)> = c.iter().map(|(t, v)| (t, v.to_bits())).collect();
            let want: Vec<(i64, u64)> = s.iter().map(|&(t, v)| (t, v.to_bits())).collect();
            assert_eq!(back, want, "{} round trip", shape.name);
            enc = Some(c.value_encoding());
        }
        let n = (CHUNKS * SAMPLES) as f64;
        println!(
            "{:<18} {:>10.3} {:>10.3}  {:?}",
            shape.name,
            sealed as f64 / n,
            xor as f64 / n,
            enc
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
