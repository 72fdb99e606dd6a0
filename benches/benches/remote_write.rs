//! Remote write 1.0 receive path: decode (snappy + protobuf) and validation
//! of a request shaped like Prometheus' default batch of dcgm-exporter data
//! (`max_samples_per_send: 2000`, one sample per series).
//!
//! Run: `CARGO_TARGET_DIR=/work/targets/ingest cargo bench -p tessera-bench
//! --bench remote_write -- --quick`. Throughput is in samples (= series here)
//! per second on one core.
//!
//! `decode_prost` (snappy, then prost) is the baseline for decode_v1's own
//! protobuf reader; `snappy_only` is the decompression part of both.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use tessera_ingest::proto;
use tessera_ingest::{DecodeLimits, decode_v1, validate};

const SERIES: usize = 2000;

const METRICS: [&str; 10] = [
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_MEMORY_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
];

/// 2000 dcgm-exporter series: 25 hosts x 8 GPUs x 10 metrics, labels in the
/// order dcgm-exporter and Prometheus' kubernetes SD emit them (unsorted).
fn dcgm_request() -> proto::WriteRequest {
    let mut timeseries = Vec::with_capacity(SERIES);
    for i in 0..SERIES {
        let metric = METRICS[i % METRICS.len()];
        let gpu = (i / METRICS.len()) % 8;
        let host = i / (METRICS.len() * 8);
        let labels = [
            ("__name__", metric.to_string()),
            ("gpu", gpu.to_string()),
            ("UUID", format!("GPU-{host:08x}-6c2b-4d6e-9a1f-{gpu:012x}")),
            ("device", format!("nvidia{gpu}")),
            ("modelName", "NVIDIA H100 80GB HBM3".to_string()),
            ("Hostname", format!("gpu-node-{host:04}")),
            ("container", "pytorch".to_string()),
            ("namespace", "ml-training".to_string()),
            ("pod", format!("trainer-{host}-{gpu}-7f9c5d")),
            (
                "instance",
                format!("10.42.{}.{}:9400", host / 256, host % 256),
            ),
            ("job", "dcgm-exporter".to_string()),
        ];
        timeseries.push(proto::TimeSeries {
            labels: labels
                .into_iter()
                .map(|(n, v)| proto::Label {
                    name: n.as_bytes().to_vec(),
                    value: v.into_bytes(),
                })
                .collect(),
            samples: vec![proto::Sample {
                value: 37.0 + (i % 60) as f64 * 0.5,
                timestamp: 1_732_000_000_000 + (i % 15) as i64,
            }],
            ..Default::default()
        });
    }
    proto::WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

fn bench_remote_write(c: &mut Criterion) {
    let req = dcgm_request();
    let pb = req.encode_to_vec();
    let body = snap::raw::Encoder::new().compress_vec(&pb).unwrap();
    let limits = DecodeLimits::default();
    eprintln!(
        "request: {SERIES} series x 1 sample, {} bytes protobuf, {} bytes snappy",
        pb.len(),
        body.len()
    );

    let mut g = c.benchmark_group("remote_write_v1");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("decode_validate", |b| {
        b.iter(|| {
            let req = decode_v1(black_box(&body), &limits).unwrap();
            black_box(validate(req, &limits))
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| black_box(decode_v1(black_box(&body), &limits).unwrap()))
    });
    // The straightforward implementation, snappy then prost, as the
    // baseline for decode_v1's own protobuf reader.
    g.bench_function("decode_prost", |b| {
        b.iter(|| {
            let raw = snap::raw::Decoder::new()
                .decompress_vec(black_box(&body))
                .unwrap();
            black_box(proto::WriteRequest::decode(raw.as_slice()).unwrap())
        })
    });
    g.bench_function("snappy_only", |b| {
        let mut out = vec![0u8; pb.len()];
        b.iter(|| {
            snap::raw::Decoder::new()
                .decompress(black_box(&body), &mut out)
                .unwrap()
        })
    });
    g.bench_function("validate", |b| {
        b.iter_batched(
            || req.clone(),
            |r| black_box(validate(r, &limits)),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_remote_write);
criterion_main!(benches);
