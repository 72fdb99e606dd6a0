//! Process metrics read from `/proc/self` (Linux).

use super::exposition::single;

/// Process metrics from `/proc/self` (Linux), as Prometheus client libraries
/// export them.
pub(crate) fn render_process(out: &mut String, start_time_secs: f64) {
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may contain spaces) in ")".
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime = field 14, stime = 15, rss = 24 (1-based in proc(5));
            // `rest` starts at field 3.
            let tick = clock_ticks();
            let num = |i: usize| {
                f.get(i - 3)
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            single(
                out,
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                "counter",
                (num(14) + num(15)) / tick,
            );
            single(
                out,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                "gauge",
                num(24) * page_size(),
            );
            single(
                out,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                "gauge",
                num(23),
            );
        }
    }
    single(
        out,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        "gauge",
        start_time_secs,
    );
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        single(
            out,
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            rd.count() as f64,
        );
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn page_size() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as f64 } else { 4096.0 }
}
