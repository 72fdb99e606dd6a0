//! Every read is bounded and cancellable: a client that hangs up stops the
//! work, each limit fails just over it with the documented status and body,
//! and a query storm never stops remote write. Remote read included.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn metric(t: &Tessera, prefix: &str) -> f64 {
    let (_, text) = get(&t.url("/metrics")).unwrap();
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Loads `n` series (one sample each) in requests of 2,000.
fn load(t: &Tessera, n: usize) {
    for chunk in 0..n.div_ceil(2000) {
        let ts: Vec<_> = (chunk * 2000..((chunk + 1) * 2000).min(n))
            .map(|i| {
                series(
                    &[
                        ("__name__", &format!("m{}", i % 50)),
                        ("id", &i.to_string()),
                        ("le", "1"),
                    ],
                    &[(1_000_000, i as f64)],
                )
            })
            .collect();
        assert_eq!(t.write(&request(ts)).0, 204);
    }
}

/// A GET that gives up after `after` (the client hangs up).
fn abandon(url: &str, after: Duration) {
    abandon_with(after, |agent| agent.get(url).call());
}

/// A request that gives up after `after`.
fn abandon_with<T>(after: Duration, send: impl FnOnce(&ureq::Agent) -> Result<T, ureq::Error>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(after))
        .build()
        .into();
    let r = send(&agent);
    assert!(
        r.is_err(),
        "the call was expected to outlast the client timeout"
    );
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn a_client_that_hangs_up_stops_the_work() {
    let t = Tessera::start(&["--api.max-series", "10000000"]);
    load(&t, 200_000);
    // A range query that would run for minutes: 200k series at 5,761 steps.
    let q = t.url(
        "/api/v1/query_range?query=sum(rate({__name__=~\"m.*\"}[5m]))&start=1000&end=87400&step=15&timeout=120s",
    );
    abandon(&q, Duration::from_millis(200));
    let stopped = wait_until("query work stopping", Duration::from_secs(10), || {
        metric(&t, "tessera_query_inflight") == 0.0
    });
    assert!(
        metric(
            &t,
            "tessera_query_cancellations_total{endpoint=\"query_range\",reason=\"client\"}"
        ) >= 1.0,
        "the disconnect was not seen as a client cancellation"
    );
    eprintln!("range query stopped {stopped:?} after the client left");

    // The series call Grafana makes for histograms, abandoned the same way.
    let before = metric(
        &t,
        "tessera_query_cancellations_total{endpoint=\"series\",reason=\"client\"}",
    );
    abandon(
        &t.url("/api/v1/series?match[]={le!=\"\"}&start=0&end=2000"),
        Duration::from_millis(50),
    );
    wait_until("series work stopping", Duration::from_secs(10), || {
        metric(&t, "tessera_query_inflight") == 0.0
    });
    let after = metric(
        &t,
        "tessera_query_cancellations_total{endpoint=\"series\",reason=\"client\"}",
    );
    // The call may finish within 50 ms on a fast machine; then nothing was
    // cancelled, but the server must be idle either way.
    assert!(after >= before);
    assert_eq!(get(&t.url("/-/healthy")).unwrap().0, 200);
}

#[test]
fn each_limit_fails_just_over_it_with_its_flag() {
    let t = Tessera::start(&["--query.max-samples", "100", "--api.max-series", "120"]);
    load(&t, 120);
    // A plain selector holds every selected sample at once (an aggregation
    // over it is folded shard by shard and holds fewer): ids 0..=99 are 100
    // samples, at the limit; all 120 are over it.
    let (st, v) = t.api("/api/v1/query?query={__name__=~\"m.*\",id=~\"[0-9]{1,2}\"}&time=1000");
    assert_eq!(st, 200, "100 samples is at the limit: {v}");
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 100);
    let (st, v) = t.api("/api/v1/query?query={__name__=~\"m.*\"}&time=1000");
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["errorType"], "execution");
    assert!(
        v["error"].as_str().unwrap().contains("--query.max-samples"),
        "{v}"
    );

    let (st, v) = t.api("/api/v1/series?match[]={__name__=~\"m.*\"}&start=0&end=2000");
    assert_eq!(st, 200, "120 series is at the cap: {v}");
    load(&t, 121);
    let (st, v) = t.api("/api/v1/series?match[]={__name__=~\"m.*\"}&start=0&end=2000");
    assert_eq!(st, 422, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("--api.max-series"),
        "{v}"
    );
    let (st, v) = t.api("/api/v1/label/id/values?match[]={le!=\"\"}&start=0&end=2000");
    assert_eq!(st, 422, "{v}");
    // Grafana's limit=40000 under the cap: truncation, not an error.
    let (st, v) = t.api("/api/v1/series?match[]={__name__=~\"m.*\"}&start=0&end=2000&limit=40");
    assert_eq!(st, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 40);
    assert!(v["warnings"][0].as_str().unwrap().contains("truncated"));
    assert!(
        metric(
            &t,
            "tessera_query_limit_hits_total{flag=\"query.max-samples\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &t,
            "tessera_query_limit_hits_total{flag=\"api.max-series\"}"
        ) >= 1.0
    );
}

#[test]
fn a_query_past_its_timeout_is_a_503_timeout() {
    let t = Tessera::start(&["--query.timeout", "300ms"]);
    load(&t, 20_000);
    let (st, v) = t.api(
        "/api/v1/query_range?query=sum(rate({__name__=~\"m.*\"}[5m]))&start=1000&end=87400&step=15",
    );
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["errorType"], "timeout", "{v}");
    assert!(
        metric(
            &t,
            "tessera_query_cancellations_total{endpoint=\"query_range\",reason=\"timeout\"}"
        ) >= 1.0
    );
}

#[test]
fn a_full_query_gate_refuses_with_503_and_remote_write_keeps_working() {
    let t = Tessera::start(&["--query.max-concurrency", "1", "--query.max-queue", "0"]);
    load(&t, 20_000);
    let slow = t.url(
        "/api/v1/query_range?query=sum(rate({__name__=~\"m.*\"}[5m]))&start=1000&end=87400&step=15&timeout=20s",
    );
    let bg = std::thread::spawn(move || {
        let _ = get(&slow);
    });
    wait_until(
        "the slow query to be admitted",
        Duration::from_secs(10),
        || metric(&t, "tessera_query_inflight") == 1.0,
    );
    let (st, v) = t.api("/api/v1/query?query=1&time=1");
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["errorType"], "unavailable");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("--query.max-concurrency"),
        "{v}"
    );
    // Writes have their own budget.
    for i in 0..20 {
        let req = request(vec![series(
            &[("__name__", "w"), ("i", &i.to_string())],
            &[(2_000_000, 1.0)],
        )]);
        assert_eq!(
            t.write(&req).0,
            204,
            "remote write refused while queries saturate the gate"
        );
    }
    drop(t); // kills the server; the slow query's client then returns
    let _ = bg.join();
}

/// A remote read of every series `load` wrote, as SAMPLES or streamed.
fn read_all(response_type: i32) -> tessera_ingest::remote_read::proto::ReadRequest {
    use tessera_ingest::remote_read::proto::{LabelMatcher, MATCH_RE, Query, ReadRequest};
    ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: 0,
            end_timestamp_ms: 2_000_000,
            matchers: vec![LabelMatcher {
                r#type: MATCH_RE,
                name: "__name__".into(),
                value: "m.*".into(),
            }],
            hints: None,
        }],
        accepted_response_types: vec![response_type],
    }
}

#[test]
fn a_remote_read_stops_at_the_query_timeout_and_when_its_client_hangs_up() {
    let t = Tessera::start(&["--query.timeout", "1ms"]);
    load(&t, 20_000);
    for kind in [0, 1] {
        let r = t.read(&read_all(kind));
        let msg = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 503, "{msg}");
        assert!(msg.contains("--query.timeout"), "{msg}");
    }
    assert!(
        metric(
            &t,
            "tessera_query_cancellations_total{endpoint=\"remote_read\",reason=\"timeout\"}"
        ) >= 2.0
    );
    assert_eq!(metric(&t, "tessera_remote_read_queries "), 0.0);
    drop(t);

    let t = Tessera::start(&[]);
    load(&t, 100_000);
    let body = snappy(&prost::Message::encode_to_vec(&read_all(1)));
    let url = t.url("/api/v1/read");
    abandon_with(Duration::from_millis(50), |agent| {
        agent.post(&url).send(&body[..])
    });
    wait_until("remote read work stopping", Duration::from_secs(10), || {
        metric(&t, "tessera_remote_read_queries ") == 0.0
    });
    assert_eq!(get(&t.url("/-/healthy")).unwrap().0, 200);
    // (The read may finish within 50 ms on a fast machine; then nothing was
    // cancelled, but the server must be idle either way.)
    let cancelled = metric(
        &t,
        "tessera_query_cancellations_total{endpoint=\"remote_read\",reason=\"client\"}",
    );
    // And the server still answers a whole read.
    let started = Instant::now();
    let r = t.read(&read_all(1));
    assert_eq!(r.status, 200);
    eprintln!(
        "remote read: {cancelled} client cancellation(s); a whole streamed read of 100k series took {:?} ({} bytes)",
        started.elapsed(),
        r.body.len()
    );
}

#[test]
fn remote_reads_past_the_concurrent_limit_wait_for_a_slot() {
    let t = Tessera::start(&["--storage.remote.read-concurrent-limit", "1"]);
    load(&t, 100_000);
    let listed = || {
        let data = t.data("/api/v1/status/queries");
        data["running"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["endpoint"] == "remote_read")
            .count()
    };
    let mut most_in_flight = 0.0f64;
    std::thread::scope(|s| {
        let reads: Vec<_> = (0..3)
            .map(|_| s.spawn(|| t.read(&read_all(1)).status))
            .collect();
        while !reads.iter().all(|r| r.is_finished()) {
            // Never more than one running; the others wait at the gate.
            assert!(listed() <= 1, "more remote reads running than the limit");
            most_in_flight = most_in_flight.max(metric(&t, "tessera_remote_read_queries "));
            std::thread::sleep(Duration::from_millis(20));
        }
        for r in reads {
            assert_eq!(r.join().unwrap(), 200);
        }
    });
    assert!(
        most_in_flight >= 2.0,
        "the reads never overlapped (most in flight: {most_in_flight})"
    );
    assert_eq!(metric(&t, "tessera_remote_read_queries "), 0.0);
}
