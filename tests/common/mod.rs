//! Shared pieces of the end-to-end tests: a real `tessera serve` process on
//! a free loopback port, an HTTP client, and remote-write request builders.
#![allow(dead_code)] // each test binary uses a different subset

pub(crate) mod input;
pub(crate) mod prometheus;
pub(crate) mod tls;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use tessera_ingest::proto;

/// Runs `tessera <args> --data-dir <dir>` (the offline tools) to completion.
pub(crate) fn tessera_cli(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run tessera")
}

/// A free TCP port on 127.0.0.1 (bound then released; a race with another
/// process is possible but harmless in tests).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

/// Percent-encodes the query part of `path?a=b&c=d`, so tests can write
/// selectors like `{le!=""}` literally.
pub(crate) fn encode_query(path: &str) -> String {
    let Some((p, q)) = path.split_once('?') else {
        return path.to_string();
    };
    let pairs: Vec<(&str, &str)> = q
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect();
    format!(
        "{p}?{}",
        serde_urlencoded::to_string(pairs).expect("encode query")
    )
}

/// A `tessera serve` child process, killed on drop.
pub(crate) struct Tessera {
    pub child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    /// `http` or, with a web config that has TLS, `https`.
    pub scheme: &'static str,
    /// The client `wait_ready` polls with (one that trusts the test CA for
    /// `https`).
    pub agent: ureq::Agent,
    _tmp: Option<tempfile::TempDir>,
}

impl Tessera {
    pub(crate) fn start(extra: &[&str]) -> Tessera {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("data");
        let mut t = Tessera::start_in(&dir, extra);
        t._tmp = Some(tmp);
        t
    }

    pub(crate) fn start_in(data_dir: &Path, extra: &[&str]) -> Tessera {
        Tessera::start_with(data_dir, extra, "http", agent())
    }

    /// Starts with `--web.config.file <web_config>` (which has TLS), polling
    /// readiness over `https` with `agent`.
    pub(crate) fn start_https(extra: &[&str], web_config: &Path, agent: ureq::Agent) -> Tessera {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("data");
        let mut args = vec!["--web.config.file", web_config.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut t = Tessera::start_with(&dir, &args, "https", agent);
        t._tmp = Some(tmp);
        t
    }

    fn start_with(
        data_dir: &Path,
        extra: &[&str],
        scheme: &'static str,
        agent: ureq::Agent,
    ) -> Tessera {
        let mut args = vec!["--data-dir".as_ref(), data_dir.as_os_str()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        Tessera::spawn("serve", &args, data_dir, scheme, agent)
    }

    /// A `tessera query` tier with `args` (its `--store`s and flags).
    pub(crate) fn start_tier(args: &[&str]) -> Tessera {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        Tessera::spawn("query", &args, Path::new(""), "http", agent())
    }

    /// A `tessera query` tier with `args` and `--web.config.file
    /// <web_config>` (which has TLS), polling readiness over `https` with
    /// `agent`.
    pub(crate) fn start_tier_https(
        args: &[&str],
        web_config: &Path,
        agent: ureq::Agent,
    ) -> Tessera {
        let mut all = vec![
            std::ffi::OsStr::new("--web.config.file"),
            web_config.as_os_str(),
        ];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        Tessera::spawn("query", &all, Path::new(""), "https", agent)
    }

    fn spawn(
        command: &str,
        args: &[&std::ffi::OsStr],
        data_dir: &Path,
        scheme: &'static str,
        agent: ureq::Agent,
    ) -> Tessera {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args([command, "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tessera");
        let t = Tessera {
            child,
            port,
            data_dir: data_dir.to_path_buf(),
            scheme,
            agent,
            _tmp: None,
        };
        t.wait_ready(Duration::from_secs(30));
        t
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!(
            "{}://127.0.0.1:{}{}",
            self.scheme,
            self.port,
            encode_query(path)
        )
    }

    pub(crate) fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(r) = get_with(&self.agent, &self.url("/-/ready"))
                && r.0 == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tessera on port {} not ready within {timeout:?}", self.port);
    }

    /// Remote-writes a request; returns status and body.
    pub(crate) fn write(&self, req: &proto::WriteRequest) -> (u16, String) {
        post_raw(&self.url("/api/v1/write"), &snappy(&req.encode_to_vec()))
    }

    /// POSTs a remote-read body (already snappy-compressed, or not: tests
    /// send broken ones too).
    pub(crate) fn read_raw(&self, body: &[u8]) -> Reply {
        post_protobuf(
            &self.url("/api/v1/read"),
            body,
            ("X-Prometheus-Remote-Read-Version", "0.1.0"),
        )
    }

    /// Remote-reads a request.
    pub(crate) fn read(&self, req: &tessera_ingest::remote_read::proto::ReadRequest) -> Reply {
        self.read_raw(&snappy(&req.encode_to_vec()))
    }

    /// GET of a Prometheus API path, parsed as JSON.
    pub(crate) fn api(&self, path_and_query: &str) -> (u16, serde_json::Value) {
        let (status, body) = get(&self.url(path_and_query)).expect("GET");
        let v = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path_and_query}: not JSON ({e}): {body}"));
        (status, v)
    }

    /// `data` of a successful API call.
    pub(crate) fn data(&self, path_and_query: &str) -> serde_json::Value {
        let (status, v) = self.api(path_and_query);
        assert_eq!(status, 200, "{path_and_query}: {v}");
        assert_eq!(v["status"], "success", "{v}");
        v["data"].clone()
    }
}

impl Drop for Tessera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The plain-HTTP client: statuses are answers, not errors.
pub(crate) fn agent() -> ureq::Agent {
    agent_config().build().into()
}

/// What every test client shares; `tls` adds its TLS settings.
pub(crate) fn agent_config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
}

pub(crate) fn get(url: &str) -> Result<(u16, String), ureq::Error> {
    get_with(&agent(), url)
}

pub(crate) fn get_with(agent: &ureq::Agent, url: &str) -> Result<(u16, String), ureq::Error> {
    let mut r = agent.get(url).call()?;
    let status = r.status().as_u16();
    Ok((status, r.body_mut().read_to_string().unwrap_or_default()))
}

pub(crate) fn post_raw(url: &str, body: &[u8]) -> (u16, String) {
    let r = post_protobuf(url, body, ("X-Prometheus-Remote-Write-Version", "0.1.0"));
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

/// The `Content-Type` Prometheus sends with a remote write 2.0 request.
pub(crate) const RW2_CONTENT_TYPE: &str =
    "application/x-protobuf;proto=io.prometheus.write.v2.Request";

/// A reply to a remote-write POST, with its written-count headers.
pub(crate) struct WriteReply {
    pub status: u16,
    pub body: String,
    /// `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written`,
    /// `None` when absent or not a number.
    pub written: [Option<u64>; 3],
}

/// POSTs an already-compressed remote-write body with the given
/// `Content-Type` (and the version header Prometheus sends with it).
pub(crate) fn post_write(url: &str, body: &[u8], content_type: &str) -> WriteReply {
    let version = if content_type.contains("write.v2") {
        "2.0.0"
    } else {
        "0.1.0"
    };
    let mut r = agent()
        .post(url)
        .header("Content-Type", content_type)
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", version)
        .send(body)
        .expect("POST");
    let written = ["samples", "histograms", "exemplars"].map(|k| {
        r.headers()
            .get(format!("x-prometheus-remote-write-{k}-written"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    WriteReply {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
        written,
    }
}

/// A reply to a protobuf POST, with the headers remote read sets.
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub body: Vec<u8>,
}

/// POSTs a snappy-compressed protobuf body as Prometheus' remote clients
/// do, with their version header.
pub(crate) fn post_protobuf(url: &str, body: &[u8], version: (&str, &str)) -> Reply {
    let mut r = agent()
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header(version.0, version.1)
        .send(body)
        .expect("POST");
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (content_type, content_encoding) = (header("content-type"), header("content-encoding"));
    Reply {
        status: r.status().as_u16(),
        content_type,
        content_encoding,
        body: r
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap_or_default(),
    }
}

pub(crate) fn post_form(url: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut r = agent()
        .post(url)
        .send_form(form.iter().copied())
        .expect("POST form");
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

pub(crate) fn snappy(b: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(b).expect("snappy")
}

pub(crate) fn label(n: &str, v: &str) -> proto::Label {
    proto::Label {
        name: n.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
    }
}

/// One series with the given labels and `(t, v)` samples.
pub(crate) fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> proto::TimeSeries {
    proto::TimeSeries {
        labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
        samples: samples
            .iter()
            .map(|&(t, v)| proto::Sample {
                value: v,
                timestamp: t,
            })
            .collect(),
        ..Default::default()
    }
}

pub(crate) fn request(ts: Vec<proto::TimeSeries>) -> proto::WriteRequest {
    proto::WriteRequest {
        timeseries: ts,
        metadata: vec![],
    }
}

/// A child process killed on drop, so a failing assertion leaves nothing
/// running.
pub(crate) struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `config` to `<dir>/prometheus.yml`, checks it with `promtool
/// check config` (a failure panics with the reason and the text), and
/// starts a real Prometheus on `127.0.0.1:<port>` keeping its TSDB under
/// `dir`, with `extra` flags.
pub(crate) fn start_prometheus_with(config: &str, dir: &Path, port: u16, extra: &[&str]) -> Proc {
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .expect("run promtool");
    assert!(
        check.status.success(),
        "generated Prometheus config is invalid: {}\n{config}",
        String::from_utf8_lossy(&check.stderr)
    );
    Proc(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prom").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    )
}

/// [`start_prometheus_with`] and no extra flags.
pub(crate) fn start_prometheus(config: &str, dir: &Path, port: u16) -> Proc {
    start_prometheus_with(config, dir, port, &[])
}

/// Is a Debian-packaged binary installed? When not: a visible skip, or a
/// failure in CI (see [`input`]).
pub(crate) fn have(bin: &str) -> bool {
    input::installed(bin)
}

/// Wall-clock now, ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Polls `f` every 100ms until it returns `Ok`, at most `timeout`; on
/// timeout panics with the last `Err` (what was seen instead).
pub(crate) fn eventually_within<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out waiting for {what}; last seen: {seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// [`eventually_within`] 15 s.
pub(crate) fn eventually<T>(what: &str, f: impl FnMut() -> Result<T, String>) -> T {
    eventually_within(what, Duration::from_secs(15), f)
}

/// The value of the sample `series` (a name with its `{labels}` as
/// rendered) in a `/metrics` text, if there is one.
pub(crate) fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
