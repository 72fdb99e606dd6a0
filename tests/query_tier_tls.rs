//! `tessera query` over TLS with basic auth, end to end with real
//! processes and certificates made at test time (`common/tls.rs`): two
//! stores that require a client certificate and a password, the tier
//! holding the right CA, client certificate and password answers as one
//! plain server holding everything; a wrong password is an error naming the
//! store and the 401 (and heals when the password file is fixed, without a
//! restart); a CA the stores' certificates do not chain to is a handshake
//! error naming the store; and the tier's own `--web.config.file` makes its
//! clients authenticate.

mod common;

use std::path::{Path, PathBuf};

use common::prometheus::{assert_same_results, close, result_map};
use common::tls::{Pki, TestCa, basic};
use common::*;
use prost::Message;

/// bcrypt cost of the test users (low for debug builds, still bcrypt).
const COST: u32 = 6;
const STEP_MS: i64 = 15_000;
const INSTANCES: usize = 6;

/// Per instance a counter and a gauge over 20 minutes ending at `end`.
fn dataset(end: i64) -> Vec<(usize, tessera_ingest::proto::TimeSeries)> {
    let points = 80;
    let start = end - (points - 1) * STEP_MS;
    let mut out = Vec::new();
    for i in 0..INSTANCES {
        let instance = format!("node-{i}:9100");
        let counter: Vec<(i64, f64)> = (0..points)
            .map(|k| (start + k * STEP_MS, k as f64 * (1.0 + i as f64 * 0.25)))
            .collect();
        let gauge: Vec<(i64, f64)> = (0..points)
            .map(|k| (start + k * STEP_MS, 40.0 + i as f64 + (k % 7) as f64 * 0.5))
            .collect();
        let job = if i % 2 == 0 { "gpu" } else { "node" };
        out.push((
            i,
            series(
                &[
                    ("__name__", "work_seconds_total"),
                    ("instance", &instance),
                    ("job", job),
                ],
                &counter,
            ),
        ));
        out.push((
            i,
            series(
                &[
                    ("__name__", "gpu_temp_celsius"),
                    ("instance", &instance),
                    ("job", job),
                ],
                &gauge,
            ),
        ));
    }
    out
}

/// Two TLS stores (client certificate required, user `tier:store-pw`), a
/// plain server holding everything, and the files a tier needs.
struct Setup {
    pki: Pki,
    stores: Vec<Tessera>,
    single: Tessera,
    /// The tier's own web config: TLS, user `grafana:grafana-pw`.
    tier_web: PathBuf,
    end: i64,
    tmp: tempfile::TempDir,
}

impl Setup {
    fn start() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::create(tmp.path());
        let store_web = tmp.path().join("store-web.yml");
        std::fs::write(
            &store_web,
            pki.web_config(&[("tier", "store-pw"), ("writer", "write-pw")], COST)
                .replace("VerifyClientCertIfGiven", "RequireAndVerifyClientCert"),
        )
        .unwrap();
        let tier_web = tmp.path().join("tier-web.yml");
        std::fs::write(
            &tier_web,
            pki.web_config(&[("grafana", "grafana-pw")], COST),
        )
        .unwrap();
        let stores: Vec<Tessera> = (0..2)
            .map(|_| Tessera::start_https(&[], &store_web, pki.agent(Some("client"))))
            .collect();
        let single = Tessera::start(&[]);
        let end = now_ms() / 1000 * 1000 - 60_000;
        let data = dataset(end);
        let all: Vec<_> = data.iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(single.write(&request(all)).0, 204);
        for (p, store) in stores.iter().enumerate() {
            let mine: Vec<_> = data
                .iter()
                .filter(|(i, _)| i % 2 == p)
                .map(|(_, s)| s.clone())
                .collect();
            let body = snappy(&request(mine).encode_to_vec());
            let resp = store
                .agent
                .post(store.url("/api/v1/write"))
                .header("Content-Type", "application/x-protobuf")
                .header("Content-Encoding", "snappy")
                .header("Authorization", basic("writer", "write-pw"))
                .send(&body[..])
                .expect("write to a TLS store");
            assert_eq!(resp.status().as_u16(), 204);
        }
        Setup {
            pki,
            stores,
            single,
            tier_web,
            end,
            tmp,
        }
    }

    /// A file holding `password`.
    fn password_file(&self, name: &str, password: &str) -> PathBuf {
        let f = self.tmp.path().join(name);
        std::fs::write(&f, format!("{password}\n")).unwrap();
        f
    }

    /// The tier's flags to the stores (both partitions) with `ca` and the
    /// password in `password_file`.
    fn tier_args(&self, ca: &Path, password_file: &Path) -> Vec<String> {
        let mut a = Vec::new();
        for s in &self.stores {
            a.extend(["--store".into(), format!("https://127.0.0.1:{}", s.port)]);
        }
        a.extend([
            "--store.timeout".into(),
            "5s".into(),
            "--store.tls-ca-file".into(),
            ca.display().to_string(),
            "--store.tls-cert-file".into(),
            self.pki.path("client.crt"),
            "--store.tls-key-file".into(),
            self.pki.path("client.key"),
            "--store.basic-auth-username".into(),
            "tier".into(),
            "--store.basic-auth-password-file".into(),
            password_file.display().to_string(),
        ]);
        a
    }

    /// A TLS tier with its own web config and `args`.
    fn tier(&self, args: &[String]) -> Tessera {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Tessera::start_tier_https(&args, &self.tier_web, self.pki.agent(None))
    }
}

/// GET `path` on `t` as `grafana` (or without credentials): status and
/// JSON body (a body that is not JSON, as a 401's, as a JSON string).
fn api_as(t: &Tessera, path: &str, auth: bool) -> (u16, serde_json::Value) {
    let mut r = t.agent.get(t.url(path));
    if auth {
        r = r.header("Authorization", basic("grafana", "grafana-pw"));
    }
    let mut resp = r.call().expect("GET the tier");
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap();
    let v = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    (status, v)
}

#[test]
fn tier_with_the_right_ca_and_password_answers_as_one_server() {
    let s = Setup::start();
    let pw = s.password_file("pw", "store-pw");
    let tier = s.tier(&s.tier_args(&s.pki.dir.join("ca.crt"), &pw));
    let (start, end) = ((s.end - 15 * 60_000) / 1000, s.end / 1000);
    for q in [
        "gpu_temp_celsius",
        "sum by (job) (rate(work_seconds_total[2m]))",
        "count(gpu_temp_celsius)",
        "topk(2, gpu_temp_celsius)",
        "max_over_time(gpu_temp_celsius[5m]) - on(instance) group_left avg_over_time(gpu_temp_celsius[5m])",
    ] {
        let path = format!("/api/v1/query_range?query={q}&start={start}&end={end}&step=60");
        let (status, got) = api_as(&tier, &path, true);
        assert_eq!(status, 200, "{q}: {got}");
        assert_eq!(got["warnings"], serde_json::Value::Null, "{q}: {got}");
        let want = s.single.data(&path);
        assert_same_results(
            &result_map(&want["result"].to_string()),
            &result_map(&got["data"]["result"].to_string()),
            q,
            close,
        );
        assert!(!want["result"].as_array().unwrap().is_empty(), "{q}");
    }
    let (status, got) = api_as(&tier, "/api/v1/label/instance/values", true);
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got["data"],
        s.single.data("/api/v1/label/instance/values"),
        "label values through the tier"
    );
    assert_eq!(got["data"].as_array().unwrap().len(), INSTANCES);

    // The tier's own web config: its clients authenticate, probes stay open.
    let (status, body) = api_as(&tier, "/api/v1/query?query=count(gpu_temp_celsius)", false);
    assert_eq!(status, 401, "{body}");
    let resp = tier
        .agent
        .get(tier.url("/api/v1/labels"))
        .header("Authorization", basic("grafana", "wrong"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().contains_key("WWW-Authenticate"));
    assert_eq!(get_with(&tier.agent, &tier.url("/-/ready")).unwrap().0, 200);
    // Plain HTTP to the tier's TLS port is refused.
    let plain = get(&format!("http://127.0.0.1:{}/api/v1/labels", tier.port));
    assert!(!matches!(plain, Ok((200, _))), "{plain:?}");
}

#[test]
fn wrong_password_is_an_error_naming_the_store_until_the_file_is_fixed() {
    let s = Setup::start();
    let pw = s.password_file("pw", "not-the-password");
    let tier = s.tier(&s.tier_args(&s.pki.dir.join("ca.crt"), &pw));
    let store0 = format!("https://127.0.0.1:{}", s.stores[0].port);
    // Raw series (remote read), a pushed-down aggregation (query API) and a
    // listing: each an error naming a store and its 401, never an empty
    // success, partial responses on or not.
    for path in [
        "/api/v1/query?query=gpu_temp_celsius",
        "/api/v1/query?query=sum(gpu_temp_celsius)",
        "/api/v1/labels",
    ] {
        let (status, v) = api_as(&tier, path, true);
        assert_eq!(status, 503, "{path}: {v}");
        assert_eq!(v["status"], "error", "{path}: {v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains("401"), "{path}: {e}");
        assert!(
            e.contains("--store.basic-auth-password-file"),
            "{path}: {e}"
        );
        assert!(
            e.contains(&store0) || e.contains(&format!("https://127.0.0.1:{}", s.stores[1].port)),
            "{path}: names no store: {e}"
        );
    }
    // The password file is re-read when it changes: no restart needed.
    std::fs::write(&pw, "store-pw\n").unwrap();
    eventually("the tier to use the new password", || {
        let (status, v) = api_as(&tier, "/api/v1/query?query=count(gpu_temp_celsius)", true);
        match (status, v["data"]["result"][0]["value"][1].as_str()) {
            (200, Some(n)) if n == INSTANCES.to_string() => Ok(()),
            _ => Err(format!("{status}: {v}")),
        }
    });
}

#[test]
fn a_ca_the_stores_do_not_chain_to_is_a_handshake_error_naming_them() {
    let s = Setup::start();
    let pw = s.password_file("pw", "store-pw");
    let other_ca = s.tmp.path().join("other-ca.crt");
    std::fs::write(&other_ca, TestCa::new("unrelated CA").cert_pem).unwrap();
    let tier = s.tier(&s.tier_args(&other_ca, &pw));
    // Partial responses (the default): an answer whose warnings name both
    // partitions and the certificate error.
    let (status, v) = api_as(&tier, "/api/v1/query?query=gpu_temp_celsius", true);
    assert_eq!(status, 200, "{v}");
    let warnings = v["warnings"].to_string();
    for st in &s.stores {
        assert!(
            warnings.contains(&format!("https://127.0.0.1:{}", st.port)),
            "{warnings}"
        );
    }
    assert!(warnings.contains("UnknownIssuer"), "{warnings}");
    // Without partial responses: 503 saying the same.
    let (status, v) = api_as(
        &tier,
        "/api/v1/query?query=gpu_temp_celsius&partial_response=false",
        true,
    );
    assert_eq!(status, 503, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("UnknownIssuer") && e.contains("unavailable"),
        "{e}"
    );
}

#[test]
fn https_store_without_a_ca_refuses_to_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["query", "--store", "https://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--store.tls-ca-file"), "{err}");
}

#[test]
fn a_store_found_by_name_is_checked_for_that_name_unless_told_another() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(tmp.path());
    // A certificate for the address only: dialled as `localhost`, which
    // resolves to that address, it must fail the name check.
    let (cert, key) = pki.ca.issue("tessera", &["127.0.0.1"], false);
    std::fs::write(tmp.path().join("ip-only.crt"), cert).unwrap();
    std::fs::write(tmp.path().join("ip-only.key"), key).unwrap();
    let web = tmp.path().join("web.yml");
    std::fs::write(
        &web,
        pki.web_config(&[], COST)
            .replace("server.crt", "ip-only.crt")
            .replace("server.key", "ip-only.key"),
    )
    .unwrap();
    let store = Tessera::start_https(&[], &web, pki.agent(None));
    let t = now_ms() / 1000 * 1000 - 60_000;
    let body = snappy(
        &request(vec![series(
            &[("__name__", "up"), ("job", "a")],
            &[(t, 1.0)],
        )])
        .encode_to_vec(),
    );
    let resp = store
        .agent
        .post(store.url("/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .send(&body[..])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let ca = pki.path("ca.crt");
    let by_name = format!("https://localhost:{}", store.port);
    let path = format!("/api/v1/query?query=up&time={}", t / 1000);

    let tier = Tessera::start_tier(&["--store", &by_name, "--store.tls-ca-file", &ca]);
    let (status, v) = tier.api(&path);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["result"], serde_json::json!([]), "{v}");
    let w = v["warnings"][0].as_str().unwrap_or_default();
    assert!(w.contains(r#"not valid for name "localhost""#), "{v}");

    let tier = Tessera::start_tier(&[
        "--store",
        &by_name,
        "--store.tls-ca-file",
        &ca,
        "--store.tls-server-name",
        "127.0.0.1",
    ]);
    let v = tier.data(&path);
    assert_eq!(v["result"][0]["value"][1], "1", "{v}");

    // The same store given as http://: the tier says to use https://.
    let plain = format!("http://127.0.0.1:{}", store.port);
    let tier = Tessera::start_tier(&["--store", &plain]);
    let (status, v) = tier.api(&path);
    assert_eq!(status, 503, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains(&plain) && e.contains("give it as https://"),
        "{e}"
    );
}

#[test]
fn the_tiers_web_config_is_reloaded_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(tmp.path());
    let web = tmp.path().join("web.yml");
    std::fs::write(&web, pki.web_config(&[("grafana", "old-pw")], COST)).unwrap();
    let store = Tessera::start(&[]);
    let tier = Tessera::start_tier_https(
        &["--store", &format!("http://127.0.0.1:{}", store.port)],
        &web,
        pki.agent(None),
    );
    let status = |pw: &str| {
        tier.agent
            .get(tier.url("/api/v1/labels"))
            .header("Authorization", basic("grafana", pw))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status("old-pw"), 200);
    assert_eq!(status("new-pw"), 401);
    std::fs::write(&web, pki.web_config(&[("grafana", "new-pw")], COST)).unwrap();
    // SAFETY: kill(2) on the child's pid, which is alive until `tier` drops.
    unsafe { libc::kill(tier.child.id() as i32, libc::SIGHUP) };
    eventually("the tier to take the new password", || {
        match (status("new-pw"), status("old-pw")) {
            (200, 401) => Ok(()),
            seen => Err(format!("{seen:?}")),
        }
    });
}
