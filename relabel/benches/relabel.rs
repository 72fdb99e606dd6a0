//! Relabel cost per series on a dcgm-exporter-shaped series (13 labels)
//! with a realistic ingest rule set, and with rules that all miss.
//!
//! Run: `cargo bench -p tessera-relabel --bench relabel`. The label set is
//! cloned outside the timed section (`iter_batched`), so the numbers are
//! relabeling alone.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tessera_relabel::{Outcome, RelabelConfigs, Scratch};
use tessera_tsdb::Labels;

/// What an operator of a GPU fleet puts in front of the store: drop noisy
/// metrics, rename the host label, shorten the GPU UUID, shard, normalize
/// the model name, drop helper and high-churn labels.
const INGEST_RULES: &str = r#"
- source_labels: [__name__]
  regex: 'DCGM_FI_DEV_(ECC_.*|VGPU_.*|XID_ERRORS_TOTAL)'
  action: drop
- source_labels: [Hostname]
  target_label: node
- source_labels: [UUID]
  regex: 'GPU-([0-9a-f]{8}).*'
  target_label: gpu_uuid_short
- source_labels: [modelName]
  target_label: model
  action: lowercase
- source_labels: [__name__, instance]
  target_label: __tmp_shard
  modulus: 16
  action: hashmod
- source_labels: [__tmp_shard]
  regex: '1[0-5]|[0-9]'
  action: keep
- regex: '__tmp_.*|Hostname|modelName|DCGM_FI_DRIVER_VERSION|pci_bus_id'
  action: labeldrop
"#;

/// Rules that match nothing on a dcgm series: the cost of a miss.
const MISSING_RULES: &str = r#"
- source_labels: [__name__]
  regex: 'node_.*'
  action: drop
- source_labels: [kubernetes_node]
  regex: '(.+)'
  target_label: node
- source_labels: [job]
  regex: 'kube-state-metrics'
  action: drop
- source_labels: [namespace]
  regex: 'kube-system|monitoring'
  action: drop
"#;

fn dcgm_series() -> Labels {
    Labels::from_pairs([
        ("__name__", "DCGM_FI_DEV_GPU_UTIL"),
        ("DCGM_FI_DRIVER_VERSION", "535.129.03"),
        ("Hostname", "gpu-node-0412"),
        ("UUID", "GPU-5fd4a2b1-93c4-7e2a-0b1c-9a8f7e6d5c4b"),
        ("container", "trainer"),
        ("device", "nvidia3"),
        ("gpu", "3"),
        ("instance", "10.42.7.19:9400"),
        ("job", "dcgm-exporter"),
        ("modelName", "NVIDIA H100 80GB HBM3"),
        ("namespace", "ml-train"),
        ("pci_bus_id", "00000000:3B:00.0"),
        ("pod", "trainer-7f9c6d5b8-x2kqp"),
    ])
}

fn bench(c: &mut Criterion) {
    let series = dcgm_series();
    for (name, yaml) in [
        ("ingest_rules", INGEST_RULES),
        ("rules_that_miss", MISSING_RULES),
    ] {
        let rules = RelabelConfigs::from_yaml(yaml).expect("bench rules parse");
        let mut check = series.clone();
        assert_eq!(rules.apply(&mut check), Outcome::Keep, "{name}");
        let mut scratch = Scratch::default();
        c.bench_function(&format!("relabel/dcgm_13_labels/{name}"), |b| {
            b.iter_batched_ref(
                || series.clone(),
                |ls| black_box(rules.apply_with(ls, &mut scratch)),
                BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
