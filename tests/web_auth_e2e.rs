//! `--web.config.file` end to end, against a real `tessera serve`:
//! certificates made at test time (`common/tls.rs`), a real Debian
//! Prometheus remote-writing over TLS with a client certificate and basic
//! auth, `promtool` querying over TLS, and the refusals: no or wrong
//! password (401 + `WWW-Authenticate`), a client certificate from another
//! CA and plain HTTP on the TLS port (refused at the connection), nothing
//! stored from any of them, and a bad web config on reload keeping the old
//! one.
//!
//! The Prometheus part is skipped with a visible `SKIPPED:` when the
//! packages are not installed (a failure in CI: see `common/input.rs`).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::tls::{Pki, basic};
use common::*;
use prost::Message;

/// bcrypt cost of the test users: low enough for debug builds, high enough
/// to be a real bcrypt.
const COST: u32 = 6;

/// A TLS Tessera with users `prometheus:remote-pw` and `grafana:read-pw`.
struct Setup {
    pki: Pki,
    tessera: Tessera,
    web_config: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

fn setup(extra: &[&str]) -> Setup {
    setup_with_cost(extra, COST)
}

fn setup_with_cost(extra: &[&str], cost: u32) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(tmp.path());
    let web_config = tmp.path().join("web.yml");
    std::fs::write(
        &web_config,
        pki.web_config(&[("prometheus", "remote-pw"), ("grafana", "read-pw")], cost),
    )
    .unwrap();
    let tessera = Tessera::start_https(extra, &web_config, pki.agent(Some("client")));
    Setup {
        pki,
        tessera,
        web_config,
        _tmp: tmp,
    }
}

/// Remote-writes `req` with `agent` and an optional Authorization header:
/// the status, or the connection error.
fn write_with(
    agent: &ureq::Agent,
    url: &str,
    auth: Option<&str>,
    req: &tessera_ingest::proto::WriteRequest,
) -> Result<(u16, Option<String>), ureq::Error> {
    let mut r = agent
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy");
    if let Some(a) = auth {
        r = r.header("Authorization", a);
    }
    let resp = r.send(&snappy(&req.encode_to_vec())[..])?;
    let www = resp
        .headers()
        .get("WWW-Authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((resp.status().as_u16(), www))
}

/// GET `path` with an optional Authorization header: status and body.
fn get_auth(agent: &ureq::Agent, t: &Tessera, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut r = agent.get(&t.url(path));
    if let Some(a) = auth {
        r = r.header("Authorization", a);
    }
    let mut resp = r.call().expect("GET");
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn reload(s: &Setup, auth: &str) -> (u16, String) {
    let mut resp = s
        .pki
        .agent(Some("client"))
        .post(&s.tessera.url("/-/reload"))
        .header("Authorization", auth)
        .send_empty()
        .expect("POST /-/reload");
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Series of `metric` Tessera holds, asked with valid credentials.
fn stored(s: &Setup, metric: &str) -> usize {
    let (status, body) = get_auth(
        &s.pki.agent(Some("client")),
        &s.tessera,
        &format!("/api/v1/series?match[]={metric}&start=0"),
        Some(&basic("grafana", "read-pw")),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"].as_array().unwrap().len()
}

#[test]
fn refuses_strangers_and_keeps_serving() {
    let s = setup(&["--web.enable-lifecycle"]);
    let t = &s.tessera;
    let url = t.url("/api/v1/write");
    let good = s.pki.agent(Some("client"));
    let no_cert = s.pki.agent(None);
    let refused = request(vec![series(
        &[("__name__", "refused_write")],
        &[(now_ms(), 1.0)],
    )]);

    // No password, wrong password, unknown user: 401 with the challenge.
    for auth in [
        None,
        Some(basic("prometheus", "wrong")),
        Some(basic("mallory", "remote-pw")),
    ] {
        for agent in [&good, &no_cert] {
            let (status, www) = write_with(agent, &url, auth.as_deref(), &refused).unwrap();
            assert_eq!(status, 401, "{auth:?}");
            assert_eq!(www.as_deref(), Some("Basic"), "{auth:?}");
        }
    }
    // A client certificate from another CA: the handshake is refused.
    let rogue = s.pki.agent(Some("rogue-client"));
    let err = write_with(
        &rogue,
        &url,
        Some(&basic("prometheus", "remote-pw")),
        &refused,
    )
    .expect_err("a certificate from another CA must not connect");
    assert!(!matches!(err, ureq::Error::StatusCode(_)), "{err}");
    // Plain HTTP to the TLS port: a 400 that says so, then the close.
    let plain_url = url.replacen("https://", "http://", 1);
    let (status, body) = post_raw(&plain_url, b"x");
    assert_eq!(status, 400);
    assert!(body.contains("HTTPS"), "{body}");

    // The server is still up, probes are open, reads need credentials and
    // the configured header is on every response.
    assert_eq!(get_auth(&no_cert, t, "/-/healthy", None).0, 200);
    assert_eq!(get_auth(&no_cert, t, "/-/ready", None).0, 200);
    assert_eq!(get_auth(&no_cert, t, "/api/v1/labels", None).0, 401);
    let resp = good
        .get(&t.url("/api/v1/labels"))
        .header("Authorization", basic("grafana", "read-pw"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["X-Content-Type-Options"], "nosniff");

    // The right password writes, with or without a client certificate.
    let ok = request(vec![series(
        &[("__name__", "accepted_write")],
        &[(now_ms(), 1.0)],
    )]);
    for agent in [&good, &no_cert] {
        let (status, _) =
            write_with(agent, &url, Some(&basic("prometheus", "remote-pw")), &ok).unwrap();
        assert_eq!(status, 204);
    }
    assert_eq!(stored(&s, "accepted_write"), 1);
    assert_eq!(stored(&s, "refused_write"), 0, "a refused write was stored");

    // The refusals are counted.
    let (_, metrics) = get_auth(&good, t, "/metrics", Some(&basic("grafana", "read-pw")));
    for reason in [
        "no_credentials",
        "bad_credentials",
        "tls_handshake",
        "plaintext",
    ] {
        let line = format!("tessera_http_refused_total{{reason=\"{reason}\"}} ");
        let n: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("{line} missing"))
            .parse()
            .unwrap();
        assert!(n >= 1.0, "{line}{n}");
    }

    // /-/reload needs credentials.
    let resp = good.post(&t.url("/-/reload")).send_empty().unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // A bad web config on reload: 500 with the reason, the old one stays.
    std::fs::write(
        &s.web_config,
        "basic_auth_users:\n  prometheus: not-a-hash\n",
    )
    .unwrap();
    let (status, body) = reload(&s, &basic("prometheus", "remote-pw"));
    assert_eq!(status, 500);
    assert!(body.contains("not a bcrypt hash"), "{body}");
    let (status, _) =
        write_with(&good, &url, Some(&basic("prometheus", "remote-pw")), &ok).unwrap();
    assert_eq!(status, 204, "the old web config must stay in force");
    assert_eq!(write_with(&good, &url, None, &ok).unwrap().0, 401);

    // A good one takes over: the new password works, the old one no longer.
    std::fs::write(
        &s.web_config,
        s.pki.web_config(&[("prometheus", "rotated-pw")], COST),
    )
    .unwrap();
    let (status, body) = reload(&s, &basic("prometheus", "remote-pw"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        write_with(&good, &url, Some(&basic("prometheus", "remote-pw")), &ok)
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        write_with(&good, &url, Some(&basic("prometheus", "rotated-pw")), &ok)
            .unwrap()
            .0,
        204
    );
}

/// SIGHUP rereads the web config (as POST /-/reload does): the new
/// password takes over, the old one is refused.
#[test]
fn sighup_reloads_the_web_config() {
    let s = setup(&[]);
    let agent = s.pki.agent(None);
    let labels = |pw: &str| {
        get_auth(
            &agent,
            &s.tessera,
            "/api/v1/labels",
            Some(&basic("grafana", pw)),
        )
        .0
    };
    assert_eq!(labels("read-pw"), 200);
    std::fs::write(
        &s.web_config,
        s.pki.web_config(&[("grafana", "new-pw")], COST),
    )
    .unwrap();
    // SAFETY: kill(2) on the child's pid, which this test owns.
    let rc = unsafe { libc::kill(s.tessera.child.id() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while labels("new-pw") != 200 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload the web config"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(labels("read-pw"), 401);
}

/// `--web.writers` and `--web.readers` keep Grafana's credential from
/// writing and Prometheus' from reading: 403, nothing stored.
#[test]
fn writers_and_readers_are_told_apart() {
    let s = setup(&["--web.writers", "prometheus", "--web.readers", "grafana"]);
    let agent = s.pki.agent(None);
    let url = s.tessera.url("/api/v1/write");
    let req = |name: &str| request(vec![series(&[("__name__", name)], &[(now_ms(), 1.0)])]);
    let write = |user: &str, pw: &str, name: &str| {
        write_with(&agent, &url, Some(&basic(user, pw)), &req(name))
            .unwrap()
            .0
    };
    assert_eq!(write("grafana", "read-pw", "written_by_grafana"), 403);
    assert_eq!(
        write("prometheus", "remote-pw", "written_by_prometheus"),
        204
    );
    let read = |user: &str, pw: &str| {
        get_auth(&agent, &s.tessera, "/api/v1/labels", Some(&basic(user, pw))).0
    };
    assert_eq!(read("prometheus", "remote-pw"), 403);
    assert_eq!(read("grafana", "read-pw"), 200);
    assert_eq!(stored(&s, "written_by_grafana"), 0);
    assert_eq!(stored(&s, "written_by_prometheus"), 1);
}

#[test]
fn lifecycle_is_off_by_default_and_reads_can_be_left_open() {
    // Without --web.enable-lifecycle, POST /-/reload is refused (SIGHUP is
    // the way to reload).
    let plain = Tessera::start(&[]);
    let (status, body) = post_raw(&plain.url("/-/reload"), b"");
    assert_eq!(status, 403);
    assert!(body.contains("Lifecycle API is not enabled"), "{body}");

    // --web.auth-required=write: queries open, writes still need a password.
    let s = setup(&["--web.auth-required", "write"]);
    let agent = s.pki.agent(None);
    assert_eq!(get_auth(&agent, &s.tessera, "/api/v1/labels", None).0, 200);
    let req = request(vec![series(&[("__name__", "w")], &[(now_ms(), 1.0)])]);
    assert_eq!(
        write_with(&agent, &s.tessera.url("/api/v1/write"), None, &req)
            .unwrap()
            .0,
        401
    );
}

#[test]
fn rotated_certificates_are_used_without_a_reload() {
    let s = setup(&[]);
    // A new CA and server certificate written over the old files, as
    // cert-manager does.
    let new_ca = common::tls::TestCa::new("rotated CA");
    let (cert, key) = new_ca.issue("tessera", &["127.0.0.1"], false);
    std::fs::write(s.pki.dir.join("server.key"), key).unwrap();
    std::fs::write(s.pki.dir.join("server.crt"), cert).unwrap();
    let trusts_new = {
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
        let ca = Certificate::from_pem(new_ca.cert_pem.as_bytes()).unwrap();
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::new_with_certs(&[ca]))
            .build();
        let agent: ureq::Agent = agent_config().tls_config(tls).build().into();
        agent
    };
    // The files are looked at once a second at most: poll (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = get_with(&trusts_new, &s.tessera.url("/-/healthy")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Figures for BENCHMARKS.md, printed (run with `--nocapture`), never
/// asserted: at bcrypt cost 10, a credential's first request pays the
/// bcrypt, later ones hit the cache; wrong passwords pay it every time.
#[test]
fn bcrypt_cache_figures() {
    let s = setup_with_cost(&[], 10);
    let agent = s.pki.agent(None);
    // The TLS connection is open before anything is timed.
    assert_eq!(get_auth(&agent, &s.tessera, "/-/healthy", None).0, 200);
    let timed = |auth: &str, want: u16| {
        let began = Instant::now();
        let status = get_auth(&agent, &s.tessera, "/api/v1/status/buildinfo", Some(auth)).0;
        assert_eq!(status, want);
        began.elapsed()
    };
    let good = basic("prometheus", "remote-pw");
    let first = timed(&good, 200);
    let mut cached: Vec<Duration> = (0..50).map(|_| timed(&good, 200)).collect();
    cached.sort();
    let wrong: Vec<Duration> = (0..5)
        .map(|_| timed(&basic("prometheus", "wrong"), 401))
        .collect();
    let no_auth: Vec<Duration> = (0..50)
        .map(|_| {
            let began = Instant::now();
            assert_eq!(get_auth(&agent, &s.tessera, "/-/healthy", None).0, 200);
            began.elapsed()
        })
        .collect();
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
    println!(
        "bcrypt cost 10 over TLS: first request {first:?}; cached: mean {:?} p99 {:?} (n=50); \
         wrong password: mean {:?} (n=5); open probe without auth: mean {:?} (n=50)",
        mean(&cached),
        cached[49],
        mean(&wrong),
        mean(&no_auth),
    );
}

/// deploy/web/web-config.yml, beside certificates named as Secret
/// `tessera-tls` names them, is accepted by Tessera and by promtool; its
/// placeholder hashes match no password.
#[test]
fn shipped_web_config_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(tmp.path());
    for (from, to) in [("server.crt", "tls.crt"), ("server.key", "tls.key")] {
        std::fs::copy(tmp.path().join(from), tmp.path().join(to)).unwrap();
    }
    let shipped =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/web/web-config.yml");
    let web_config = tmp.path().join("web-config.yml");
    std::fs::copy(shipped, &web_config).unwrap();
    let t = Tessera::start_https(&[], &web_config, pki.agent(None));
    let agent = pki.agent(Some("client"));
    assert_eq!(get_auth(&agent, &t, "/-/ready", None).0, 200);
    for user in ["prometheus", "grafana"] {
        let auth = basic(user, "");
        assert_eq!(get_auth(&agent, &t, "/api/v1/labels", Some(&auth)).0, 401);
    }
    if have("promtool") {
        let ca = pki.path("ca.crt");
        promtool(&["check", "web-config", web_config.to_str().unwrap()], &ca)
            .unwrap_or_else(|e| panic!("promtool refuses deploy/web/web-config.yml: {e}"));
    }
}

/// tessera-bench's client speaks TLS (with a client certificate) and basic
/// auth: a short fleet ingest is acknowledged whole; with a wrong password
/// every request is refused (401 is final, not retried).
#[test]
fn tessera_bench_ingests_over_tls_with_basic_auth() {
    use tessera_bench::client::{Client, ClientAuth};
    use tessera_bench::generator::{Fleet, FleetConfig};
    use tessera_bench::modes::{LoadArgs, Rate, TargetArgs, ingest};
    let s = setup(&[]);
    let password_file = s.pki.dir.join("password");
    let target = |password: &str| {
        std::fs::write(&password_file, format!("{password}\n")).unwrap();
        TargetArgs {
            url: s.tessera.url(""),
            name: "tessera".into(),
            pid: None,
            data_dir: None,
            timeout: Duration::from_secs(30),
            json: true,
            auth: ClientAuth {
                ca_file: Some(s.pki.dir.join("ca.crt")),
                cert_file: Some(s.pki.dir.join("client.crt")),
                key_file: Some(s.pki.dir.join("client.key")),
                username: Some("prometheus".into()),
                password_file: Some(password_file.clone()),
            },
        }
    };
    let load = LoadArgs {
        interval: Duration::from_secs(15),
        rounds: 2,
        rate: Rate::Max,
        concurrency: 2,
        batch_samples: 2000,
        max_duration: Duration::from_secs(60),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for (password, accepted) in [("remote-pw", true), ("wrong", false)] {
            let t = target(password);
            let client = Client::with_auth(t.timeout, 3, &t.auth).unwrap();
            let fleet = Fleet::new(FleetConfig {
                nodes: 1,
                ..FleetConfig::default()
            });
            let active = fleet.active_series() as u64;
            let (rep, _) = ingest::run(fleet, &load, &t, &client, false).await;
            if accepted {
                assert_eq!(
                    rep.requests_failed + rep.requests_rejected,
                    0,
                    "{:?}",
                    rep.first_error
                );
                assert_eq!(rep.samples_acked, active * 2);
            } else {
                assert_eq!(rep.samples_acked, 0);
                let err = rep.first_error.unwrap_or_default();
                assert!(err.contains("401"), "{err}");
            }
        }
    });
}

fn promtool(args: &[&str], ca: &str) -> Result<String, String> {
    let out = Command::new("promtool")
        .args(args)
        // Go reads extra roots from SSL_CERT_FILE; promtool 2.42 has no
        // --http.config.file.
        .env("SSL_CERT_FILE", ca)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn prometheus_remote_writes_over_tls_with_basic_auth() {
    if !have("prometheus") || !have("promtool") {
        return;
    }
    let s = setup(&[]);
    let ca = s.pki.path("ca.crt");
    // The real exporter toolkit accepts the web config Tessera runs with.
    let web_config = s.web_config.to_str().unwrap();
    promtool(&["check", "web-config", web_config], &ca).unwrap_or_else(|e| panic!("{e}"));

    let tmp = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n\
         scrape_configs:\n  - job_name: prometheus\n    static_configs: [{{targets: ['127.0.0.1:{prom_port}']}}]\n\
         remote_write:\n  - url: {url}\n    basic_auth: {{username: prometheus, password: remote-pw}}\n    \
         tls_config: {{ca_file: {ca}, cert_file: {cert}, key_file: {key}}}\n    \
         queue_config: {{batch_send_deadline: 1s}}\n",
        url = s.tessera.url("/api/v1/write"),
        cert = s.pki.path("client.crt"),
        key = s.pki.path("client.key"),
    );
    let _prom = start_prometheus(&config, tmp.path(), prom_port);

    // promtool reads back over TLS with the read-only user's password.
    let server = format!("https://grafana:read-pw@127.0.0.1:{}", s.tessera.port);
    let deadline = Instant::now() + Duration::from_secs(120);
    let answer = loop {
        let out = promtool(
            &[
                "query",
                "instant",
                &server,
                "prometheus_build_info{job=\"prometheus\"}",
            ],
            &ca,
        );
        match out {
            Ok(o) if o.contains("prometheus_build_info") => break o,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "Prometheus' samples never arrived over TLS: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    assert!(answer.contains("job=\"prometheus\""), "{answer}");
    // A wrong password is refused to promtool too.
    let wrong = format!("https://grafana:nope@127.0.0.1:{}", s.tessera.port);
    let err = promtool(&["query", "instant", &wrong, "up"], &ca).unwrap_err();
    assert!(err.contains("401") || err.contains("nauthorized"), "{err}");
}
