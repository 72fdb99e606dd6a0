//! dcgm-exporter's per-GPU series: the counter CSV and the label layout.
//!
//! The metric list comes from dcgm-exporter's `default-counters.csv`
//! (`$TESSERA_FIXTURES/dcgm/`, default `../shared/fixtures/dcgm/`), read at run time so the harness follows the
//! fixture; [`CounterSet::builtin`] is the same 25 metrics + 1 label for
//! when the file is not around. Label rules follow the fixture's README:
//! `gpu, UUID, pci_bus_id, device, modelName, Hostname`, then the CSV's
//! `label` fields, `err_code`/`err_msg` on `DCGM_FI_DEV_XID_ERRORS`, and
//! `pod, namespace, container` on GPUs allocated to a pod.

use std::path::Path;

use super::{Builder, FleetConfig, GpuSlot, Model, Rng, pod_name};

/// A metric's Prometheus type as the CSV spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// The enabled lines of a dcgm-exporter counter CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterSet {
    /// `(field name, type)` of each exported metric, in file order.
    pub metrics: Vec<(String, Kind)>,
    /// Fields of type `label`, attached as labels to every metric.
    pub labels: Vec<String>,
}

const BUILTIN: &str = "\
DCGM_FI_DEV_SM_CLOCK, gauge, x
DCGM_FI_DEV_MEM_CLOCK, gauge, x
DCGM_FI_DEV_MEMORY_TEMP, gauge, x
DCGM_FI_DEV_GPU_TEMP, gauge, x
DCGM_FI_DEV_POWER_USAGE, gauge, x
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, counter, x
DCGM_FI_DEV_PCIE_REPLAY_COUNTER, counter, x
DCGM_FI_DEV_GPU_UTIL, gauge, x
DCGM_FI_DEV_MEM_COPY_UTIL, gauge, x
DCGM_FI_DEV_ENC_UTIL, gauge, x
DCGM_FI_DEV_DEC_UTIL, gauge, x
DCGM_FI_DEV_XID_ERRORS, gauge, x
DCGM_FI_DEV_FB_FREE, gauge, x
DCGM_FI_DEV_FB_USED, gauge, x
DCGM_FI_DEV_FB_RESERVED, gauge, x
DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL, counter, x
DCGM_FI_DEV_VGPU_LICENSE_STATUS, gauge, x
DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS, counter, x
DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS, counter, x
DCGM_FI_DEV_ROW_REMAP_FAILURE, gauge, x
DCGM_FI_DRIVER_VERSION, label, x
DCGM_FI_PROF_GR_ENGINE_ACTIVE, gauge, x
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE, gauge, x
DCGM_FI_PROF_DRAM_ACTIVE, gauge, x
DCGM_FI_PROF_PCIE_TX_BYTES, gauge, x
DCGM_FI_PROF_PCIE_RX_BYTES, gauge, x
";

impl CounterSet {
    /// dcgm-exporter 4.8.2's `default-counters.csv`: 20 gauges, 5 counters,
    /// one label.
    pub fn builtin() -> Self {
        Self::parse(BUILTIN).expect("built-in list parses")
    }

    /// Parses the exporter's CSV format: `field, type, help`; `#` comments
    /// and blank lines skipped, fields trimmed, exactly three required.
    /// Histogram and summary lines are skipped: DCGM fields are scalars.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut set = CounterSet {
            metrics: Vec::new(),
            labels: Vec::new(),
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if fields.len() != 3 {
                return Err(format!(
                    "line {}: expected 3 comma-separated fields, got {}",
                    i + 1,
                    fields.len()
                ));
            }
            match fields[1] {
                "gauge" => set.metrics.push((fields[0].to_owned(), Kind::Gauge)),
                "counter" => set.metrics.push((fields[0].to_owned(), Kind::Counter)),
                "label" => set.labels.push(fields[0].to_owned()),
                "histogram" | "summary" => {}
                other => return Err(format!("line {}: unknown type {other:?}", i + 1)),
            }
        }
        // The exporter adds label-type fields in sorted name order.
        set.labels.sort();
        Ok(set)
    }

    /// Reads `default-counters.csv` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join("dcgm/default-counters.csv");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

const BUS_IDS: [&str; 8] = ["18", "2A", "3A", "5D", "9A", "AB", "BA", "DB"];
const DRIVER: &str = "570.124.06";
const MODEL: &str = "NVIDIA H100 80GB HBM3";

/// Value model and initial value of a dcgm field on a busy or idle GPU.
/// Gauges hold their value half the time: DCGM samples every 30 s while the
/// Helm chart scrapes every 15 s.
fn model(name: &str, kind: Kind, busy: bool, rng: &Rng) -> (Model, f64) {
    let g = |mean: f64, sigma: f64, min: f64, max: f64, step: f64| {
        (
            Model::Gauge {
                mean,
                sigma,
                min,
                max,
                step,
                hold: 0.5,
            },
            mean,
        )
    };
    let b = |busy_v: f64, idle_v: f64| if busy { busy_v } else { idle_v };
    match name {
        "DCGM_FI_DEV_SM_CLOCK" => g(b(1950.0, 345.0), b(25.0, 0.0), 210.0, 1980.0, 15.0),
        "DCGM_FI_DEV_MEM_CLOCK" => (Model::Constant, 2619.0),
        "DCGM_FI_DEV_MEMORY_TEMP" => g(b(52.0, 40.0), 1.0, 20.0, 95.0, 1.0),
        "DCGM_FI_DEV_GPU_TEMP" => g(b(56.0, 33.0), 1.5, 20.0, 90.0, 1.0),
        "DCGM_FI_DEV_POWER_USAGE" => g(b(610.0, 71.0), b(40.0, 1.0), 60.0, 700.0, 0.000_001),
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" => (
            Model::Counter {
                rate: b(610_000.0, 71_000.0),
                step: 1.0,
            },
            rng.range(1e11, 8e11).round(),
        ),
        "DCGM_FI_DEV_GPU_UTIL" => g(b(92.0, 0.0), b(6.0, 0.0), 0.0, 100.0, 1.0),
        "DCGM_FI_DEV_MEM_COPY_UTIL" => g(b(38.0, 0.0), b(8.0, 0.0), 0.0, 100.0, 1.0),
        "DCGM_FI_DEV_FB_USED" => g(b(71_000.0, 0.0), b(1500.0, 0.0), 0.0, 81_020.0, 1.0),
        "DCGM_FI_DEV_FB_FREE" => g(b(10_000.0, 81_020.0), b(1500.0, 0.0), 0.0, 81_020.0, 1.0),
        "DCGM_FI_DEV_FB_RESERVED" => (Model::Constant, 539.0),
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL" => (
            Model::Counter {
                rate: b(2.0e10, 0.0),
                step: 1.0,
            },
            rng.range(1e14, 9e14).round(),
        ),
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE" => g(b(0.9, 0.0), b(0.05, 0.0), 0.0, 1.0, 0.000_001),
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE" => g(b(0.45, 0.0), b(0.1, 0.0), 0.0, 1.0, 0.000_001),
        "DCGM_FI_PROF_DRAM_ACTIVE" => g(b(0.5, 0.0), b(0.1, 0.0), 0.0, 1.0, 0.000_001),
        "DCGM_FI_PROF_PCIE_TX_BYTES" | "DCGM_FI_PROF_PCIE_RX_BYTES" => {
            g(b(4.0e9, 2.0e6), b(1.5e9, 5.0e5), 0.0, 6.4e10, 1.0)
        }
        // Error and licence fields: zero and flat on a healthy fleet.
        _ if name.contains("ERROR")
            || name.contains("REMAP")
            || name.contains("REPLAY")
            || name.contains("LICENSE")
            || name.contains("ENC_UTIL")
            || name.contains("DEC_UTIL") =>
        {
            (Model::Constant, 0.0)
        }
        _ => match kind {
            Kind::Counter => (
                Model::Counter {
                    rate: b(100.0, 1.0),
                    step: 1.0,
                },
                rng.range(0.0, 1e6).round(),
            ),
            Kind::Gauge => g(b(50.0, 5.0), b(10.0, 1.0), 0.0, 100.0, 1.0),
        },
    }
}

/// A GPU UUID (`GPU-d3cb2e5d-477b-f6b7-e51f-4ed60e653859`).
fn uuid(rng: &Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Series per GPU: one per metric of the counter set.
pub fn series_per_gpu(config: &FleetConfig) -> usize {
    config.counters.metrics.len()
}

/// Adds the dcgm-exporter target of one node: `gpus_per_node` GPUs, three
/// in four busy with a pod (when pods are on), the rest idle.
pub fn build_node(b: &mut Builder<'_>, config: &FleetConfig, host: &str, gpus: &mut Vec<GpuSlot>) {
    b.target(&[
        ("job", "dcgm-exporter"),
        ("instance", &format!("{host}:9400")),
    ]);
    for g in 0..config.gpus_per_node {
        let busy = g % 4 != 3;
        let uuid = uuid(b.rng);
        let gpu = g.to_string();
        let bus = format!("00000000:{}:00.0", BUS_IDS[g % BUS_IDS.len()]);
        let device = format!("nvidia{g}");
        let mut labels: Vec<(String, String)> = vec![
            ("gpu".into(), gpu),
            ("UUID".into(), uuid),
            ("pci_bus_id".into(), bus),
            ("device".into(), device),
            ("modelName".into(), MODEL.into()),
            ("Hostname".into(), host.into()),
        ];
        for l in &config.counters.labels {
            let v = if l == "DCGM_FI_DRIVER_VERSION" {
                DRIVER
            } else {
                "unknown"
            };
            labels.push((l.clone(), v.into()));
        }
        let with_pod = config.pods && busy;
        if with_pod {
            let pod = pod_name(b.node as u64 * 64 + g as u64, b.rng);
            labels.push(("pod".into(), pod));
            labels.push(("namespace".into(), "training".into()));
            labels.push(("container".into(), "trainer".into()));
        }
        let first = b.out.len();
        for (name, kind) in &config.counters.metrics {
            let (m, start) = model(name, *kind, busy, b.rng);
            let mut extra: Vec<(&str, &str)> = labels
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            if name == "DCGM_FI_DEV_XID_ERRORS" {
                extra.push(("err_code", "0"));
                extra.push(("err_msg", "No Error"));
            }
            b.add(name, &extra, m, start);
        }
        gpus.push(GpuSlot {
            node: b.node,
            series: first..b.out.len(),
            pod_generation: with_pod.then_some(0),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_list_matches_the_fixture_csv() {
        let builtin = CounterSet::builtin();
        assert_eq!(builtin.metrics.len(), 25);
        assert_eq!(
            builtin
                .metrics
                .iter()
                .filter(|m| m.1 == Kind::Counter)
                .count(),
            5
        );
        assert_eq!(builtin.labels, vec!["DCGM_FI_DRIVER_VERSION".to_string()]);
        if let Some(dir) = crate::test_input::fixtures(concat!(env!("CARGO_MANIFEST_DIR"), "/..")) {
            assert_eq!(CounterSet::load(&dir).expect("fixture parses"), builtin);
        }
    }

    #[test]
    fn csv_parser_trims_skips_comments_and_rejects_bad_lines() {
        let f = |text: &str, want: Result<usize, ()>| {
            assert_eq!(
                CounterSet::parse(text)
                    .map(|s| s.metrics.len())
                    .map_err(|_| ()),
                want,
                "{text:?}"
            );
        };
        f("# c\n\nA , gauge, h\n", Ok(1));
        f("A,counter,h\nB,label,h\n", Ok(1));
        f("A,gauge\n", Err(()));
        f("A,gauge,h,extra\n", Err(()));
        f("A,bogus,h\n", Err(()));
    }

    #[test]
    fn uuids_have_the_exporter_layout() {
        let u = uuid(&Rng::new(1));
        assert_eq!(u.len(), 40);
        assert!(u.starts_with("GPU-"));
        assert_eq!(u.matches('-').count(), 5);
    }
}
