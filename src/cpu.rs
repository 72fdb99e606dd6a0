//! The CPU budget: how many cores Tessera may use.
//!
//! Every thread pool is sized from one number. By default it is the cgroup
//! CPU quota (a Kubernetes CPU limit), not the host's core count: a Go
//! Prometheus on a 96-core node with a 24-core limit ran 96 threads into the
//! quota and replayed its WAL slower than with GOMAXPROCS=24.

use std::path::Path;

/// Where the budget came from, for the start-up log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CpuSource {
    Flag,
    CgroupV2,
    CgroupV1,
    Host,
}

/// The CPU budget in whole cores (at least 1) and its source.
pub(crate) fn detect(flag: Option<usize>) -> (usize, CpuSource) {
    if let Some(n) = flag {
        return (n.max(1), CpuSource::Flag);
    }
    let host = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(q) = cgroup_v2_quota(Path::new("/sys/fs/cgroup/cpu.max")) {
        return (cores_from_quota(q).min(host), CpuSource::CgroupV2);
    }
    if let Some(q) = cgroup_v1_quota(Path::new("/sys/fs/cgroup/cpu")) {
        return (cores_from_quota(q).min(host), CpuSource::CgroupV1);
    }
    (host, CpuSource::Host)
}

/// Rounds a fractional quota up: a 1.5-core limit gets 2 threads, which the
/// kernel throttles to 1.5 cores on average.
fn cores_from_quota(q: f64) -> usize {
    (q.ceil() as usize).max(1)
}

/// `cpu.max` holds `max 100000` (no limit) or `<quota> <period>`.
fn cgroup_v2_quota(path: &Path) -> Option<f64> {
    parse_cpu_max(&std::fs::read_to_string(path).ok()?)
}

fn parse_cpu_max(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let quota = it.next()?;
    let period: f64 = it.next()?.parse().ok()?;
    if quota == "max" || period <= 0.0 {
        return None;
    }
    Some(quota.parse::<f64>().ok()? / period)
}

fn cgroup_v1_quota(dir: &Path) -> Option<f64> {
    let quota: f64 = std::fs::read_to_string(dir.join("cpu.cfs_quota_us"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let period: f64 = std::fs::read_to_string(dir.join("cpu.cfs_period_us"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cgroup_v2_cpu_max() {
        let f = |s: &str, want: Option<f64>| assert_eq!(parse_cpu_max(s), want, "{s:?}");
        f("max 100000\n", None);
        f("200000 100000\n", Some(2.0));
        f("150000 100000", Some(1.5));
        f("", None);
        f("garbage", None);
    }

    #[test]
    fn rounds_fractional_quota_up() {
        assert_eq!(cores_from_quota(1.5), 2);
        assert_eq!(cores_from_quota(0.2), 1);
        assert_eq!(cores_from_quota(24.0), 24);
    }

    #[test]
    fn flag_wins_and_is_at_least_one() {
        assert_eq!(detect(Some(3)), (3, CpuSource::Flag));
        assert_eq!(detect(Some(0)).0, 1);
    }
}
