//! `tessera query` end to end: three partitions of two `tessera serve`
//! replicas each and one `tessera serve` holding everything, all real
//! processes on loopback, fed the same remote writes. The tier must answer
//! like the single server, survive a replica's SIGKILL per partition, and
//! say which partition is missing when both of its replicas hang.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::prometheus::{assert_same_results, result_map};
use common::*;
use tessera_ingest::proto::TimeSeries;

const PARTITIONS: usize = 3;
const INSTANCES: usize = 12;
const STEP_MS: i64 = 15_000;
/// The tier's `--store.timeout` in these tests.
const STORE_TIMEOUT: &str = "2s";

/// The partition of an instance: a hash of its `instance` label, so each
/// instance's series live on one partition (as `hashmod` places them).
fn partition_of(instance: &str) -> usize {
    let h = instance.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    (h % PARTITIONS as u64) as usize
}

/// 40 minutes of a GPU-fleet-like dataset ending at `end`: per instance a
/// CPU counter per mode (with one reset), a temperature gauge per GPU.
fn dataset(end: i64) -> Vec<(String, TimeSeries)> {
    let points = 160;
    let start = end - (points - 1) * STEP_MS;
    let mut out = Vec::new();
    for i in 0..INSTANCES {
        let instance = format!("node-{i}:9100");
        let job = if i % 3 == 0 { "gpu" } else { "node" };
        for (m, mode) in ["idle", "user", "system"].iter().enumerate() {
            let samples: Vec<(i64, f64)> = (0..points)
                .map(|k| {
                    // A counter reset on instance 5 half way.
                    let k2 = if i == 5 && k >= points / 2 {
                        k - points / 2
                    } else {
                        k
                    };
                    let t = start + k * STEP_MS;
                    (t, (k2 as f64) * (1.5 + i as f64 * 0.1 + m as f64 * 0.37))
                })
                .collect();
            out.push((
                instance.clone(),
                series(
                    &[
                        ("__name__", "node_cpu_seconds_total"),
                        ("instance", &instance),
                        ("job", job),
                        ("mode", mode),
                    ],
                    &samples,
                ),
            ));
        }
        for gpu in 0..2 {
            let samples: Vec<(i64, f64)> = (0..points)
                // Instance 7 stops reporting GPU 1 after a while: a gap.
                .filter(|k| !(i == 7 && gpu == 1 && *k > 100))
                .map(|k| {
                    let t = start + k * STEP_MS;
                    (
                        t,
                        40.0 + ((i * 7 + gpu * 3) as f64) + ((k % 17) as f64) * 0.25,
                    )
                })
                .collect();
            out.push((
                instance.clone(),
                series(
                    &[
                        ("__name__", "gpu_temp_celsius"),
                        ("instance", &instance),
                        ("job", job),
                        ("gpu", &gpu.to_string()),
                    ],
                    &samples,
                ),
            ));
        }
    }
    out
}

/// Partitions of replicas, and the single server holding everything.
struct Fleet {
    single: Tessera,
    replicas: Vec<Vec<Tessera>>,
    end: i64,
}

impl Fleet {
    /// Three partitions of two replicas; every replica of a partition gets
    /// the partition's series as `copies` makes them.
    fn start(copies: impl Fn(&TimeSeries) -> Vec<TimeSeries>) -> Fleet {
        let single = Tessera::start(&[]);
        let replicas: Vec<Vec<Tessera>> = (0..PARTITIONS)
            .map(|_| vec![Tessera::start(&[]), Tessera::start(&[])])
            .collect();
        let end = now_ms() / 1000 * 1000 - 60_000;
        let data = dataset(end);
        let all: Vec<TimeSeries> = data.iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(single.write(&request(all)).0, 204);
        for (p, pair) in replicas.iter().enumerate() {
            let mine: Vec<TimeSeries> = data
                .iter()
                .filter(|(i, _)| partition_of(i) == p)
                .flat_map(|(_, s)| copies(s))
                .collect();
            assert!(!mine.is_empty(), "partition {p} holds no instance");
            for r in pair {
                let (status, body) = r.write(&request(mine.clone()));
                assert_eq!(status, 204, "{body}");
            }
        }
        Fleet {
            single,
            replicas,
            end,
        }
    }

    /// The `--store` value of partition `p`.
    fn store(&self, p: usize) -> String {
        let urls: Vec<String> = self.replicas[p]
            .iter()
            .map(|r| format!("http://127.0.0.1:{}", r.port))
            .collect();
        urls.join(",")
    }

    fn tier(&self, store_timeout: &str, extra: &[&str]) -> Tessera {
        let stores: Vec<String> = (0..PARTITIONS).map(|p| self.store(p)).collect();
        Fleet::tier_of(&stores, store_timeout, extra)
    }

    /// A tier given every replica as `dns+localhost:<port>`: names it
    /// resolves (to 127.0.0.1, and ::1 where the host has it, where no
    /// store listens: one more replica that fails).
    fn dns_tier(&self) -> Tessera {
        let stores: Vec<String> = self
            .replicas
            .iter()
            .map(|rs| {
                let names: Vec<String> = rs
                    .iter()
                    .map(|r| format!("dns+localhost:{}", r.port))
                    .collect();
                names.join(",")
            })
            .collect();
        Fleet::tier_of(&stores, STORE_TIMEOUT, &[])
    }

    fn tier_of(stores: &[String], store_timeout: &str, extra: &[&str]) -> Tessera {
        let mut args = vec!["--store.timeout", store_timeout];
        for s in stores {
            args.extend(["--store", s]);
        }
        args.extend(extra);
        Tessera::start_tier(&args)
    }

    /// Successful requests of `handler` every store has served.
    fn store_requests(&self, handler: &str) -> f64 {
        let series = format!("tessera_http_requests_total{{handler=\"{handler}\",code=\"200\"}}");
        self.replicas
            .iter()
            .flatten()
            .map(|r| {
                let (_, m) = get(&r.url("/metrics")).expect("metrics");
                metric_value(&m, &series).unwrap_or(0.0)
            })
            .sum()
    }

    /// The dashboard-style calls whose answers the tier must share with
    /// the single server.
    fn calls(&self) -> Vec<String> {
        let (end, start) = (self.end / 1000, self.end / 1000 - 1200);
        let queries = [
            "gpu_temp_celsius",
            "node_cpu_seconds_total{mode=\"user\"}",
            "sum by (job) (rate(node_cpu_seconds_total[5m]))",
            "sum(irate(node_cpu_seconds_total[2m]))",
            "increase(node_cpu_seconds_total{instance=\"node-5:9100\"}[10m])",
            "min by (job) (gpu_temp_celsius)",
            "max by (gpu) (gpu_temp_celsius)",
            "count by (job) (gpu_temp_celsius)",
            "group by (job, mode) (node_cpu_seconds_total)",
            "topk(3, gpu_temp_celsius)",
            "bottomk(2, rate(node_cpu_seconds_total[5m]))",
            "avg by (job) (gpu_temp_celsius)",
            "count_values by (job) (\"temp\", gpu_temp_celsius)",
            "avg(gpu_temp_celsius) - 40",
            "max_over_time(avg by (job) (gpu_temp_celsius)[10m:1m])",
            "sum by (job) (gpu_temp_celsius offset 5m)",
            "quantile(0.9, gpu_temp_celsius)",
            "stddev by (job) (gpu_temp_celsius)",
        ];
        let mut calls = Vec::new();
        for q in queries {
            calls.push(format!("/api/v1/query?query={q}&time={end}"));
            calls.push(format!(
                "/api/v1/query_range?query={q}&start={start}&end={end}&step=60"
            ));
        }
        let window = format!("start={}&end={end}", start - 3600);
        calls.extend([
            format!("/api/v1/series?match[]=gpu_temp_celsius{{job=\"gpu\"}}&{window}"),
            format!("/api/v1/series?match[]=node_cpu_seconds_total&match[]=gpu_temp_celsius{{gpu=\"1\"}}&{window}"),
            format!("/api/v1/series?match[]={{__name__=~\".+\"}}&limit=5&{window}"),
            format!("/api/v1/labels?{window}"),
            format!("/api/v1/labels?match[]=gpu_temp_celsius&{window}"),
            format!("/api/v1/label/instance/values?{window}"),
            format!("/api/v1/label/mode/values?match[]=node_cpu_seconds_total{{job=\"gpu\"}}&{window}"),
            format!("/api/v1/label/instance/values?limit=4&{window}"),
            "/api/v1/metadata".to_string(),
        ]);
        calls
    }
}

/// Asserts the tier answers `call` as the single server does: the same
/// series and timestamps, values within 1e-9 relative (sums in another
/// order), listings identical. Returns the tier's warnings.
fn assert_same(single: &Tessera, tier: &Tessera, call: &str) -> Vec<String> {
    let (ws, want) = single.api(call);
    let (gs, got) = tier.api(call);
    assert_eq!((gs, &got["status"]), (ws, &want["status"]), "{call}: {got}");
    let warnings: Vec<String> = got["warnings"]
        .as_array()
        .map(|w| w.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    if call.contains("limit=") {
        // Which `limit` items come back is the server's choice: the same
        // count and the same truncation warning.
        let n = |v: &serde_json::Value| v["data"].as_array().map(Vec::len);
        assert_eq!(n(&got), n(&want), "{call}");
        assert_eq!(got["warnings"], want["warnings"], "{call}");
        return warnings;
    }
    if !call.starts_with("/api/v1/query") {
        assert_eq!(got["data"], want["data"], "{call}");
        return warnings;
    }
    assert_eq!(
        got["data"]["resultType"], want["data"]["resultType"],
        "{call}"
    );
    let map = |v: &serde_json::Value| -> BTreeMap<String, Vec<(f64, f64)>> {
        result_map(&v["data"]["result"].to_string())
    };
    let (want, got) = (map(&want), map(&got));
    assert!(!want.is_empty(), "{call}: the single server has no answer");
    assert_same_results(&want, &got, call, |a, b| {
        a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
    });
    warnings
}

fn signal(t: &Tessera, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    let r = unsafe { libc::kill(t.child.id() as libc::pid_t, sig) };
    assert_eq!(r, 0, "kill({sig})");
}

#[test]
fn the_tier_answers_like_one_server_survives_replica_loss_and_names_a_missing_partition() {
    let mut fleet = Fleet::start(|s| vec![s.clone()]);
    let tier = fleet.tier(STORE_TIMEOUT, &[]);
    let strict = fleet.tier(STORE_TIMEOUT, &["--query.partial-response=false"]);
    let patient = fleet.tier("60s", &[]);
    let calls = fleet.calls();

    for call in &calls {
        let w = assert_same(&fleet.single, &tier, call);
        assert!(
            w.iter().all(|w| !w.contains("unavailable")),
            "{call}: {w:?}"
        );
    }

    // Stores given as host names.
    let dns = fleet.dns_tier();
    for call in calls
        .iter()
        .filter(|c| c.contains("rate(") || c.contains("/labels"))
    {
        assert_same(&fleet.single, &dns, call);
    }
    drop(dns);

    // What splits is asked of the partitions' query API, not read raw;
    // what does not is read raw.
    let end = fleet.end / 1000;
    let pushed = format!(
        "/api/v1/query_range?query=avg by (job) (rate(node_cpu_seconds_total[5m])) > 0&start={}&end={end}&step=60",
        end - 600
    );
    let raw = format!("/api/v1/query?query=quantile(0.9, gpu_temp_celsius)&time={end}");
    let counted =
        format!("/api/v1/query?query=count_values(\"temp\", gpu_temp_celsius)&time={end}");
    // Each call answered as the single server does, with the store requests
    // (remote reads, range queries, instant queries) it caused.
    let handlers = ["/api/v1/read", "/api/v1/query_range", "/api/v1/query"];
    let n = PARTITIONS as f64;
    for (call, want) in [
        // sum and count, on each partition.
        (&pushed, [0.0, 2.0 * n, 0.0]),
        (&raw, [n, 0.0, 0.0]),
        (&counted, [0.0, 0.0, n]),
    ] {
        let before = handlers.map(|h| fleet.store_requests(h));
        assert_same(&fleet.single, &tier, call);
        let caused: Vec<f64> = handlers
            .iter()
            .zip(before)
            .map(|(h, b)| fleet.store_requests(h) - b)
            .collect();
        assert_eq!(caused, want, "{call}");
    }

    // Malformed requests: the same 400s as `serve`.
    for bad in [
        "/api/v1/query?query=sum(",
        "/api/v1/query?query=rate(up)",
        "/api/v1/query_range?query=up&start=10&end=5&step=1",
        "/api/v1/query_range?query=up&start=1&end=5",
        "/api/v1/series?match[]=up{",
        "/api/v1/query?query=up&partial_response=maybe",
    ] {
        let (gs, got) = tier.api(bad);
        assert_eq!(gs, 400, "{bad}: {got}");
        assert_eq!(got["errorType"], "bad_data", "{bad}: {got}");
        if !bad.contains("partial_response") {
            let (ws, want) = fleet.single.api(bad);
            assert_eq!((gs, &got["errorType"]), (ws, &want["errorType"]), "{bad}");
        }
    }
    assert_eq!(
        tier.data("/api/v1/status/buildinfo")["application"],
        "tessera"
    );
    assert_eq!(get(&tier.url("/-/healthy")).unwrap().0, 200);
    assert_eq!(get(&tier.url("/metrics")).unwrap().0, 200);
    // `serve` ignores the tier's parameter, as it always did.
    let (status, _) = fleet
        .single
        .api("/api/v1/query?query=1&partial_response=maybe");
    assert_eq!(status, 200);

    // Both replicas of partition 2 hang: answers within the store timeout
    // with a warning naming it, or 503 when partial answers are refused.
    let hung = fleet.store(2);
    for r in &fleet.replicas[2] {
        signal(r, libc::SIGSTOP);
    }
    for call in [
        format!("/api/v1/query?query=sum(gpu_temp_celsius)&time={end}"),
        format!(
            "/api/v1/label/instance/values?start={}&end={end}",
            end - 3600
        ),
    ] {
        let started = Instant::now();
        let (status, v) = tier.api(&call);
        assert_eq!(status, 200, "{call}: {v}");
        let warnings = v["warnings"].to_string();
        assert!(warnings.contains(&hung), "{call}: {v}");
        // Loosely: the 2 s store timeout, not the 2 min query timeout.
        assert!(started.elapsed() < Duration::from_secs(20), "{call}");
        for (t, q) in [
            (&tier, format!("{call}&partial_response=false")),
            (&strict, call.clone()),
        ] {
            let (status, v) = t.api(&q);
            assert_eq!(status, 503, "{q}: {v}");
            assert!(v["error"].to_string().contains(&hung), "{q}: {v}");
        }
    }
    // A client that hangs up on a query waiting for the hung partition:
    // the tier drops the query (and its store requests) at once, not after
    // its 60 s store timeout.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(300)))
        .build()
        .into();
    let call = patient.url(&format!(
        "/api/v1/query?query=sum(gpu_temp_celsius)&time={end}"
    ));
    assert!(agent.get(&call).call().is_err(), "the query should wait");
    eventually_within(
        "the tier to drop the abandoned query",
        Duration::from_secs(3),
        || {
            let d = patient.data("/api/v1/status/queries");
            match d["running"].as_array() {
                Some(r) if r.is_empty() => Ok(()),
                _ => Err(d.to_string()),
            }
        },
    );
    for r in &fleet.replicas[2] {
        signal(r, libc::SIGCONT);
    }
    // The stores saw the tier's requests go away and hold none.
    for r in &fleet.replicas[2] {
        eventually("the store's remote reads to end", || {
            let (_, m) = get(&r.url("/metrics")).map_err(|e| e.to_string())?;
            match metric_value(&m, "tessera_remote_read_queries") {
                Some(0.0) => Ok(()),
                v => Err(format!("{v:?}")),
            }
        });
    }

    // SIGKILL one replica of each partition: the same answers, no warning.
    for (p, pair) in fleet.replicas.iter_mut().enumerate() {
        let r = &mut pair[p % 2];
        r.child.kill().unwrap();
        r.child.wait().unwrap();
    }
    for call in &calls {
        let w = assert_same(&fleet.single, &tier, call);
        assert!(
            w.iter().all(|w| !w.contains("unavailable")),
            "{call}: {w:?}"
        );
    }
}

#[test]
fn copies_from_an_ha_pair_of_senders_count_once_and_fill_each_others_gaps() {
    // Every series written twice, as two senders scraping the same target
    // would: `replica="a"` misses points 40..50 (150 s), `replica="b"`
    // points 100..110.
    let copy = |s: &TimeSeries, replica: &str, gap: std::ops::Range<usize>| {
        let mut c = s.clone();
        c.labels.push(label("replica", replica));
        c.labels.sort_by(|x, y| x.name.cmp(&y.name));
        c.samples = c
            .samples
            .iter()
            .enumerate()
            .filter(|(i, _)| !gap.contains(i))
            .map(|(_, p)| *p)
            .collect();
        c
    };
    let fleet = Fleet::start(|s| vec![copy(s, "a", 40..50), copy(s, "b", 100..110)]);
    let tier = fleet.tier(STORE_TIMEOUT, &["--query.replica-label", "replica"]);
    for call in fleet.calls() {
        assert_same(&fleet.single, &tier, &call);
    }
    // Without the flag the copies count twice.
    let naive = fleet.tier(STORE_TIMEOUT, &[]);
    let end = fleet.end / 1000;
    let q = format!("/api/v1/query?query=count(gpu_temp_celsius)&time={end}");
    let n = |t: &Tessera| {
        t.data(&q)["result"][0]["value"][1]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        n(&naive).parse::<f64>().unwrap(),
        2.0 * n(&tier).parse::<f64>().unwrap()
    );
    // What each read moved on the wire: the deduplicating tier read raw
    // series (remote read), the other asked the partitions for counts.
    let moved = |t: &Tessera, call: &str| {
        let (_, m) = get(&t.url("/metrics")).expect("metrics");
        let s = format!("tessera_query_store_response_bytes_total{{call=\"{call}\"}}");
        metric_value(&m, &s).unwrap_or(0.0)
    };
    assert!(moved(&tier, "read") > 0.0);
    assert_eq!(moved(&tier, "query"), 0.0);
    assert!(moved(&naive, "query") > 0.0);
    assert_eq!(moved(&naive, "read"), 0.0);
}

#[test]
fn a_store_refusing_a_query_fails_it_rather_than_leaving_its_partition_out() {
    let store = Tessera::start(&["--query.max-samples", "100"]);
    let end = now_ms() / 1000 * 1000 - 60_000;
    let all: Vec<TimeSeries> = dataset(end).into_iter().map(|(_, s)| s).collect();
    assert_eq!(store.write(&request(all)).0, 204);
    let tier = Fleet::tier_of(
        &[format!("http://127.0.0.1:{}", store.port)],
        STORE_TIMEOUT,
        &[],
    );
    let t = end / 1000;
    // Pushed down (the store's query API answers 422) and raw (its remote
    // read does): the tier says 422 too, with no partial answer.
    for q in [
        "sum(sum_over_time(gpu_temp_celsius[30m]))",
        "quantile(0.5, sum_over_time(gpu_temp_celsius[30m]))",
    ] {
        let (status, v) = tier.api(&format!("/api/v1/query?query={q}&time={t}"));
        assert_eq!(status, 422, "{q}: {v}");
        assert_eq!(v["errorType"], "execution", "{q}: {v}");
    }
}

#[test]
fn the_tiers_series_cap_counts_the_union_of_its_partitions() {
    // Two partitions of 30 series each (instances split by parity): each
    // under the tier's cap of 40, their union of 60 over it.
    let end = now_ms() / 1000 * 1000 - 60_000;
    let data = dataset(end);
    let stores: Vec<Tessera> = (0..2).map(|_| Tessera::start(&[])).collect();
    for (p, s) in stores.iter().enumerate() {
        let mine: Vec<TimeSeries> = data
            .iter()
            .filter(|(i, _)| {
                let n: usize = i[5..i.find(':').unwrap()].parse().unwrap();
                n % 2 == p
            })
            .map(|(_, s)| s.clone())
            .collect();
        assert_eq!(s.write(&request(mine)).0, 204);
    }
    let urls: Vec<String> = stores
        .iter()
        .map(|s| format!("http://127.0.0.1:{}", s.port))
        .collect();
    let tier = Fleet::tier_of(&urls, STORE_TIMEOUT, &["--api.max-series", "40"]);
    let window = format!("start={}&end={}", end / 1000 - 3600, end / 1000);
    let (status, v) = tier.api(&format!("/api/v1/series?match[]={{job=~\".+\"}}&{window}"));
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["errorType"], "execution", "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("more than 40 series") && e.contains("raise --api.max-series"),
        "{e}"
    );
    // A limit under the cap truncates instead, with the warning.
    let (status, v) = tier.api(&format!(
        "/api/v1/series?match[]={{job=~\".+\"}}&limit=10&{window}"
    ));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 10);
    assert_eq!(v["warnings"][0], "results truncated due to limit (10)");
    // Under the cap: every series.
    let n = tier.data(&format!("/api/v1/series?match[]=gpu_temp_celsius&{window}"));
    assert_eq!(n.as_array().unwrap().len(), 2 * INSTANCES);
}
