//! Slowloris-style clients against a real `tessera serve` with small
//! bounds (`--web.read-header-timeout 1s`, `--web.max-connections 16`,
//! `--web.max-header-bytes 16384`): three times as many connections as
//! slots trickle their headers a byte at a time or idle without a request,
//! while an honest client keeps remote-writing and querying. Every honest
//! request is answered, the server closes the trickling connections itself
//! (by the header timeout below the limit; past it, the idlest connection
//! gives way to a new one),
//! an oversized header gets 431, and everything the honest client wrote is
//! stored. The honest writes' latencies are printed (run with
//! `--nocapture`; BENCHMARKS.md records them), never asserted. A trickled
//! remote-write body gets 408 after `--web.read-timeout` and frees its
//! ingest slot.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

const SLOTS: usize = 16;
const ATTACKERS: usize = 3 * SLOTS;
const HONEST_WRITES: usize = 20;
/// Bytes a trickler sends at most before it gives up on being cut off.
const TRICKLE_BYTES: usize = 400;

/// One attacker: connects, sends a request line, then one header byte at a
/// time (or, when `idle`, nothing) until the server closes the connection;
/// then connects again, until `stop`. Counts the closes it saw.
fn attacker(port: u16, idle: bool, stop: Arc<AtomicBool>, closed: Arc<AtomicUsize>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if !idle {
            let _ = s.write_all(b"POST /api/v1/write HTTP/1.1\r\nHost: x\r\n");
        }
        let mut buf = [0u8; 512];
        for _ in 0..TRICKLE_BYTES {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if !idle && s.write_all(b"X").is_err() {
                closed.fetch_add(1, Ordering::Relaxed);
                break;
            }
            match s.read(&mut buf) {
                // Closed by the server (with or without a 408 first).
                Ok(_) => {
                    closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => {
                    closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

/// Runs `attackers` slow connections while the honest client writes
/// [`HONEST_WRITES`] series (labelled with `phase`) and queries; returns
/// the honest writes' latencies and how many slow connections the server
/// closed.
fn attack(t: &Tessera, attackers: usize, phase: usize) -> (Vec<Duration>, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..attackers)
        .map(|i| {
            let (stop, closed) = (stop.clone(), closed.clone());
            let port = t.port;
            std::thread::spawn(move || attacker(port, i % 3 == 0, stop, closed))
        })
        .collect();
    // Let the attackers take their slots first.
    std::thread::sleep(Duration::from_millis(500));
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut latencies = Vec::new();
    for i in 0..HONEST_WRITES {
        let req = request(vec![series(
            &[
                ("__name__", "honest_writes"),
                ("phase", &phase.to_string()),
                ("i", &i.to_string()),
            ],
            &[(start_ms + i as i64, i as f64)],
        )]);
        let began = Instant::now();
        let (status, body) = t.write(&req);
        latencies.push(began.elapsed());
        assert_eq!(status, 204, "honest write {i} refused: {body}");
        if i % 5 == 0 {
            let (status, v) = t.api("/api/v1/query?query=count(honest_writes)");
            assert_eq!(status, 200, "{v}");
        }
    }
    // Each slow connection is cut once its header timeout passes: wait for
    // that (bounded) before stopping them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while closed.load(Ordering::Relaxed) < attackers && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for a in threads {
        a.join().unwrap();
    }
    (latencies, closed.load(Ordering::Relaxed))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[test]
fn slow_clients_are_cut_off_and_honest_ones_served() {
    let t = Tessera::start(&[
        "--web.read-header-timeout",
        "1s",
        "--web.max-connections",
        &SLOTS.to_string(),
        "--web.max-header-bytes",
        "16384",
    ]);

    // A header over --web.max-header-bytes: 431.
    let big = "x".repeat(32 << 10);
    let resp = agent()
        .get(&t.url("/api/v1/labels"))
        .header("X-Big", &big)
        .call()
        .expect("GET with a big header");
    assert_eq!(resp.status().as_u16(), 431);

    // Fewer slow connections than slots, then three times as many.
    for (phase, attackers) in [(0, SLOTS / 2), (1, ATTACKERS)] {
        let (mut latencies, cut) = attack(&t, attackers, phase);
        assert!(
            cut >= attackers,
            "the server closed only {cut} of {attackers} slow connections"
        );
        latencies.sort();
        println!(
            "honest remote writes during the attack ({attackers} slow connections, {SLOTS} slots, \
             1s header timeout): n={} p50={:?} p99={:?} max={:?}; slow connections cut: {cut}",
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1],
        );
    }
    let v = t.data("/api/v1/query?query=count(honest_writes)");
    assert_eq!(
        v["result"][0]["value"][1],
        (2 * HONEST_WRITES).to_string(),
        "{v}"
    );
    assert_eq!(get(&t.url("/-/healthy")).unwrap().0, 200);
    // Past the limit, idle connections gave way to new ones.
    let (_, metrics) = get(&t.url("/metrics")).unwrap();
    let evicted: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tessera_http_refused_total{reason=\"evicted\"} "))
        .expect("the evicted counter")
        .parse()
        .unwrap();
    assert!(evicted > 0.0, "no idle connection was evicted");
}

/// A remote write whose body trickles in holds one of the
/// `--ingest.max-inflight` slots only until `--web.read-timeout`: it gets
/// 408, and an honest write waiting for that slot is then served.
#[test]
fn a_trickled_body_gets_408_and_frees_its_ingest_slot() {
    let t = Tessera::start(&["--web.read-timeout", "1s", "--ingest.max-inflight", "1"]);
    let mut slow = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    slow.write_all(
        b"POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
          Content-Encoding: snappy\r\nContent-Length: 100000\r\n\r\n",
    )
    .unwrap();
    let trickler = std::thread::spawn(move || {
        slow.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut answer = Vec::new();
        for _ in 0..TRICKLE_BYTES {
            if slow.write_all(b"x").is_err() {
                break;
            }
            let mut buf = [0u8; 1024];
            match slow.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    });
    // Give the trickler the only ingest slot first.
    std::thread::sleep(Duration::from_millis(200));
    let req = request(vec![series(
        &[("__name__", "after_slow_body")],
        &[(1, 1.0)],
    )]);
    let (status, body) = t.write(&req);
    assert_eq!(status, 204, "{body}");
    let answer = trickler.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}
