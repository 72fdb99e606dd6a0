//! What a cardinality analysis (`/api/v1/status/tsdb`, the web page's
//! first view) allocates while it runs, counted by a global allocator: its
//! tables must hold the heads' interned strings, not copies of every label
//! string, or a 10M-series head pays hundreds of MiB per page load. With
//! copies this workload peaked at 304 bytes per distinct pair; with shared
//! `Arc<str>` keys and a bounded top-N selection, 138 (hash tables only).
//!
//! Its own test binary: the counting allocator sees only this test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use tessera_tsdb::{Db, Labels, Sample};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn analysis_costs_dozens_of_bytes_per_pair_not_string_copies() {
    // GPU-fleet-like labels with long values (UUIDs, pod names): 40,000
    // series, each with a unique pod and UUID, half of them churned.
    let db = Db::in_memory(4);
    let n = 40_000u32;
    for i in 0..n {
        let ls = Labels::from_pairs([
            ("__name__", "DCGM_FI_DEV_GPU_UTIL".to_string()),
            (
                "Hostname",
                format!("gpu-node-{:05}.cluster.example.com", i / 8),
            ),
            ("gpu", (i % 8).to_string()),
            ("UUID", format!("GPU-3f5a1c2e-7b9d-4e61-a8c0-{i:012x}")),
            ("pod", format!("trainer-job-{i:08}-worker-abcdef")),
            ("namespace", "training".to_string()),
        ]);
        // Every other series stops after the first hour: churn.
        let end = if i % 2 == 0 { 3_600_000 } else { 7_200_000 };
        for t in (0..=end).step_by(1_800_000) {
            db.append(&ls, &[Sample::new(t, 1.0)]).unwrap();
        }
    }
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let a = db.analyze(10);
    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert_eq!(a.series, u64::from(n));
    assert_eq!(a.churned_series, u64::from(n / 2));
    let per_pair = peak / a.label_pairs as usize;
    println!(
        "analysis of {n} series, {} distinct pairs: peak {peak} bytes allocated, {per_pair} per pair",
        a.label_pairs
    );
    assert!(
        per_pair < 200,
        "{per_pair} bytes per distinct pair: the tables copy label strings"
    );
}
