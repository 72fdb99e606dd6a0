//! Rules that do not match must not allocate: relabeling runs once per
//! ingested series. A counting global allocator (per thread, so parallel
//! tests do not interfere) proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tessera_relabel::{Outcome, RelabelConfigs};
use tessera_tsdb::Labels;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

#[test]
fn rules_that_do_not_match_allocate_nothing() {
    let rules = RelabelConfigs::from_yaml(
        r#"
- source_labels: [__name__]
  regex: 'node_.*'
  action: drop
- source_labels: [__name__, gpu]
  regex: '(.+);(9\d)'
  target_label: big_gpu
  replacement: '$2'
- source_labels: [job]
  regex: 'dcgm-exporter'
  action: keep
- source_labels: [pod]
  regex: 'x-(.*)'
  target_label: 'pod_${1}'
- source_labels: [gpu]
  target_label: gpu
- source_labels: [device]
  action: keepequal
  target_label: device
- regex: '__tmp_.*'
  action: labeldrop
- regex: 'x_(.*)'
  action: labelmap
"#,
    )
    .unwrap();
    let mut ls = Labels::from_pairs([
        ("__name__", "DCGM_FI_DEV_GPU_UTIL"),
        ("device", "nvidia3"),
        ("gpu", "3"),
        ("job", "dcgm-exporter"),
        ("pod", "trainer-0"),
    ]);
    let want = ls.clone();
    // The first call sizes the thread-local buffers.
    assert_eq!(rules.apply(&mut ls), Outcome::Keep);
    let n = allocations_during(|| {
        for _ in 0..100 {
            assert_eq!(rules.apply(&mut ls), Outcome::Keep);
        }
    });
    assert_eq!(ls, want);
    assert_eq!(
        n, 0,
        "allocations in 100 applications of non-matching rules"
    );
}

#[test]
fn a_matching_rule_allocates_only_for_the_label_it_writes() {
    let rules =
        RelabelConfigs::from_yaml("- {source_labels: [Hostname], target_label: node}").unwrap();
    let mut ls = Labels::from_pairs([("Hostname", "gpu-1"), ("__name__", "up")]);
    assert_eq!(rules.apply(&mut ls), Outcome::Keep);
    ls.remove("node");
    // Inserting one label: its name, its value, maybe the Vec growing.
    let n = allocations_during(|| {
        assert_eq!(rules.apply(&mut ls), Outcome::Keep);
    });
    assert!((2..=3).contains(&n), "{n} allocations");
    // Setting the value it already has allocates nothing.
    let n = allocations_during(|| {
        assert_eq!(rules.apply(&mut ls), Outcome::Keep);
    });
    assert_eq!(n, 0);
}
