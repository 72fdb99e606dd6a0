//! `restart`: start the server from `--server-cmd`, ingest, `kill -9` it,
//! start it again on the same data dir, and time (a) until its readiness
//! path answers 200 and (b) until every acknowledged sample is queryable —
//! the durability contract (no acknowledged sample lost) and the replay
//! time the architecture promises to benchmark.
//!
//! "Queryable" is checked with `sum(count_over_time({__name__="…"}[R]))`
//! per metric name at the last sample's timestamp, with R covering every
//! round: the harness knows exactly how many samples were acknowledged.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

use super::ingest;
use super::{LoadArgs, TargetArgs, parse_duration};
use crate::client::{Client, base_url, url_encode};
use crate::generator::Fleet;
use crate::proc_stats::{ProcSampler, dir_disk_bytes};
use crate::report::RestartReport;

/// Options of the restart mode.
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    /// Shell command that starts the server in the foreground on `--url`
    /// with `--data-dir`, e.g. "tessera serve --listen 127.0.0.1:9201
    /// --data-dir /tmp/d". Run with `sh -c 'exec …'`, so the PID is the
    /// server's.
    #[arg(long)]
    pub server_cmd: String,
    /// Path answering 200 once the server is ready.
    #[arg(long, default_value = "/-/ready")]
    pub ready_path: String,
    /// Give up waiting for ready / queryable after this long.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub restart_timeout: Duration,
    /// Where the server's stdout/stderr go (default: discarded).
    #[arg(long)]
    pub server_log: Option<PathBuf>,
}

/// A server process the harness started; killed on drop.
pub struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    /// Starts `cmd` via `sh -c 'exec cmd'`.
    pub fn start(cmd: &str, log: Option<&PathBuf>) -> std::io::Result<Self> {
        let (out, err) = match log {
            Some(p) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?;
                (Stdio::from(f.try_clone()?), Stdio::from(f))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {cmd}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()?;
        Ok(ServerProcess { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL and reap: no chance to flush anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) {
        // SAFETY: kill(2) on our own child's PID; no memory is touched.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let t = Instant::now();
        while t.elapsed() < grace {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if !self.exited() {
            self.stop(Duration::from_secs(5));
        }
    }
}

/// Polls `url` until it answers 200; the elapsed time, or `None` on timeout
/// or if the process died.
pub async fn wait_ready(
    client: &Client,
    url: &str,
    server: &mut ServerProcess,
    timeout: Duration,
) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if server.exited() {
            return None;
        }
        if let Ok(r) = client.get(url, Duration::from_secs(2)).await
            && r.status == 200
        {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// The value of a scalar-ish instant query (first element of a vector).
pub async fn query_value(
    client: &Client,
    base: &str,
    q: &str,
    time_s: f64,
    timeout: Duration,
) -> Option<f64> {
    let url = format!(
        "{base}/api/v1/query?query={}&time={time_s:.3}",
        url_encode(q)
    );
    let r = client.get(&url, timeout).await.ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    let first = &v["data"]["result"][0]["value"][1];
    first.as_str()?.parse().ok()
}

/// Samples stored in `(at - range_s, at]`, summed over metric names.
///
/// One query per name because `count_over_time` drops `__name__`: over
/// `{job=~".+"}` two metrics with otherwise equal labels collide and
/// Prometheus refuses the whole query ("vector cannot contain metrics with
/// the same labelset"). `None` if the server cannot answer yet.
pub async fn count_samples(
    client: &Client,
    base: &str,
    range_s: i64,
    at: f64,
    timeout: Duration,
) -> Option<u64> {
    let url = format!(
        "{base}/api/v1/label/__name__/values?start={:.3}&end={at:.3}",
        at - range_s as f64
    );
    let r = client.get(&url, timeout).await.ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    let names = v["data"].as_array()?;
    let mut total = 0u64;
    for name in names.iter().filter_map(|n| n.as_str()) {
        let q = format!("sum(count_over_time({{__name__=\"{name}\"}}[{range_s}s]))");
        // An empty answer (no samples of that name in the window) is 0.
        total += query_value(client, base, &q, at, timeout)
            .await
            .unwrap_or(0.0) as u64;
    }
    Some(total)
}

pub async fn run(
    args: &RestartArgs,
    fleet: Fleet,
    load: &LoadArgs,
    target: &TargetArgs,
    client: &Client,
) -> anyhow::Result<RestartReport> {
    let base = base_url(&target.url);
    let ready_url = format!("{base}{}", args.ready_path);
    let mut server = ServerProcess::start(&args.server_cmd, args.server_log.as_ref())?;
    wait_ready(client, &ready_url, &mut server, args.restart_timeout)
        .await
        .ok_or_else(|| {
            anyhow::anyhow!(
                "server did not become ready at {ready_url} (command: {})",
                args.server_cmd
            )
        })?;
    let mut t = target.clone();
    t.pid = Some(server.pid());
    let (ingest, _fleet) = ingest::run(fleet, load, &t, client, !target.json).await;
    server.kill9();
    let disk_bytes_at_kill = target.data_dir.as_deref().map_or(0, dir_disk_bytes);

    let restarted = Instant::now();
    let mut server = ServerProcess::start(&args.server_cmd, args.server_log.as_ref())?;
    let replay = ProcSampler::start(server.pid(), Duration::from_millis(100));
    let ready = wait_ready(client, &ready_url, &mut server, args.restart_timeout).await;
    let ready_secs = restarted.elapsed().as_secs_f64();
    let replay = replay.finish();
    ready.ok_or_else(|| {
        anyhow::anyhow!("server not ready {:?} after kill -9", args.restart_timeout)
    })?;

    let acked = ingest.samples_acked;
    let range_s = ((ingest.max_ts_ms - ingest.min_ts_ms) / 1000 + 2).max(1);
    let at = ingest.max_ts_ms as f64 / 1000.0;
    let mut queried = 0u64;
    let mut queryable_secs = None;
    while restarted.elapsed() < args.restart_timeout {
        if let Some(v) = count_samples(client, &base, range_s, at, target.timeout).await {
            queried = v;
            if queried >= acked {
                queryable_secs = Some(restarted.elapsed().as_secs_f64());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop(Duration::from_secs(10));
    Ok(RestartReport {
        ingest,
        disk_bytes_at_kill,
        ready_secs,
        queryable_secs,
        acked_samples: acked,
        queried_samples: queried,
        replay: Some(replay),
    })
}
