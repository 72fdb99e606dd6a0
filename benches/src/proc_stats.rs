//! Resource use of the server under test, read from `/proc/<pid>`: resident
//! memory (`statm`) and CPU time (`stat` utime + stime), sampled on a
//! background thread so peaks between the harness' own checkpoints count.
//! Also the on-disk size of a data directory.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One reading of a process.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ProcSample {
    /// Seconds since the sampler started.
    pub t: f64,
    pub rss_bytes: u64,
    /// User + system CPU seconds since the process started.
    pub cpu_secs: f64,
}

/// Reads RSS and CPU time of `pid` now.
pub fn read(pid: u32) -> std::io::Result<(u64, f64)> {
    // SAFETY: sysconf has no preconditions; it only reads configuration.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    // SAFETY: as above.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm"))?;
    let rss_pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    Ok((rss_pages * page, parse_cpu_ticks(&stat) as f64 / ticks))
}

/// utime + stime (fields 14 and 15) from `/proc/<pid>/stat`. The command
/// name (field 2) may contain spaces and parentheses, so fields are counted
/// from the last `)`.
fn parse_cpu_ticks(stat: &str) -> u64 {
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": field 3 (state) is index 0, so utime (14) is index 11.
    let f = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    f(11) + f(12)
}

/// Summary of a sampling window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcSummary {
    pub pid: u32,
    pub wall_secs: f64,
    pub start_rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub end_rss_bytes: u64,
    /// CPU seconds the process used during the window.
    pub cpu_secs: f64,
    /// `cpu_secs / wall_secs`: average cores busy.
    pub cores_used: f64,
    /// True when the process vanished during the window (crashed or OOM).
    pub exited: bool,
    #[serde(skip)]
    pub samples: Vec<ProcSample>,
}

/// Samples a process every `every` until stopped.
pub struct ProcSampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    data: Arc<Mutex<(Vec<ProcSample>, bool)>>,
    handle: Option<JoinHandle<()>>,
    started: Instant,
}

impl ProcSampler {
    pub fn start(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let data = Arc::new(Mutex::new((Vec::new(), false)));
        let started = Instant::now();
        let handle = {
            let (stop, data) = (stop.clone(), data.clone());
            std::thread::spawn(move || {
                loop {
                    let reading = read(pid);
                    let mut d = data.lock().expect("sampler lock");
                    match reading {
                        Ok((rss, cpu)) => d.0.push(ProcSample {
                            t: started.elapsed().as_secs_f64(),
                            rss_bytes: rss,
                            cpu_secs: cpu,
                        }),
                        Err(_) => {
                            d.1 = true;
                            return;
                        }
                    }
                    drop(d);
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(every);
                }
            })
        };
        ProcSampler {
            pid,
            stop,
            data,
            handle: Some(handle),
            started,
        }
    }

    /// Readings so far.
    pub fn snapshot(&self) -> Vec<ProcSample> {
        self.data.lock().expect("sampler lock").0.clone()
    }

    /// Takes a last reading, stops the thread and summarises.
    pub fn finish(mut self) -> ProcSummary {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let (samples, exited) = self.data.lock().expect("sampler lock").clone();
        summarise(
            self.pid,
            self.started.elapsed().as_secs_f64(),
            samples,
            exited,
        )
    }
}

impl Drop for ProcSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Summarises readings taken over `wall_secs`.
pub fn summarise(pid: u32, wall_secs: f64, samples: Vec<ProcSample>, exited: bool) -> ProcSummary {
    let first = samples.first().copied().unwrap_or(ProcSample {
        t: 0.0,
        rss_bytes: 0,
        cpu_secs: 0.0,
    });
    let last = samples.last().copied().unwrap_or(first);
    let cpu_secs = last.cpu_secs - first.cpu_secs;
    let span = (last.t - first.t).max(1e-9);
    ProcSummary {
        pid,
        wall_secs,
        start_rss_bytes: first.rss_bytes,
        peak_rss_bytes: samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
        end_rss_bytes: last.rss_bytes,
        cpu_secs,
        cores_used: if samples.len() > 1 {
            cpu_secs / span
        } else {
            0.0
        },
        exited,
        samples,
    }
}

/// Bytes allocated on disk under `dir` (blocks, not apparent size: WAL
/// segments and mmapped chunk files are often preallocated or sparse).
pub fn dir_disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            total += dir_disk_bytes(&e.path());
        } else {
            total += meta.blocks() * 512;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_parse_past_a_command_name_with_spaces_and_parens() {
        let stat =
            "42 (my (odd) cmd) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 200";
        assert_eq!(parse_cpu_ticks(stat), 300);
    }

    #[test]
    fn sampling_this_process_sees_memory_and_cpu() {
        let s = ProcSampler::start(std::process::id(), Duration::from_millis(10));
        // Burn a little CPU so the delta is positive.
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(120) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let sum = s.finish();
        assert!(sum.peak_rss_bytes > 1 << 20, "rss {}", sum.peak_rss_bytes);
        assert!(sum.samples.len() >= 2);
        assert!(!sum.exited);
    }

    #[test]
    fn dir_disk_bytes_counts_nested_files() {
        let dir = std::env::temp_dir().join(format!("tessera-bench-du-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).expect("mkdir");
        std::fs::write(dir.join("a/b/f"), vec![1u8; 64 * 1024]).expect("write");
        let n = dir_disk_bytes(&dir);
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert!(n >= 64 * 1024, "{n}");
    }
}
