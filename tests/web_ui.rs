//! The operators' web page in a real headless Chromium (Debian's
//! `chromium` and `chromium-driver`), driven over WebDriver: the server is
//! loaded with the GPU-fleet shape by the bench harness' generator, then the
//! cardinality explorer is clicked through metric → label → values and its
//! figures checked against `/api/v1/series`, a query is charted and its
//! series counted, and every page is saved as a PNG under
//! `target/ui-screenshots/` (CI keeps the build folder).
//!
//! Without Chromium or chromedriver the test prints `SKIPPED: ...` and
//! passes; with `CI` set it fails instead (`tests/common/input.rs`).

mod common;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::input::missing;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tessera_bench::client::Client as BenchClient;
use tessera_bench::generator::{Fleet, FleetConfig};
use tessera_bench::modes::{LoadArgs, Rate, TargetArgs, ingest};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const METRIC: &str = "DCGM_FI_DEV_GPU_UTIL";
const NODES: usize = 3;

/// A recording rule and an alert that fires at once, for the rules page.
const RULES: &str = r#"groups:
  - name: gpu
    rules:
      - record: node:gpu_util:sum
        expr: sum by (Hostname) (DCGM_FI_DEV_GPU_UTIL)
      - alert: GpuFleetUp
        expr: count(DCGM_FI_DEV_GPU_UTIL) > 0
        labels:
          severity: info
"#;

/// chromedriver in a process group of its own with the Chromium it
/// starts: the whole group is killed when the test ends however it ends
/// (killing chromedriver alone leaves a failed test's browser running).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our child's process group; no memory involved.
        unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn browser_installed() -> bool {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(bin).is_file() {
            missing(
                &format!("{bin} is not installed"),
                "apt-get install chromium chromium-driver (scripts/test installs them when missing)",
            );
            return false;
        }
    }
    true
}

/// Where the screenshots go: `<target>/ui-screenshots`.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("create the screenshot dir");
    dir
}

async fn start_browser(profile: &Path) -> (Driver, Client) {
    let port = free_port();
    let driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let mut caps = serde_json::Map::new();
    // Without the background-networking flags Chromium keeps calling home,
    // which the closed network refuses.
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let conn = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(conn)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return (driver, c),
            Err(e) if Instant::now() > deadline => panic!("no WebDriver session: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Waits until the script returns something truthy; returns it.
async fn until(c: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = c.execute(script, vec![]).await.expect("execute");
        let ok = !matches!(&v, Value::Null | Value::Bool(false))
            && v.as_str() != Some("")
            && v.as_array().is_none_or(|a| !a.is_empty());
        if ok {
            return v;
        }
        if Instant::now() > deadline {
            let page = c
                .execute("return document.body.innerText", vec![])
                .await
                .unwrap_or_default();
            panic!("timed out waiting for {what}; the page shows: {page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the page `page` to finish rendering with the explorer state
/// `match_`/`focus` (the router sets `data-ready` once the page is drawn).
async fn explorer_at(c: &Client, match_: &str, focus: &str) {
    let script = format!(
        "const r = document.querySelector('main [data-page=explorer]'); \
         return document.body.dataset.ready === 'explorer' && r && \
         r.dataset.match === {} && r.dataset.focus === {};",
        json!(match_),
        json!(focus)
    );
    until(
        c,
        &format!("the explorer at match={match_} focus={focus}"),
        &script,
    )
    .await;
}

/// Opens `url` and waits until the router has drawn `page` there.
async fn open(c: &Client, url: &str, page: &str) {
    c.goto(url).await.expect("open the page");
    let script = format!("return document.body.dataset.ready === '{page}'");
    until(c, &format!("the {page} page"), &script).await;
}

/// The text of the first element `css` selects.
async fn text(c: &Client, css: &str) -> String {
    let e = c.find(Locator::Css(css)).await;
    let e = e.unwrap_or_else(|e| panic!("no {css} on the page: {e}"));
    e.text().await.expect("text")
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("save screenshot");
}

/// Clicks the link with `testid` whose text is `text`.
async fn click(c: &Client, testid: &str, text: &str) {
    let links = c
        .find_all(Locator::Css(&format!("[data-testid={testid}]")))
        .await
        .expect("find links");
    for l in links {
        if l.text().await.expect("text") == text {
            l.click().await.expect("click");
            return;
        }
    }
    panic!("no {testid} link {text:?} on the page");
}

/// Rows of the table `id` as the text of their cells.
async fn rows(c: &Client, id: &str) -> Vec<Vec<String>> {
    let v = c
        .execute(
            &format!(
                "return [...document.querySelectorAll('#{id} tbody tr')]\
                 .map(tr => [...tr.children].map(td => td.innerText.trim()));"
            ),
            vec![],
        )
        .await
        .expect("read table");
    serde_json::from_value(v).expect("rows of strings")
}

fn number(s: &str) -> u64 {
    s.replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {s:?}"))
}

/// How many series `/api/v1/series` lists for a selector.
fn series_count(t: &Tessera, selector: &str) -> u64 {
    t.data(&format!("/api/v1/series?match[]={selector}&start=0"))
        .as_array()
        .expect("a list")
        .len() as u64
}

/// The number of series `/api/v1/series` lists once two listings 3 s
/// apart (three rule evaluations) agree.
async fn settled_series_count(t: &Tessera) -> u64 {
    let mut last = series_count(t, "{__name__=~\".+\"}");
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = series_count(t, "{__name__=~\".+\"}");
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the series count never settled (last {last})");
}

/// The GPU-fleet shape (dcgm-exporter and node-exporter per node, pods
/// churning) from the bench harness' generator, through remote write.
async fn load_fleet(base: &str) {
    let client = BenchClient::new(Duration::from_secs(30), 3);
    let fleet = Fleet::new(FleetConfig {
        nodes: NODES,
        churn_percent: 5.0,
        seed: 19,
        ..FleetConfig::default()
    });
    let load = LoadArgs {
        interval: Duration::from_secs(15),
        rounds: 8,
        rate: Rate::Max,
        concurrency: 2,
        batch_samples: 2000,
        max_duration: Duration::from_secs(60),
    };
    let target = TargetArgs {
        url: base.to_owned(),
        name: "tessera".into(),
        pid: None,
        data_dir: None,
        timeout: Duration::from_secs(30),
        json: true,
        auth: Default::default(),
    };
    let (rep, _) = ingest::run(fleet, &load, &target, &client, false).await;
    assert_eq!(rep.requests_failed, 0, "first error: {:?}", rep.first_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explorer_query_rules_and_status_pages_in_headless_chromium() {
    if !browser_installed() {
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let rules = tmp.path().join("gpu.yml");
    std::fs::write(&rules, RULES).expect("write the rules");
    let t = Tessera::start(&[
        "--rules.file",
        rules.to_str().unwrap(),
        "--rules.evaluation-interval",
        "1s",
    ]);
    let base = t.url("");
    load_fleet(&base).await;
    // The rules write their outputs (and ALERTS) every second: let them
    // settle, or the page's head count and a later /api/v1/series listing
    // can straddle an evaluation that adds a series.
    let settled = settled_series_count(&t).await;
    let profile = tempfile::tempdir().expect("profile dir");
    let (_driver, c) = start_browser(profile.path()).await;

    // Explorer, first view: the heaviest metrics of the fleet.
    c.goto(&format!("{base}/#/explorer")).await.expect("open");
    explorer_at(&c, "", "").await;
    let total = number(&text(&c, "#total-series").await);
    assert_eq!(total, settled, "the head's series vs /api/v1/series");
    assert_eq!(total, series_count(&t, "{__name__=~\".+\"}"));
    screenshot(&c, "explorer").await;

    // The match[] filter: the GPU utilisation metrics only.
    let filter = r#"{__name__=~"DCGM_FI_DEV_.*_UTIL"}"#;
    let input = c.find(Locator::Css("input[name=match]")).await.unwrap();
    input.send_keys(filter).await.unwrap();
    let apply = c.find(Locator::Css("form.bar button[type=submit]")).await;
    apply.unwrap().click().await.unwrap();
    explorer_at(&c, filter, "").await;
    let metrics = rows(&c, "metric-names").await;
    assert!(
        metrics.iter().all(|r| r[0].ends_with("_UTIL")),
        "{metrics:?}"
    );
    for r in &metrics {
        assert_eq!(number(&r[1]), series_count(&t, &r[0]), "{}", r[0]);
    }

    // Metric → its series and labels.
    click(&c, "metric-link", METRIC).await;
    let metric_sel = format!(r#"{{__name__=~"DCGM_FI_DEV_.*_UTIL",__name__="{METRIC}"}}"#);
    explorer_at(&c, &metric_sel, "").await;
    let listed = t.data(&format!("/api/v1/series?match[]={METRIC}&start=0"));
    let listed = listed.as_array().unwrap();
    let shown = number(&text(&c, "#total-series").await);
    assert_eq!(shown, listed.len() as u64, "series of {METRIC}");
    let labels = rows(&c, "label-names").await;
    let gpu_row = labels
        .iter()
        .find(|r| r[0] == "gpu")
        .unwrap_or_else(|| panic!("no gpu label among {labels:?}"));
    let distinct: std::collections::BTreeSet<&str> =
        listed.iter().filter_map(|s| s["gpu"].as_str()).collect();
    assert_eq!(number(&gpu_row[1]), distinct.len() as u64, "gpu values");
    assert_eq!(number(&gpu_row[2]), listed.len() as u64, "with a gpu");
    screenshot(&c, "explorer-metric").await;

    // Label → its values, each with the series /api/v1/series lists.
    click(&c, "label-link", "gpu").await;
    explorer_at(&c, &metric_sel, "gpu").await;
    let values = rows(&c, "focus-values").await;
    assert_eq!(values.len(), distinct.len().min(10), "{values:?}");
    for r in &values {
        let sel = format!("{METRIC}{{gpu=\"{}\"}}", r[0]);
        assert_eq!(number(&r[1]), series_count(&t, &sel), "{sel}");
    }
    screenshot(&c, "explorer-values").await;

    // Value → the series with it.
    let first = values[0][0].clone();
    click(&c, "value-link", &first).await;
    let inner = metric_sel.trim_end_matches('}');
    let sel = format!("{inner},gpu=\"{first}\"}}");
    explorer_at(&c, &sel, "").await;
    let shown = number(&text(&c, "#total-series").await);
    assert_eq!(shown, series_count(&t, &sel));

    // Query: one line per node, as many as the API answers.
    let expr = format!("sum by (Hostname) ({METRIC})");
    let url = format!("{base}/#/query?expr={}&range=1h", urlencode(&expr));
    open(&c, &url, "query").await;
    let chart = c.find(Locator::Id("chart")).await.expect("a chart");
    let count = chart.attr("data-series-count").await.unwrap();
    let count: u64 = count.expect("a series count").parse().unwrap();
    assert_eq!(count, NODES as u64);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let api = t.data(&format!(
        "/api/v1/query_range?query={expr}&start={}&end={now}&step=15",
        now - 3600
    ));
    assert_eq!(count, api["result"].as_array().unwrap().len() as u64);
    // uPlot drew them: its legend lists one row per series besides time.
    let drawn = until(
        &c,
        "the chart's legend",
        "return document.querySelectorAll('#chart .u-legend .u-series').length - 1;",
    )
    .await;
    assert_eq!(drawn.as_u64(), Some(count));
    let stats = text(&c, "[data-testid=query-stats]").await;
    assert!(
        stats.contains(&format!("{NODES} series")) && stats.contains("server:"),
        "{stats}"
    );
    screenshot(&c, "query").await;

    // The same as a table: an instant query, one row per node.
    let url = format!("{base}/#/query?expr={}&mode=table", urlencode(&expr));
    open(&c, &url, "query").await;
    let table = rows(&c, "result-table").await;
    assert_eq!(table.len(), NODES, "{table:?}");
    assert!(
        table.iter().all(|r| r[0].contains("Hostname=")),
        "{table:?}"
    );

    // A bad expression: the server's error, and where it points.
    let url = format!("{base}/#/query?expr={}", urlencode("sum(rate(up[5m])"));
    open(&c, &url, "query").await;
    let err = text(&c, "[data-testid=query-error]").await;
    assert!(err.contains("unclosed left parenthesis"), "{err}");
    assert!(err.contains("^ line 1, column 17"), "{err}");
    screenshot(&c, "query-error").await;

    // Rules and alerts: the group's two rules, and the alert firing.
    eventually("the alert to fire", || {
        let d = t.data("/api/v1/alerts");
        let firing = d["alerts"].as_array().is_some_and(|a| a.len() == 1);
        firing.then_some(()).ok_or_else(|| d.to_string())
    });
    open(&c, &format!("{base}/#/rules"), "rules").await;
    let alerts = rows(&c, "alerts").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0][0], "GpuFleetUp");
    assert_eq!(alerts[0][1], "firing");
    let group = rows(&c, "group-gpu").await;
    let names: Vec<&str> = group.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["node:gpu_util:sum", "GpuFleetUp"]);
    assert!(group.iter().all(|r| r[2] == "ok"), "{group:?}");
    screenshot(&c, "rules").await;
    open(&c, &format!("{base}/#/status"), "status").await;
    let build = text(&c, "#build").await;
    assert!(build.contains("tessera"), "{build}");
    let flags = rows(&c, "flags").await;
    assert!(flags.iter().any(|r| r[0] == "api_max_series"), "{flags:?}");
    let errors = c
        .execute(
            "return document.querySelectorAll('.msg.error').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(errors, json!(0), "the status page shows an error");
    screenshot(&c, "status").await;
    c.close().await.expect("close the session");
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).unwrap()[1..].to_string()
}

/// The page without a browser: content types, caching, gzip, 304, 404,
/// and the auth middleware in front of it (a page is a read).
#[test]
fn serves_the_page_with_types_caching_gzip_and_auth() {
    let t = Tessera::start(&[]);
    let fetch = |path: &str, headers: &[(&str, &str)]| {
        let mut req = agent().get(&t.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut r = req.call().expect("GET");
        let h = |k: &str| r.headers().get(k).map(|v| v.to_str().unwrap().to_string());
        let head = (
            h("content-type"),
            h("content-encoding"),
            h("cache-control"),
            h("etag"),
        );
        let body = r.body_mut().read_to_vec().unwrap_or_default();
        (r.status().as_u16(), head, body)
    };
    let (status, (ctype, enc, cache, etag), body) = fetch("/", &[]);
    assert_eq!(status, 200);
    assert_eq!(ctype.as_deref(), Some("text/html; charset=utf-8"));
    assert_eq!((enc, cache.as_deref()), (None, Some("no-cache")));
    let html = String::from_utf8(body).unwrap();
    assert!(
        html.contains("/ui/vendor/uPlot-1.6.32.iife.min.js"),
        "{html}"
    );
    let etag = etag.expect("an ETag");
    assert_eq!(fetch("/", &[("If-None-Match", &etag)]).0, 304);

    let (status, (ctype, enc, cache, _), body) = fetch(
        "/ui/vendor/uPlot-1.6.32.iife.min.js",
        &[("Accept-Encoding", "gzip, br")],
    );
    assert_eq!(status, 200);
    assert_eq!(ctype.as_deref(), Some("text/javascript; charset=utf-8"));
    assert_eq!(enc.as_deref(), Some("gzip"));
    assert!(cache.unwrap().contains("immutable"));
    assert_eq!(&body[..2], b"\x1f\x8b", "a gzip stream");
    let (_, (ctype, ..), _) = fetch("/ui/app.css", &[]);
    assert_eq!(ctype.as_deref(), Some("text/css; charset=utf-8"));
    assert_eq!(fetch("/ui/../Cargo.toml", &[]).0, 404);
    assert_eq!(fetch("/ui/nope.js", &[]).0, 404);
    drop(t);

    // With users configured, the page asks for credentials like the API.
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("read-pw", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  grafana: {hash}\n")).unwrap();
    let t = Tessera::start(&["--web.config.file", web.to_str().unwrap()]);
    let status = |path: &str, auth: Option<&str>| {
        let mut req = agent().get(&t.url(path));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req.call().expect("GET").status().as_u16()
    };
    assert_eq!(status("/", None), 401);
    assert_eq!(status("/ui/app.js", None), 401);
    // grafana:read-pw
    let auth = "Basic Z3JhZmFuYTpyZWFkLXB3";
    assert_eq!(status("/", Some(auth)), 200);
    assert_eq!(status("/ui/app.js", Some(auth)), 200);
}
