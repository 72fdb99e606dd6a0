//! The streamed `/api/v1/series` answer: the same JSON, in the same order,
//! as a collected answer; a client that hangs up mid-body stops the work;
//! the cap's 422 is decided before any byte; `limit` still truncates with
//! Prometheus' warning.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// The series the tests load: `m{i%7}{id, pad}` with one sample at t=1000.
fn labels_of(i: usize, pad: &str) -> Vec<(String, String)> {
    vec![
        ("__name__".into(), format!("m{}", i % 7)),
        ("id".into(), i.to_string()),
        ("pad".into(), pad.to_string()),
    ]
}

/// Loads series `from..to` in requests of 2,000.
fn load(t: &Tessera, from: usize, to: usize, pad: &str) {
    let mut i = from;
    while i < to {
        let end = (i + 2000).min(to);
        let ts: Vec<_> = (i..end)
            .map(|i| {
                let ls = labels_of(i, pad);
                let pairs: Vec<(&str, &str)> =
                    ls.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                series(&pairs, &[(1_000_000, i as f64)])
            })
            .collect();
        assert_eq!(t.write(&request(ts)).0, 204);
        i = end;
    }
}

fn inflight(t: &Tessera) -> f64 {
    let (_, text) = get(&t.url("/metrics")).unwrap();
    metric_value(&text, "tessera_query_inflight").unwrap_or(-1.0)
}

fn client_cancellations(t: &Tessera) -> f64 {
    let (_, text) = get(&t.url("/metrics")).unwrap();
    metric_value(
        &text,
        "tessera_query_cancellations_total{endpoint=\"series\",reason=\"client\"}",
    )
    .unwrap_or(0.0)
}

#[test]
fn streamed_series_answer_is_the_sorted_deduplicated_union() {
    let t = Tessera::start(&["--api.max-series", "100000"]);
    let n = 4_000;
    load(&t, 0, n, "x");
    // Two overlapping match[] sets: m1|m2 and m2|m3 (m2 counted once).
    let (st, v) = t.api(
        "/api/v1/series?match[]={__name__=~\"m1|m2\"}&match[]={__name__=~\"m2|m3\"}&start=0&end=2000000",
    );
    assert_eq!(st, 200, "{v}");
    // The oracle: the same label sets built here, sorted as Prometheus
    // sorts label sets (label by label, name then value).
    let mut want: Vec<Vec<(String, String)>> = (0..n)
        .filter(|i| (1..=3).contains(&(i % 7)))
        .map(|i| labels_of(i, "x"))
        .collect();
    want.sort();
    let want: Vec<Value> = want
        .into_iter()
        .map(|ls| Value::Object(ls.into_iter().map(|(k, v)| (k, json!(v))).collect()))
        .collect();
    let got = v["data"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, &want, "same series, same order");
    assert!(v.get("warnings").is_none(), "{}", v["warnings"]);

    // limit= truncates with the warning, keeping the order.
    let (st, v) = t.api("/api/v1/series?match[]={__name__=~\"m.+\"}&start=0&end=2000000&limit=25");
    assert_eq!(st, 200, "{v}");
    let got = v["data"].as_array().unwrap();
    assert_eq!(got.len(), 25);
    let ids: Vec<&str> = got.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let names: Vec<&str> = got
        .iter()
        .map(|s| s["__name__"].as_str().unwrap())
        .collect();
    let keys: Vec<_> = names.iter().zip(&ids).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted: {keys:?}");
    assert_eq!(
        v["warnings"][0].as_str().unwrap(),
        "results truncated due to limit (25)"
    );
}

#[test]
fn over_the_cap_is_a_422_before_any_byte() {
    let t = Tessera::start(&["--api.max-series", "1000"]);
    load(&t, 0, 1_001, "x");
    let url = t.url("/api/v1/series?match[]={__name__=~\"m.+\"}&start=0&end=2000000");
    // The whole error is decided before the answer starts: a complete
    // body of known length, not a stream that began as a 200.
    let resp = agent().get(&url).call().unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    assert!(resp.headers().get("content-length").is_some(), "{resp:?}");
    let (st, v) = t.api("/api/v1/series?match[]={__name__=~\"m.+\"}&start=0&end=2000000");
    assert_eq!(st, 422);
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "execution");
    assert!(
        v["error"].as_str().unwrap().contains("--api.max-series"),
        "{v}"
    );
    // A limit at or under the cap truncates instead.
    let (st, v) =
        t.api("/api/v1/series?match[]={__name__=~\"m.+\"}&start=0&end=2000000&limit=1000");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 1000);
    assert!(v["warnings"][0].as_str().unwrap().contains("truncated"));
}

#[test]
fn a_client_that_hangs_up_mid_answer_stops_the_rendering() {
    let t = Tessera::start(&["--api.max-series", "10000000"]);
    // ~150k series of ~170 bytes of JSON each: a 25 MB answer, far more
    // than the socket buffers and the server's few queued chunks hold.
    let pad = "p".repeat(100);
    load(&t, 0, 150_000, &pad);
    let before = client_cancellations(&t);

    let mut sock = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    let path = encode_query("/api/v1/series?match[]={__name__=~\"m.+\"}&start=0&end=2000000");
    write!(
        sock,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 4096];
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let got = sock.read(&mut head).unwrap();
    let text = String::from_utf8_lossy(&head[..got]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // Not reading further: the server fills the socket and its queue and
    // waits, still admitted.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(inflight(&t), 1.0, "the rendering waits for the client");
    drop(sock);
    eventually("the rendering stopping", || {
        let x = inflight(&t);
        if x == 0.0 {
            Ok(())
        } else {
            Err(format!("{x} reads in flight"))
        }
    });
    assert_eq!(
        client_cancellations(&t),
        before + 1.0,
        "the hang-up counts as a client cancellation"
    );
    // The server still answers.
    let (st, _) = t.api("/api/v1/series?match[]={id=\"7\"}&start=0&end=2000000");
    assert_eq!(st, 200);
}
