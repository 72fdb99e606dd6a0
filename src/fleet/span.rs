//! Each partition's time span, so that a read whose window it cannot hold
//! data for skips it (a partition kept only for history after a re-shard,
//! or one whose retention has passed).
//!
//! The span is probed from the replica the partition reads first, at its
//! `/metrics` (cheap: no series are read): Tessera's
//! `tessera_tsdb_lowest_timestamp_seconds` /
//! `tessera_tsdb_highest_timestamp_seconds`, else Prometheus'
//! `prometheus_tsdb_lowest_timestamp_seconds` /
//! `prometheus_tsdb_head_max_time_seconds`, and kept [`SPAN_TTL`]. A store
//! that gives neither (VictoriaMetrics), a failed probe or an empty store
//! is never skipped. A store written to in the last [`LIVE`] is taken to
//! hold data up to now and beyond, so samples arriving after the probe are
//! never missed; only data older than its probed oldest sample could be
//! (a backfill within [`SPAN_TTL`] of the probe).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;

use super::Partition;
use super::client::StoreClient;

/// How long a probed span is used before it is probed again.
pub(crate) const SPAN_TTL: Duration = Duration::from_secs(10);
/// A store whose newest sample is younger than this is live.
const LIVE: i64 = 15 * 60 * 1000;
/// A probe's own time limit: a slow store is read, not skipped.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest `/metrics` page read.
const MAX_METRICS_BYTES: usize = 8 << 20;

/// A probe's result: when, and the store's `(oldest, newest)` sample time
/// in ms (`None`: unknown).
pub(crate) type Probe = (Instant, Option<(i64, i64)>);

/// Whether `p` may hold samples in `[mint, maxt]` (ms): probing its first
/// replica when the last probe is older than [`SPAN_TTL`].
pub(crate) async fn may_hold(
    p: &Partition,
    client: &StoreClient,
    (mint, maxt): (i64, i64),
) -> bool {
    let cached = *p.span.lock();
    let span = match cached {
        Some((at, span)) if at.elapsed() < SPAN_TTL => span,
        _ => {
            let span = probe(p, client).await;
            *p.span.lock() = Some((Instant::now(), span));
            span
        }
    };
    let Some((oldest, newest)) = span else {
        return true;
    };
    let newest = if now_ms() - newest < LIVE {
        i64::MAX
    } else {
        newest
    };
    oldest <= maxt && mint <= newest
}

async fn probe(p: &Partition, client: &StoreClient) -> Option<(i64, i64)> {
    let base = {
        let replicas = p.replicas.read();
        let n = replicas.len();
        replicas
            .get(p.preferred.load(std::sync::atomic::Ordering::Relaxed) % n.max(1))?
            .clone()
    };
    let req = hyper::Request::get(format!("{base}/metrics"))
        .body(Full::new(Bytes::new()))
        .ok()?;
    let (status, body) = tokio::time::timeout(PROBE_TIMEOUT, client.send(req, MAX_METRICS_BYTES))
        .await
        .ok()?
        .ok()?;
    if !status.is_success() {
        return None;
    }
    span_of(std::str::from_utf8(&body).ok()?)
}

/// The `(oldest, newest)` sample time in ms a `/metrics` page states.
fn span_of(text: &str) -> Option<(i64, i64)> {
    let value = |names: &[&str]| {
        text.lines().find_map(|l| {
            let (name, v) = l.split_once(' ')?;
            names
                .contains(&name)
                .then(|| v.trim().parse::<f64>().ok())?
        })
    };
    let oldest = value(&[
        "tessera_tsdb_lowest_timestamp_seconds",
        "prometheus_tsdb_lowest_timestamp_seconds",
    ])?;
    let newest = value(&[
        "tessera_tsdb_highest_timestamp_seconds",
        "prometheus_tsdb_head_max_time_seconds",
    ])?;
    let (oldest, newest) = ((oldest * 1000.0) as i64, (newest * 1000.0) as i64);
    // Prometheus states an empty head as max < min.
    (oldest.is_positive() && oldest <= newest).then_some((oldest, newest))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_from_tessera_and_prometheus_metrics() {
        let f = |text: &str, want: Option<(i64, i64)>| assert_eq!(span_of(text), want, "{text}");
        f(
            "# HELP x\ntessera_tsdb_lowest_timestamp_seconds 1700000000.5\ntessera_tsdb_highest_timestamp_seconds 1700000100\n",
            Some((1_700_000_000_500, 1_700_000_100_000)),
        );
        f(
            "prometheus_tsdb_head_max_time_seconds 1.7000001e+09\nprometheus_tsdb_lowest_timestamp_seconds 1.7e+09\n",
            Some((1_700_000_000_000, 1_700_000_100_000)),
        );
        // Prometheus with an empty head; a store without the gauges.
        f(
            "prometheus_tsdb_head_max_time_seconds -9.223372036854776e+15\nprometheus_tsdb_lowest_timestamp_seconds 9.223372036854776e+15\n",
            None,
        );
        f("up 1\n", None);
    }
}
