//! The capacity harness against the real `tessera serve`: a short
//! GPU-fleet ingest (with pod churn) must complete without a failed request,
//! and the server must then list exactly the series the generator created.
//! Also checks that the harness' restart mode sees every acknowledged sample
//! after `kill -9`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tessera_bench::client::{Client, url_encode};
use tessera_bench::generator::{Fleet, FleetConfig};
use tessera_bench::modes::restart::{self, RestartArgs};
use tessera_bench::modes::{LoadArgs, Rate, TargetArgs, ingest};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The server, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve_cmd(port: u16, dir: &Path) -> String {
    format!(
        "{} serve --listen 127.0.0.1:{port} --data-dir {} --shards 4",
        env!("CARGO_BIN_EXE_tessera"),
        dir.display()
    )
}

fn start(port: u16, dir: &Path, log: &Path) -> Server {
    let log = std::fs::File::create(log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--shards",
            "4",
            "--data-dir",
        ])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("dup log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start tessera");
    Server(child)
}

async fn wait_ready(client: &Client, base: &str) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = client
            .get(&format!("{base}/-/ready"), Duration::from_secs(2))
            .await
            && r.status == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tessera not ready at {base} within 30 s");
}

fn load(rounds: u64) -> LoadArgs {
    LoadArgs {
        interval: Duration::from_secs(15),
        rounds,
        rate: Rate::Max,
        concurrency: 4,
        batch_samples: 2000,
        max_duration: Duration::from_secs(60),
    }
}

fn target(base: &str, pid: Option<u32>, dir: Option<PathBuf>) -> TargetArgs {
    TargetArgs {
        url: base.to_owned(),
        name: "tessera".into(),
        pid,
        data_dir: dir,
        timeout: Duration::from_secs(30),
        json: true,
        auth: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_ingest_with_churn_has_no_failures_and_server_lists_every_generated_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = start(
        port,
        &dir.path().join("data"),
        &dir.path().join("server.log"),
    );
    let client = Client::new(Duration::from_secs(30), 3);
    tokio::time::timeout(Duration::from_secs(120), async {
        wait_ready(&client, &base).await;
        let fleet = Fleet::new(FleetConfig {
            nodes: 2,
            churn_percent: 1.0,
            seed: 42,
            ..FleetConfig::default()
        });
        let active = fleet.active_series() as u64;
        let t = target(&base, Some(server.0.id()), Some(dir.path().join("data")));
        let (rep, fleet) = ingest::run(fleet, &load(3), &t, &client, false).await;

        assert_eq!(rep.requests_failed, 0, "first error: {:?}", rep.first_error);
        assert_eq!(
            rep.requests_rejected, 0,
            "first error: {:?}",
            rep.first_error
        );
        assert_eq!(rep.samples_acked, active * 3);
        assert!(
            fleet.series_created > active,
            "churn should have added series"
        );
        let p = rep.process.as_ref().expect("sampled the server");
        assert!(p.peak_rss_bytes > 0 && !p.exited);

        let url = format!(
            "{base}/api/v1/series?match[]={}&start={}&end={}",
            url_encode("{__name__=~\".+\"}"),
            rep.min_ts_ms / 1000 - 60,
            rep.max_ts_ms / 1000 + 60
        );
        let r = client
            .get(&url, Duration::from_secs(30))
            .await
            .expect("series call");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let (listed, _) = tessera_bench::modes::query::result_size(&r.body).expect("series JSON");
        assert_eq!(listed as u64, fleet.series_created);
    })
    .await
    .expect("bounded at 120 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mode_finds_every_acknowledged_sample_after_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let args = RestartArgs {
        server_cmd: serve_cmd(port, &data),
        ready_path: "/-/ready".into(),
        restart_timeout: Duration::from_secs(60),
        server_log: Some(dir.path().join("server.log")),
    };
    let client = Client::new(Duration::from_secs(30), 3);
    let fleet = Fleet::new(FleetConfig {
        nodes: 1,
        seed: 7,
        ..FleetConfig::default()
    });
    let rep = tokio::time::timeout(
        Duration::from_secs(150),
        restart::run(
            &args,
            fleet,
            &load(2),
            &target(&base, None, Some(data)),
            &client,
        ),
    )
    .await
    .expect("bounded at 150 s")
    .expect("restart run");
    assert_eq!(rep.ingest.requests_failed, 0);
    assert_eq!(rep.acked_samples, rep.ingest.samples_sent);
    assert!(
        rep.queryable_secs.is_some(),
        "only {} of {} acked samples queryable",
        rep.queried_samples,
        rep.acked_samples
    );
    assert_eq!(rep.queried_samples, rep.acked_samples);
}
