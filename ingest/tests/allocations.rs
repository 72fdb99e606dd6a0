//! Allocation counts on the decode path, measured with a counting global
//! allocator: a decompression bomb must be refused without allocating, and
//! validation must not allocate per sample.
//!
//! Its own test binary, because the global allocator is process-wide; counts
//! are per thread so the test harness' parallel threads do not interfere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use prost::Message;
use tessera_ingest::proto;
use tessera_ingest::{DecodeLimits, decode_v1, decode_v2, validate, validate_v2};

struct Counting;

thread_local! {
    // const-initialised and without Drop, so touching it from inside the
    // allocator never allocates or registers a destructor.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged from our caller's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (including reallocations) made by `f` on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let before = ALLOCS.with(Cell::get);
    let out = f();
    (ALLOCS.with(Cell::get) - before, out)
}

fn request(series: usize, samples_per_series: usize) -> Vec<u8> {
    let req = proto::WriteRequest {
        timeseries: (0..series)
            .map(|i| proto::TimeSeries {
                labels: [
                    ("__name__", "DCGM_FI_DEV_GPU_UTIL".to_string()),
                    ("gpu", (i % 8).to_string()),
                    ("Hostname", format!("gpu-node-{:04}", i / 8)),
                    ("job", "dcgm-exporter".to_string()),
                ]
                .into_iter()
                .map(|(n, v)| proto::Label {
                    name: n.as_bytes().to_vec(),
                    value: v.into_bytes(),
                })
                .collect(),
                samples: (0..samples_per_series)
                    .map(|j| proto::Sample {
                        value: j as f64,
                        timestamp: j as i64 * 15_000,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        metadata: vec![],
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

#[test]
fn decompression_bombs_are_refused_without_allocating() {
    let limits = DecodeLimits::default();
    let f = |body: &[u8]| {
        let (n, res) = allocations(|| decode_v1(body, &limits).map(|_| ()));
        assert!(res.is_err(), "{body:x?} decoded");
        assert_eq!(n, 0, "{body:x?} allocated {n} times");
    };
    f(&[0x80, 0x80, 0x80, 0x80, 0x10, 0xde, 0xad]); // 4 GiB, over snappy's u32
    f(&[0x80, 0x80, 0x80, 0x80, 0x0f, 0xde, 0xad]); // 3.75 GiB, only our limit
    f(&[0x81, 0x80, 0x80, 0x10, 0x00]); // 32 MiB + 1
    f(&[0x80, 0x80, 0x40, 0x00, 0x01, 0x02, 0x03]); // 1 MiB from 7 bytes
}

#[test]
fn requests_over_the_memory_budget_are_refused_before_their_vectors_exist() {
    // 512k empty series: 1 MiB of protobuf, 48 MiB of TimeSeries structs.
    let body = snap::raw::Encoder::new()
        .compress_vec(&[0x0a, 0x00].repeat(512 << 10))
        .unwrap();
    let limits = DecodeLimits {
        max_decoded_bytes: 1 << 20,
        ..DecodeLimits::default()
    };
    let (n, res) = allocations(|| decode_v1(&body, &limits).map(|_| ()));
    assert!(res.is_err());
    // The decompression buffer only.
    assert_eq!(n, 1);
}

#[test]
fn validation_allocations_do_not_grow_with_samples() {
    let limits = DecodeLimits::default();
    let count = |samples: usize| {
        let body = request(100, samples);
        let (decode, req) = allocations(|| decode_v1(&body, &limits).unwrap());
        let (valid, out) = allocations(|| validate(req, &limits));
        assert_eq!(out.sample_count(), 100 * samples);
        (decode, valid)
    };
    // Warm the thread-local decompression buffer to the larger size first so
    // its one-off growth is not charged to either run.
    count(1000);
    let (decode_1, valid_1) = count(1);
    let (decode_1000, valid_1000) = count(1000);
    eprintln!(
        "allocations for 100 series: decode {decode_1} (1 sample each) vs {decode_1000} \
         (1000 samples each); validate {valid_1} vs {valid_1000}"
    );
    // One allocation per label name and value (4 labels), one label vector
    // and one sample vector per series, plus two per request (decompression
    // buffer, series vector). prost from `&[u8]` makes 1806 / 2606 here: a
    // temporary copy per label field, and vectors grown by doubling.
    assert_eq!(decode_1, 100 * (8 + 2) + 2);
    // Vectors are sized from a pre-count of their fields, so sample count
    // does not change the number of allocations at all.
    assert_eq!(decode_1000, decode_1);
    // Validation allocates per series (label vector, sample vector), never
    // per sample.
    assert_eq!(valid_1, valid_1000);
}

/// The same request as [`request`], in remote write 2.0.
fn request_v2(series: usize, samples_per_series: usize) -> Vec<u8> {
    use tessera_ingest::proto_v2 as pb;
    let mut symbols = vec![
        String::new(),
        "__name__".into(),
        "DCGM_FI_DEV_GPU_UTIL".into(),
        "gpu".into(),
        "Hostname".into(),
        "job".into(),
        "dcgm-exporter".into(),
    ];
    let mut sym = |s: String| match symbols.iter().position(|x| *x == s) {
        Some(i) => i as u32,
        None => {
            symbols.push(s);
            (symbols.len() - 1) as u32
        }
    };
    let timeseries = (0..series)
        .map(|i| pb::TimeSeries {
            labels_refs: vec![
                1,
                2,
                3,
                sym((i % 8).to_string()),
                4,
                sym(format!("gpu-node-{:04}", i / 8)),
                5,
                6,
            ],
            samples: (0..samples_per_series)
                .map(|j| pb::Sample {
                    value: j as f64,
                    timestamp: j as i64 * 15_000,
                    start_timestamp: 0,
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    let req = pb::Request {
        symbols: symbols.into_iter().map(String::into_bytes).collect(),
        timeseries,
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

#[test]
fn v2_bombs_are_refused_without_allocating_and_validation_does_not_allocate_per_sample() {
    let limits = DecodeLimits::default();
    let (n, res) = allocations(|| decode_v2(&[0x81, 0x80, 0x80, 0x10, 0x00], &limits).map(|_| ()));
    assert!(res.is_err());
    assert_eq!(n, 0, "a 32 MiB + 1 snappy header allocated {n} times");

    let count = |samples: usize| {
        let body = request_v2(100, samples);
        let (decode, req) = allocations(|| decode_v2(&body, &limits).unwrap());
        let (valid, out) = allocations(|| validate_v2(req, &limits).unwrap());
        assert_eq!(out.sample_count(), 100 * samples);
        (decode, valid)
    };
    let (decode_1, valid_1) = count(1);
    let (decode_1000, valid_1000) = count(1000);
    eprintln!(
        "2.0 allocations for 100 series: decode {decode_1} vs {decode_1000}; \
         validate {valid_1} vs {valid_1000}"
    );
    // Per symbol one copy (27: "" allocates nothing); per series its refs
    // and sample vectors; per request the decompression buffer and the two
    // top-level vectors: nothing per sample.
    assert_eq!(decode_1, 27 + 100 * 2 + 3);
    assert_eq!(decode_1000, decode_1);
    // Resolution copies each label name and value (4 labels) and makes a
    // label and a sample vector per series, as 1.0's decoder does; then
    // the same validation as 1.0 (2 per series, 1 per request).
    assert_eq!(valid_1, 100 * (8 + 2) + 100 * 2 + 1);
    assert_eq!(valid_1000, valid_1);
}
