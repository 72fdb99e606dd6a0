//! node-exporter's host series, scaled to a large bare-metal GPU server,
//! plus kubelet classic histograms and Prometheus' per-target series.
//!
//! Families and label sets follow the real node_exporter 1.5.0 scrape in
//! `../shared/fixtures/node-exporter/metrics.txt`, with what that sandbox
//! could not show but a bare-metal host has (the fixture's README):
//! `schedstat` and `cpufreq` per CPU, 1.10's larger softnet and
//! `scaling_governor`, about 10 network interfaces including InfiniBand
//! ports, NVMe disks and several filesystems. Per logical CPU that is
//! [`PER_CPU`] = 26 series; the rest does not depend on the CPU count.

use super::{Builder, FleetConfig, Model, dcgm};

const CPU_MODES: [(&str, f64); 8] = [
    ("idle", 0.55),
    ("iowait", 0.01),
    ("irq", 0.002),
    ("nice", 0.0),
    ("softirq", 0.01),
    ("steal", 0.0),
    ("system", 0.06),
    ("user", 0.35),
];
/// `cpu_seconds` 8 + `guest_seconds` 2 + softnet 5 + schedstat 3 +
/// cpufreq 6 + scaling_governor 2.
pub const PER_CPU: usize = 26;

/// Interfaces of a GPU server: loopback, two bonded Ethernet ports, the
/// bond, and six InfiniBand HCAs' IPoIB devices.
const NICS: [(&str, f64); 10] = [
    ("lo", 1e6),
    ("eno1np0", 5e7),
    ("eno2np1", 5e7),
    ("bond0", 1e8),
    ("ibp12s0", 4e9),
    ("ibp75s0", 4e9),
    ("ibp141s0", 4e9),
    ("ibp186s0", 4e9),
    ("ibp204s0", 4e9),
    ("ibp220s0", 4e9),
];
const NETDEV: [&str; 17] = [
    "receive_bytes_total",
    "receive_compressed_total",
    "receive_drop_total",
    "receive_errs_total",
    "receive_fifo_total",
    "receive_frame_total",
    "receive_multicast_total",
    "receive_nohandler_total",
    "receive_packets_total",
    "transmit_bytes_total",
    "transmit_carrier_total",
    "transmit_colls_total",
    "transmit_compressed_total",
    "transmit_drop_total",
    "transmit_errs_total",
    "transmit_fifo_total",
    "transmit_packets_total",
];
/// netclass families without the `info` series (added with its labels).
const NETCLASS: [&str; 15] = [
    "address_assign_type",
    "carrier",
    "carrier_changes_total",
    "carrier_down_changes_total",
    "carrier_up_changes_total",
    "device_id",
    "flags",
    "iface_id",
    "iface_link",
    "iface_link_mode",
    "mtu_bytes",
    "net_dev_group",
    "protocol_type",
    "speed_bytes",
    "transmit_queue_length",
];
const IB_PORTS: [&str; 6] = ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3", "mlx5_4", "mlx5_5"];
const INFINIBAND: [&str; 12] = [
    "port_data_received_bytes_total",
    "port_data_transmitted_bytes_total",
    "port_packets_received_total",
    "port_packets_transmitted_total",
    "port_errors_received_total",
    "port_discards_transmitted_total",
    "link_downed_total",
    "link_error_recovery_total",
    "symbol_error_total",
    "port_transmit_wait_total",
    "state_id",
    "rate_bytes_per_second",
];
const DISKS: [&str; 5] = ["nvme0n1", "nvme1n1", "nvme2n1", "nvme3n1", "nvme4n1"];
const DISKSTATS: [&str; 17] = [
    "discard_time_seconds_total",
    "discarded_sectors_total",
    "discards_completed_total",
    "discards_merged_total",
    "flush_requests_time_seconds_total",
    "flush_requests_total",
    "io_now",
    "io_time_seconds_total",
    "io_time_weighted_seconds_total",
    "read_bytes_total",
    "read_time_seconds_total",
    "reads_completed_total",
    "reads_merged_total",
    "write_time_seconds_total",
    "writes_completed_total",
    "writes_merged_total",
    "written_bytes_total",
];
const FILESYSTEMS: [(&str, &str, &str, f64); 6] = [
    ("/dev/md0", "ext4", "/", 8.9e11),
    ("/dev/md1", "xfs", "/raid", 2.8e13),
    ("/dev/nvme0n1p1", "vfat", "/boot/efi", 5.3e8),
    ("tmpfs", "tmpfs", "/run", 2.1e11),
    ("tmpfs", "tmpfs", "/dev/shm", 1.0e12),
    ("/dev/md1", "xfs", "/var/lib/kubelet", 2.8e13),
];
const FILESYSTEM: [&str; 7] = [
    "avail_bytes",
    "device_error",
    "files",
    "files_free",
    "free_bytes",
    "readonly",
    "size_bytes",
];

/// Host-wide node_* families of the fixture that are one series each.
const SINGLETONS: &[&str] = &[
    "boot_time_seconds",
    "context_switches_total",
    "entropy_available_bits",
    "entropy_pool_size_bits",
    "filefd_allocated",
    "filefd_maximum",
    "forks_total",
    "intr_total",
    "load1",
    "load15",
    "load5",
    "nf_conntrack_entries",
    "nf_conntrack_entries_limit",
    "nf_conntrack_stat_drop",
    "nf_conntrack_stat_early_drop",
    "nf_conntrack_stat_found",
    "nf_conntrack_stat_ignore",
    "nf_conntrack_stat_insert",
    "nf_conntrack_stat_insert_failed",
    "nf_conntrack_stat_invalid",
    "nf_conntrack_stat_search_restart",
    "pressure_cpu_waiting_seconds_total",
    "pressure_io_stalled_seconds_total",
    "pressure_io_waiting_seconds_total",
    "pressure_memory_stalled_seconds_total",
    "pressure_memory_waiting_seconds_total",
    "procs_blocked",
    "procs_running",
    "selinux_enabled",
    "textfile_scrape_error",
    "time_seconds",
    "timex_estimated_error_seconds",
    "timex_frequency_adjustment_ratio",
    "timex_loop_time_constant",
    "timex_maxerror_seconds",
    "timex_offset_seconds",
    "timex_pps_calibration_total",
    "timex_pps_error_total",
    "timex_pps_frequency_hertz",
    "timex_pps_jitter_seconds",
    "timex_pps_jitter_total",
    "timex_pps_shift_seconds",
    "timex_pps_stability_exceeded_total",
    "timex_pps_stability_hertz",
    "timex_status",
    "timex_sync_status",
    "timex_tai_offset_seconds",
    "timex_tick_seconds",
    "vmstat_oom_kill",
    "vmstat_pgfault",
    "vmstat_pgmajfault",
    "vmstat_pgpgin",
    "vmstat_pgpgout",
    "vmstat_pswpin",
    "vmstat_pswpout",
];
const MEMINFO: &[&str] = &[
    "Active_anon",
    "Active",
    "Active_file",
    "AnonHugePages",
    "AnonPages",
    "Bounce",
    "Buffers",
    "Cached",
    "CommitLimit",
    "Committed_AS",
    "DirectMap1G",
    "DirectMap2M",
    "DirectMap4k",
    "Dirty",
    "FileHugePages",
    "FilePmdMapped",
    "Hugepagesize",
    "Hugetlb",
    "Inactive_anon",
    "Inactive",
    "Inactive_file",
    "KReclaimable",
    "KernelStack",
    "Mapped",
    "MemAvailable",
    "MemFree",
    "MemTotal",
    "Mlocked",
    "NFS_Unstable",
    "PageTables",
    "Percpu",
    "SReclaimable",
    "SUnreclaim",
    "SecPageTables",
    "ShmemHugePages",
    "ShmemPmdMapped",
    "Shmem",
    "Slab",
    "SwapCached",
    "SwapFree",
    "SwapTotal",
    "Unevictable",
    "VmallocChunk",
    "VmallocTotal",
    "VmallocUsed",
    "WritebackTmp",
    "Writeback",
    "Zswap",
    "Zswapped",
];
const HUGEPAGES: &[&str] = &[
    "HugePages_Free",
    "HugePages_Rsvd",
    "HugePages_Surp",
    "HugePages_Total",
];
const NETSTAT: &[&str] = &[
    "Icmp6_InErrors",
    "Icmp6_InMsgs",
    "Icmp6_OutMsgs",
    "Icmp_InErrors",
    "Icmp_InMsgs",
    "Icmp_OutMsgs",
    "Ip6_InOctets",
    "Ip6_OutOctets",
    "IpExt_InOctets",
    "IpExt_OutOctets",
    "Ip_Forwarding",
    "TcpExt_ListenDrops",
    "TcpExt_ListenOverflows",
    "TcpExt_SyncookiesFailed",
    "TcpExt_SyncookiesRecv",
    "TcpExt_SyncookiesSent",
    "TcpExt_TCPSynRetrans",
    "TcpExt_TCPTimeouts",
    "Tcp_ActiveOpens",
    "Tcp_CurrEstab",
    "Tcp_InErrs",
    "Tcp_InSegs",
    "Tcp_OutRsts",
    "Tcp_OutSegs",
    "Tcp_PassiveOpens",
    "Tcp_RetransSegs",
    "Udp6_InDatagrams",
    "Udp6_InErrors",
    "Udp6_NoPorts",
    "Udp6_OutDatagrams",
    "Udp6_RcvbufErrors",
    "Udp6_SndbufErrors",
    "UdpLite6_InErrors",
    "UdpLite_InErrors",
    "Udp_InDatagrams",
    "Udp_InErrors",
    "Udp_NoPorts",
    "Udp_OutDatagrams",
    "Udp_RcvbufErrors",
    "Udp_SndbufErrors",
];
const SOCKSTAT: &[&str] = &[
    "FRAG6_inuse",
    "FRAG6_memory",
    "FRAG_inuse",
    "FRAG_memory",
    "RAW6_inuse",
    "RAW_inuse",
    "TCP6_inuse",
    "TCP_alloc",
    "TCP_inuse",
    "TCP_mem",
    "TCP_mem_bytes",
    "TCP_orphan",
    "TCP_tw",
    "UDP6_inuse",
    "UDPLITE6_inuse",
    "UDPLITE_inuse",
    "UDP_inuse",
    "UDP_mem",
    "UDP_mem_bytes",
    "sockets_used",
];
/// The fixture's 46 default collectors.
const COLLECTORS: &[&str] = &[
    "arp",
    "bcache",
    "bonding",
    "btrfs",
    "conntrack",
    "cpu",
    "cpufreq",
    "diskstats",
    "dmi",
    "edac",
    "entropy",
    "fibrechannel",
    "filefd",
    "filesystem",
    "hwmon",
    "infiniband",
    "ipvs",
    "loadavg",
    "mdadm",
    "meminfo",
    "netclass",
    "netdev",
    "netstat",
    "nfs",
    "nfsd",
    "nvme",
    "os",
    "powersupplyclass",
    "pressure",
    "rapl",
    "schedstat",
    "selinux",
    "sockstat",
    "softnet",
    "stat",
    "systemd",
    "tapestats",
    "textfile",
    "thermal_zone",
    "time",
    "timex",
    "udp_queues",
    "uname",
    "vmstat",
    "xfs",
    "zfs",
];
/// The exporter's own Go runtime and process series (fixture: 46 with the
/// 7-series `go_gc_duration_seconds` summary and 6 `promhttp_*`).
const GO_GAUGES: &[&str] = &[
    "go_goroutines",
    "go_memstats_alloc_bytes",
    "go_memstats_buck_hash_sys_bytes",
    "go_memstats_gc_sys_bytes",
    "go_memstats_heap_alloc_bytes",
    "go_memstats_heap_idle_bytes",
    "go_memstats_heap_inuse_bytes",
    "go_memstats_heap_objects",
    "go_memstats_heap_released_bytes",
    "go_memstats_heap_sys_bytes",
    "go_memstats_last_gc_time_seconds",
    "go_memstats_mcache_inuse_bytes",
    "go_memstats_mcache_sys_bytes",
    "go_memstats_mspan_inuse_bytes",
    "go_memstats_mspan_sys_bytes",
    "go_memstats_next_gc_bytes",
    "go_memstats_other_sys_bytes",
    "go_memstats_stack_inuse_bytes",
    "go_memstats_stack_sys_bytes",
    "go_memstats_sys_bytes",
    "go_threads",
    "process_max_fds",
    "process_open_fds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_virtual_memory_bytes",
    "process_virtual_memory_max_bytes",
    "promhttp_metric_handler_requests_in_flight",
];
const GO_COUNTERS: &[&str] = &[
    "go_memstats_alloc_bytes_total",
    "go_memstats_frees_total",
    "go_memstats_lookups_total",
    "go_memstats_mallocs_total",
    "process_cpu_seconds_total",
];
/// `go_gc_duration_seconds` (7), `go_info`, `promhttp_*` with labels (5),
/// `node_exporter_build_info`, `node_os_info`, `node_os_version`,
/// `node_uname_info`, `node_time_zone_offset_seconds`, clocksource (3),
/// `node_udp_queues` (4), `node_arp_entries` (2 devices).
const LABELLED_SINGLETONS: usize = 7 + 1 + 5 + 1 + 1 + 1 + 1 + 1 + 3 + 4 + 2;

/// kubelet's runtime-operation latency histogram (ExponentialBuckets(.005,
/// 2.5, 14)) for these operation types, plus pod start duration.
const KUBELET_OPS: [&str; 3] = ["container_status", "exec_sync", "podsandbox_status"];
const POD_START_BUCKETS: [f64; 25] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];
const SCRAPE_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];
const TARGETS: usize = 3; // dcgm-exporter, node-exporter, kubelet

fn op_buckets() -> Vec<f64> {
    (0..14)
        .map(|i| 0.005 * 2.5f64.powi(i))
        .map(|b| (b * 1e6).round() / 1e6)
        .collect()
}

/// Series per node for `config`: the documented shape, computed from the
/// same tables the builder walks.
pub fn series_per_node(config: &FleetConfig) -> usize {
    let node_exporter = PER_CPU * config.cpus_per_node
        + NICS.len() * (NETDEV.len() + NETCLASS.len() + 1)
        + IB_PORTS.len() * (INFINIBAND.len() + 1)
        + DISKS.len() * (DISKSTATS.len() + 1)
        + FILESYSTEMS.len() * FILESYSTEM.len()
        + SINGLETONS.len()
        + MEMINFO.len()
        + HUGEPAGES.len()
        + NETSTAT.len()
        + SOCKSTAT.len()
        + 2 * COLLECTORS.len()
        + GO_GAUGES.len()
        + GO_COUNTERS.len()
        + LABELLED_SINGLETONS;
    let kubelet = KUBELET_OPS.len() * (op_buckets().len() + 3) + POD_START_BUCKETS.len() + 3;
    let dcgm = config.gpus_per_node * dcgm::series_per_gpu(config);
    node_exporter + kubelet + dcgm + TARGETS * SCRAPE_SERIES.len()
}

fn counter(rate: f64) -> Model {
    Model::Counter { rate, step: 1.0 }
}

fn gauge(mean: f64, rel_sigma: f64, step: f64) -> Model {
    let sigma = mean.abs() * rel_sigma;
    Model::Gauge {
        mean,
        sigma,
        min: 0.0,
        max: f64::MAX,
        step,
        hold: 0.0,
    }
}

/// Adds the node-exporter and kubelet targets and the per-target scrape
/// series of one node.
pub fn build_node(b: &mut Builder<'_>, config: &FleetConfig, host: &str) {
    let instance = format!("{host}:9100");
    b.target(&[("job", "node-exporter"), ("instance", &instance)]);
    per_cpu(b, config.cpus_per_node);
    network(b);
    disks_and_filesystems(b);
    host_wide(b, host);

    b.target(&[("job", "kubelet"), ("instance", &format!("{host}:10250"))]);
    let ops = op_buckets();
    for op in KUBELET_OPS {
        let mean = if op == "exec_sync" { 0.8 } else { 0.02 };
        b.histogram(
            "kubelet_runtime_operations_duration_seconds",
            &[("operation_type", op)],
            &ops,
            0.5,
            mean,
        );
    }
    b.histogram(
        "kubelet_pod_start_duration_seconds",
        &[],
        &POD_START_BUCKETS,
        0.01,
        40.0,
    );

    for (job, port) in [
        ("dcgm-exporter", 9400),
        ("node-exporter", 9100),
        ("kubelet", 10250),
    ] {
        b.target(&[("job", job), ("instance", &format!("{host}:{port}"))]);
        b.add("up", &[], Model::Constant, 1.0);
        let dur = b.rng.range(0.01, 0.3);
        b.add("scrape_duration_seconds", &[], gauge(dur, 0.1, 0.0), dur);
        for name in &SCRAPE_SERIES[2..4] {
            b.add(name, &[], Model::Constant, 4000.0);
        }
        b.add("scrape_series_added", &[], Model::Constant, 0.0);
    }
}

fn per_cpu(b: &mut Builder<'_>, cpus: usize) {
    for c in 0..cpus {
        let cpu = c.to_string();
        let cpu = cpu.as_str();
        let busy = b.rng.range(0.3, 1.7);
        for (mode, share) in CPU_MODES {
            let rate = if mode == "idle" {
                1.0 - (1.0 - share) * busy
            } else {
                share * busy
            };
            let start = (b.rng.range(1e5, 1e6) * share * 100.0).round() / 100.0;
            b.add(
                "node_cpu_seconds_total",
                &[("cpu", cpu), ("mode", mode)],
                Model::Counter { rate, step: 0.01 },
                start,
            );
        }
        for mode in ["nice", "user"] {
            b.add(
                "node_cpu_guest_seconds_total",
                &[("cpu", cpu), ("mode", mode)],
                Model::Constant,
                0.0,
            );
        }
        let l = [("cpu", cpu)];
        b.add(
            "node_softnet_processed_total",
            &l,
            counter(400.0 * busy),
            b.rng.range(1e6, 1e8).round(),
        );
        for name in [
            "dropped_total",
            "times_squeezed_total",
            "received_rps_total",
            "flow_limit_count_total",
        ] {
            b.add(&format!("node_softnet_{name}"), &l, Model::Constant, 0.0);
        }
        b.add(
            "node_schedstat_running_seconds_total",
            &l,
            Model::Counter {
                rate: 0.4 * busy,
                step: 1e-9,
            },
            b.rng.range(1e4, 1e6),
        );
        b.add(
            "node_schedstat_waiting_seconds_total",
            &l,
            Model::Counter {
                rate: 0.02,
                step: 1e-9,
            },
            b.rng.range(1e3, 1e5),
        );
        b.add(
            "node_schedstat_timeslices_total",
            &l,
            counter(300.0 * busy),
            b.rng.range(1e7, 1e9).round(),
        );
        let freq = gauge(2.6e9, 0.1, 1000.0);
        b.add("node_cpu_frequency_hertz", &l, freq, 2.6e9);
        b.add("node_cpu_frequency_min_hertz", &l, Model::Constant, 1.5e9);
        b.add("node_cpu_frequency_max_hertz", &l, Model::Constant, 3.8e9);
        b.add("node_cpu_scaling_frequency_hertz", &l, freq, 2.6e9);
        b.add(
            "node_cpu_scaling_frequency_min_hertz",
            &l,
            Model::Constant,
            1.5e9,
        );
        b.add(
            "node_cpu_scaling_frequency_max_hertz",
            &l,
            Model::Constant,
            3.8e9,
        );
        b.add(
            "node_cpu_scaling_governor",
            &[("cpu", cpu), ("governor", "performance")],
            Model::Constant,
            1.0,
        );
        b.add(
            "node_cpu_scaling_governor",
            &[("cpu", cpu), ("governor", "powersave")],
            Model::Constant,
            0.0,
        );
    }
}

fn network(b: &mut Builder<'_>) {
    for (i, (dev, bytes_rate)) in NICS.iter().enumerate() {
        let d = [("device", *dev)];
        for name in NETDEV {
            let rate = match name {
                "receive_bytes_total" | "transmit_bytes_total" => *bytes_rate,
                "receive_packets_total" | "transmit_packets_total" => bytes_rate / 1500.0,
                "receive_multicast_total" => 0.1,
                _ => 0.0,
            };
            let start = if rate > 0.0 {
                b.rng.range(1e9, 1e12).round()
            } else {
                0.0
            };
            b.add(&format!("node_network_{name}"), &d, counter(rate), start);
        }
        for name in NETCLASS {
            let v = match name {
                "mtu_bytes" => {
                    if dev.starts_with("ib") {
                        4092.0
                    } else {
                        9000.0
                    }
                }
                "speed_bytes" => {
                    if dev.starts_with("ib") {
                        5e10
                    } else {
                        1.25e10
                    }
                }
                "carrier" => 1.0,
                "iface_id" | "iface_link" => (i + 1) as f64,
                _ => 0.0,
            };
            b.add(&format!("node_network_{name}"), &d, Model::Constant, v);
        }
        let mac = format!(
            "b8:3f:d2:{:02x}:{:02x}:{:02x}",
            b.node >> 8 & 0xff,
            b.node & 0xff,
            i
        );
        b.add(
            "node_network_info",
            &[
                ("address", &mac),
                ("broadcast", "ff:ff:ff:ff:ff:ff"),
                ("device", dev),
                ("duplex", "full"),
                ("ifalias", ""),
                ("operstate", "up"),
            ],
            Model::Constant,
            1.0,
        );
    }
    for port in IB_PORTS {
        let l = [("device", port), ("port", "1")];
        for name in INFINIBAND {
            let (m, v) = match name {
                "port_data_received_bytes_total" | "port_data_transmitted_bytes_total" => {
                    (counter(4e9), b.rng.range(1e12, 1e15).round())
                }
                "port_packets_received_total" | "port_packets_transmitted_total" => {
                    (counter(1e6), b.rng.range(1e9, 1e12).round())
                }
                "state_id" => (Model::Constant, 4.0),
                "rate_bytes_per_second" => (Model::Constant, 5e10),
                _ => (Model::Constant, 0.0),
            };
            b.add(&format!("node_infiniband_{name}"), &l, m, v);
        }
        b.add(
            "node_infiniband_info",
            &[
                ("board_id", "MT_0000000970"),
                ("device", port),
                ("firmware_version", "28.39.1002"),
                ("hca_type", "MT4129"),
            ],
            Model::Constant,
            1.0,
        );
    }
}

fn disks_and_filesystems(b: &mut Builder<'_>) {
    for (i, dev) in DISKS.iter().enumerate() {
        let d = [("device", *dev)];
        for name in DISKSTATS {
            let m = match name {
                "read_bytes_total" => counter(2e8),
                "written_bytes_total" => counter(5e7),
                "reads_completed_total" => counter(2000.0),
                "writes_completed_total" => counter(500.0),
                "io_time_seconds_total" | "io_time_weighted_seconds_total" => Model::Counter {
                    rate: 0.1,
                    step: 0.001,
                },
                "read_time_seconds_total" | "write_time_seconds_total" => Model::Counter {
                    rate: 0.05,
                    step: 0.001,
                },
                "io_now" => Model::Gauge {
                    mean: 1.0,
                    sigma: 1.0,
                    min: 0.0,
                    max: 64.0,
                    step: 1.0,
                    hold: 0.0,
                },
                _ => Model::Constant,
            };
            let start = if matches!(m, Model::Constant) {
                0.0
            } else {
                b.rng.range(1e3, 1e9).round()
            };
            b.add(&format!("node_disk_{name}"), &d, m, start);
        }
        let (major, minor) = ("259".to_string(), (i * 2).to_string());
        b.add(
            "node_disk_info",
            &[
                ("device", dev),
                ("major", &major),
                ("minor", &minor),
                ("model", "SAMSUNG MZQL23T8HCLS-00A07"),
                ("path", ""),
                ("revision", "GDC5602Q"),
                ("serial", &format!("S64HNE0T{:06}", b.node as usize * 8 + i)),
                ("wwn", ""),
            ],
            Model::Constant,
            1.0,
        );
    }
    for (device, fstype, mountpoint, size) in FILESYSTEMS {
        let l = [
            ("device", device),
            ("fstype", fstype),
            ("mountpoint", mountpoint),
        ];
        let used = b.rng.range(0.1, 0.8);
        for name in FILESYSTEM {
            let (m, v) = match name {
                "avail_bytes" | "free_bytes" => (
                    gauge(size * (1.0 - used), 0.001, 4096.0),
                    size * (1.0 - used),
                ),
                "size_bytes" => (Model::Constant, size),
                "files" => (Model::Constant, (size / 16384.0).round()),
                "files_free" => (
                    gauge((size / 16384.0 * (1.0 - used)).round(), 0.0005, 1.0),
                    (size / 16384.0 * (1.0 - used)).round(),
                ),
                _ => (Model::Constant, 0.0),
            };
            b.add(&format!("node_filesystem_{name}"), &l, m, v.round());
        }
    }
}

fn host_wide(b: &mut Builder<'_>, host: &str) {
    for &name in SINGLETONS {
        let scale = 10f64.powi(b.rng.below(7) as i32);
        let (m, v) = if name.ends_with("_total") || name.starts_with("vmstat_pg") {
            (
                counter(scale / 100.0),
                b.rng.range(1.0, 10.0) * scale * 100.0,
            )
        } else if name.starts_with("load") {
            (
                Model::Gauge {
                    mean: 40.0,
                    sigma: 2.0,
                    min: 0.0,
                    max: 256.0,
                    step: 0.01,
                    hold: 0.0,
                },
                40.0,
            )
        } else if name.starts_with("timex")
            || name.contains("_stat_")
            || name == "selinux_enabled"
            || name == "textfile_scrape_error"
        {
            (Model::Constant, 0.0)
        } else if name == "time_seconds" {
            (
                Model::Counter {
                    rate: 1.0,
                    step: 0.001,
                },
                1.76e9,
            )
        } else {
            let v = (b.rng.range(1.0, 10.0) * scale).round();
            (gauge(v, 0.01, 1.0), v)
        };
        b.add(&format!("node_{name}"), &[], m, v.round());
    }
    for name in MEMINFO {
        let v = (b.rng.range(1.0, 1000.0) * 1e9 / 4096.0).round() * 4096.0;
        let m = if name.contains("Total") || name.contains("DirectMap") || name.contains("Limit") {
            Model::Constant
        } else {
            gauge(v, 0.002, 4096.0)
        };
        b.add(&format!("node_memory_{name}_bytes"), &[], m, v);
    }
    for name in HUGEPAGES {
        b.add(&format!("node_memory_{name}"), &[], Model::Constant, 0.0);
    }
    for name in NETSTAT {
        let (m, v) =
            if name.contains("Octets") || name.contains("Segs") || name.contains("Datagrams") {
                (counter(1e5), b.rng.range(1e9, 1e12).round())
            } else {
                (Model::Constant, b.rng.below(100) as f64)
            };
        b.add(&format!("node_netstat_{name}"), &[], m, v);
    }
    for name in SOCKSTAT {
        let v = b.rng.below(5000) as f64;
        b.add(
            &format!("node_sockstat_{name}"),
            &[],
            gauge(v, 0.02, 1.0),
            v,
        );
    }
    for c in COLLECTORS {
        let d = b.rng.range(0.0001, 0.05);
        b.add(
            "node_scrape_collector_duration_seconds",
            &[("collector", c)],
            gauge(d, 0.2, 0.0),
            d,
        );
        b.add(
            "node_scrape_collector_success",
            &[("collector", c)],
            Model::Constant,
            1.0,
        );
    }
    for name in GO_GAUGES {
        let v = (b.rng.range(1.0, 100.0) * 1e6).round();
        b.add(name, &[], gauge(v, 0.05, 1.0), v);
    }
    for name in GO_COUNTERS {
        b.add(name, &[], counter(1e4), b.rng.range(1e6, 1e9).round());
    }
    for q in ["0", "0.25", "0.5", "0.75", "1"] {
        let v = b.rng.range(1e-5, 1e-3);
        b.add(
            "go_gc_duration_seconds",
            &[("quantile", q)],
            gauge(v, 0.2, 0.0),
            v,
        );
    }
    b.add(
        "go_gc_duration_seconds_sum",
        &[],
        Model::Counter {
            rate: 0.0005,
            step: 0.0,
        },
        2.0,
    );
    b.add("go_gc_duration_seconds_count", &[], counter(0.1), 5000.0);
    b.add("go_info", &[("version", "go1.19.8")], Model::Constant, 1.0);
    for cause in ["encoding", "gathering"] {
        b.add(
            "promhttp_metric_handler_errors_total",
            &[("cause", cause)],
            Model::Constant,
            0.0,
        );
    }
    for code in ["200", "500", "503"] {
        let m = if code == "200" {
            counter(1.0 / 15.0)
        } else {
            Model::Constant
        };
        b.add(
            "promhttp_metric_handler_requests_total",
            &[("code", code)],
            m,
            1000.0,
        );
    }
    b.add(
        "node_exporter_build_info",
        &[
            ("branch", "debian/sid"),
            ("goarch", "amd64"),
            ("goos", "linux"),
            ("goversion", "go1.19.8"),
            ("revision", "1.5.0-1+b6"),
            ("version", "1.5.0"),
        ],
        Model::Constant,
        1.0,
    );
    b.add(
        "node_os_info",
        &[
            ("id", "ubuntu"),
            ("id_like", "debian"),
            ("name", "Ubuntu"),
            ("pretty_name", "Ubuntu 22.04.4 LTS"),
            ("version", "22.04.4 LTS (Jammy Jellyfish)"),
            ("version_codename", "jammy"),
            ("version_id", "22.04"),
        ],
        Model::Constant,
        1.0,
    );
    b.add(
        "node_os_version",
        &[("id", "ubuntu"), ("id_like", "debian"), ("name", "Ubuntu")],
        Model::Constant,
        22.04,
    );
    b.add(
        "node_uname_info",
        &[
            ("domainname", "(none)"),
            ("machine", "x86_64"),
            ("nodename", host),
            ("release", "5.15.0-105-generic"),
            ("sysname", "Linux"),
            ("version", "#115-Ubuntu SMP Mon Apr 15 09:52:04 UTC 2024"),
        ],
        Model::Constant,
        1.0,
    );
    b.add(
        "node_time_zone_offset_seconds",
        &[("time_zone", "UTC")],
        Model::Constant,
        0.0,
    );
    for cs in ["hpet", "tsc"] {
        b.add(
            "node_time_clocksource_available_info",
            &[("clocksource", cs), ("device", "0")],
            Model::Constant,
            1.0,
        );
    }
    b.add(
        "node_time_clocksource_current_info",
        &[("clocksource", "tsc"), ("device", "0")],
        Model::Constant,
        1.0,
    );
    for ip in ["v4", "v6"] {
        for queue in ["rx", "tx"] {
            b.add(
                "node_udp_queues",
                &[("ip", ip), ("queue", queue)],
                Model::Constant,
                0.0,
            );
        }
    }
    for dev in ["bond0", "eno1np0"] {
        let v = b.rng.below(50) as f64;
        b.add(
            "node_arp_entries",
            &[("device", dev)],
            gauge(v, 0.05, 1.0),
            v,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::Fleet;

    #[test]
    fn per_cpu_series_count_is_26_per_logical_cpu() {
        let f = |cpus| {
            Fleet::new(FleetConfig {
                cpus_per_node: cpus,
                ..FleetConfig::default()
            })
            .active_series()
        };
        assert_eq!(f(130) - f(128), 2 * PER_CPU);
        assert_eq!(
            series_per_node(&FleetConfig {
                cpus_per_node: 2,
                ..FleetConfig::default()
            }),
            f(2)
        );
    }

    #[test]
    fn classic_histograms_have_cumulative_le_buckets_ending_in_inf() {
        let f = Fleet::new(FleetConfig::default());
        let mut buckets: Vec<(String, f64)> = f
            .series
            .iter()
            .filter(|s| {
                s.labels
                    .iter()
                    .any(|l| f.syms.get(l.1) == "kubelet_pod_start_duration_seconds_bucket")
            })
            .map(|s| {
                let le = s
                    .labels
                    .iter()
                    .find(|l| f.syms.get(l.0) == "le")
                    .map(|l| f.syms.get(l.1).to_owned());
                (le.expect("bucket has le"), s.value)
            })
            .collect();
        assert_eq!(buckets.len(), POD_START_BUCKETS.len() + 1);
        assert_eq!(buckets.last().map(|b| b.0.as_str()), Some("+Inf"));
        buckets.sort_by(|a, b| {
            a.0.parse::<f64>()
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.0.parse::<f64>().unwrap_or(f64::INFINITY))
        });
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    }
}
