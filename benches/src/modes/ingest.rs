//! `ingest`: send the fleet's rounds as remote-write requests and measure
//! acknowledged samples per second, request latency, rejections and
//! failures — and, given a PID and data dir, the server's RSS, CPU and
//! bytes on disk.
//!
//! The generator runs on its own OS thread (protobuf framing and snappy are
//! CPU work that must not stall the async senders) and hands compressed
//! bodies to `--concurrency` shards over bounded channels, so a slow server
//! slows the generator instead of growing a queue in memory. Each shard
//! sends its requests one after another and always carries the same series.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use super::{LoadArgs, Rate, TargetArgs, measurable};
use crate::client::{Client, WriteOutcome, base_url};
use crate::generator::{Fleet, node};
use crate::proc_stats::{self, ProcSampler, dir_disk_bytes};
use crate::report::{IngestReport, Latency};

struct Body {
    bytes: Bytes,
    samples: usize,
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    acked: u64,
    ok: u64,
    rejected: u64,
    samples_rejected: u64,
    failed: u64,
    retries: u64,
    first_error: Option<String>,
}

/// Wall-clock now in ms since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sends `load.rounds` rounds of `fleet` to `target.url`; returns the report
/// and the fleet (its `series_created` counts churned series).
pub async fn run(
    mut fleet: Fleet,
    load: &LoadArgs,
    target: &TargetArgs,
    client: &Client,
    progress: bool,
) -> (IngestReport, Fleet) {
    let write_url = format!("{}/api/v1/write", base_url(&target.url));
    let active = fleet.active_series();
    let total = active as u64 * load.rounds;
    let pb = if progress {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} samples {per_sec} eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );

    let interval_ms = load.interval.as_millis().max(1) as i64;
    let rounds = load.rounds;
    let batch = load.batch_samples.max(1);
    let rate = load.rate;
    let max_duration = load.max_duration;
    let start_ms = now_ms();
    let self_cpu = || proc_stats::read(std::process::id()).map_or(0.0, |r| r.1);
    let harness_cpu_start = self_cpu();
    let concurrency = load.concurrency.max(1);
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..concurrency).map(|_| mpsc::channel::<Body>(2)).unzip();
    let producer = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut encoder = snap::raw::Encoder::new();
        let mut sent_samples = 0u64;
        let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
        for r in 0..rounds {
            if t0.elapsed() > max_duration {
                break;
            }
            let base = match rate {
                Rate::RealTime => {
                    // One round per interval, stamped with the wall clock.
                    let due = Duration::from_millis((r as i64 * interval_ms) as u64);
                    if let Some(wait) = due.checked_sub(t0.elapsed()) {
                        std::thread::sleep(wait);
                    }
                    now_ms()
                }
                // Back-filled so the last round ends at the start time.
                _ => start_ms - (rounds - 1 - r) as i64 * interval_ms,
            };
            min_ts = min_ts.min(base - interval_ms);
            max_ts = max_ts.max(base);
            let mut closed = false;
            fleet.round_sharded(r, base, interval_ms, batch, concurrency, |b| {
                if closed {
                    return;
                }
                let compressed = encoder
                    .compress_vec(&b.proto)
                    .expect("snappy compresses any input");
                sent_samples += b.samples as u64;
                if let Rate::SamplesPerSec(sps) = rate {
                    let due = Duration::from_secs_f64(sent_samples as f64 / sps);
                    if let Some(wait) = due.checked_sub(t0.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                closed = txs[b.shard]
                    .blocking_send(Body {
                        bytes: Bytes::from(compressed),
                        samples: b.samples,
                    })
                    .is_err();
            });
            if closed {
                break;
            }
        }
        (fleet, sent_samples, min_ts, max_ts)
    });

    let sampler = target
        .pid
        .map(|pid| ProcSampler::start(pid, Duration::from_millis(250)));
    let started = Instant::now();
    let tally = Arc::new(Mutex::new(Tally::default()));
    // One sequential sender per shard, like Prometheus' queue shards: a
    // series' next sample is never sent before its previous one is
    // acknowledged, so receivers see no out-of-order samples.
    let senders: Vec<_> = rxs
        .into_iter()
        .map(|mut rx| {
            let (client, url, tally, pb) =
                (client.clone(), write_url.clone(), tally.clone(), pb.clone());
            tokio::spawn(async move {
                let mut requests = 0u64;
                while let Some(body) = rx.recv().await {
                    requests += 1;
                    let res = client.write(&url, body.bytes).await;
                    let mut t = tally.lock().expect("tally lock");
                    t.latencies.push(res.latency);
                    t.retries += u64::from(res.retries);
                    match res.outcome {
                        WriteOutcome::Ok => {
                            t.ok += 1;
                            t.acked += body.samples as u64;
                        }
                        WriteOutcome::Rejected { status, body: text } => {
                            t.rejected += 1;
                            t.samples_rejected += body.samples as u64;
                            t.first_error
                                .get_or_insert_with(|| format!("HTTP {status}: {}", text.trim()));
                        }
                        WriteOutcome::Failed { reason } => {
                            t.failed += 1;
                            t.first_error.get_or_insert(reason);
                        }
                    }
                    drop(t);
                    pb.inc(body.samples as u64);
                }
                requests
            })
        })
        .collect();
    let mut requests = 0u64;
    for s in senders {
        requests += s.await.expect("sender task panicked");
    }
    let wall = started.elapsed();
    pb.finish_and_clear();
    let (fleet, sent, min_ts, max_ts) = producer.join().expect("generator thread panicked");
    // No round sent (`--rounds 0` or an immediate deadline): no bounds.
    let (min_ts, max_ts) = if min_ts > max_ts {
        (0, 0)
    } else {
        (min_ts, max_ts)
    };
    let process = sampler.map(ProcSampler::finish);
    let mut t = std::mem::take(&mut *tally.lock().expect("tally lock"));

    let disk = measurable(&target.data_dir).map(dir_disk_bytes);
    let rss_per_series = process
        .as_ref()
        .map(|p| p.peak_rss_bytes as f64 / active.max(1) as f64);
    let report = IngestReport {
        nodes: fleet.config.nodes,
        series_per_node: node::series_per_node(&fleet.config),
        active_series: active,
        series_created: fleet.series_created,
        rounds: load.rounds,
        interval_secs: load.interval.as_secs_f64(),
        samples_sent: sent,
        samples_acked: t.acked,
        requests,
        requests_ok: t.ok,
        requests_rejected: t.rejected,
        samples_rejected: t.samples_rejected,
        requests_failed: t.failed,
        retries: t.retries,
        wall_secs: wall.as_secs_f64(),
        samples_per_sec: t.acked as f64 / wall.as_secs_f64().max(1e-9),
        latency: Latency::from_durations(&mut t.latencies),
        first_error: t.first_error,
        min_ts_ms: min_ts,
        max_ts_ms: max_ts,
        process,
        harness_cpu_secs: self_cpu() - harness_cpu_start,
        rss_per_series_bytes: rss_per_series,
        disk_bytes: disk,
        disk_bytes_per_sample: disk.map(|d| d as f64 / t.acked.max(1) as f64),
    };
    (report, fleet)
}
