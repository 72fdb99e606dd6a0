//! `cut-stall`: what a cut costs the writers.
//!
//! In-process, no server: a database with a WAL (as `tessera serve` opens
//! it) takes the fleet's rounds until its head spans more than 1.5 block
//! durations, so a cut is due. Then one thread appends further rounds in
//! batches of `--batch-samples` (a remote-write request's worth), timing
//! each `append_batch`, while the main thread runs the maintenance pass
//! that cuts the head range into a block. The report compares the batches
//! that overlapped the cut with those before it (steady state).
//!
//! A block duration of a minute stands in for 2 h: what a cut does under
//! the shard's lock grows with the shard's series, not with the range, and
//! the figure here is about the series. `--shards 1` puts every series in
//! one shard, as `--nodes N` would put N/8 nodes' series in each of a
//! server's 8 shards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use tessera_tsdb::{BlockPolicy, Db, DbOptions, Labels, Sample};

use super::{FleetArgs, Scratch, fleet_labels, parse_duration};
use crate::generator::Fleet;
use crate::report::Latency;

/// Options of `tessera-bench cut-stall`.
#[derive(Debug, Clone, Args)]
pub struct CutStallArgs {
    /// GPU nodes to simulate (4,482 series each).
    #[arg(long, default_value_t = 32)]
    pub nodes: usize,
    /// Shards of the database (the series of a server with 8 shards and
    /// 8× the nodes fall in one shard of `--shards 1`).
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
    /// The block duration (a cut is due once the head spans 1.5 of them).
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub block: Duration,
    /// Scrape interval.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Samples per appended batch (Prometheus' `max_samples_per_send`).
    #[arg(long, default_value_t = 2000)]
    pub batch_samples: usize,
    /// Seed of the deterministic generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The shared fixtures folder (see `ingest --fixtures`).
    #[arg(long)]
    pub fixtures: Option<std::path::PathBuf>,
    /// Print the report as JSON on stdout (the human summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// What `cut-stall` measured.
#[derive(Debug, Clone, Serialize)]
pub struct CutStallReport {
    pub nodes: usize,
    pub series: usize,
    pub shards: usize,
    pub batch_samples: usize,
    /// Appends that ended before the cut started.
    pub steady: Latency,
    /// Appends that overlapped the cut.
    pub during_cut: Latency,
    pub cut_secs: f64,
    pub series_cut: u64,
    pub samples_cut: u64,
    pub setup_secs: f64,
}

impl CutStallReport {
    pub fn human(&self) -> String {
        let l = |n: &str, x: &Latency| {
            format!(
                "  {n:11} {:6} batches  p50 {:8.3} ms  p99 {:8.3} ms  max {:8.3} ms\n",
                x.count, x.p50_ms, x.p99_ms, x.max_ms
            )
        };
        format!(
            "cut-stall: {} nodes, {} series in {} shard(s), batches of {} samples\n\
             cut: {:.2} s, {} series, {} samples into the block (set-up {:.1} s)\n{}{}",
            self.nodes,
            self.series,
            self.shards,
            self.batch_samples,
            self.cut_secs,
            self.series_cut,
            self.samples_cut,
            self.setup_secs,
            l("steady", &self.steady),
            l("during cut", &self.during_cut),
        )
    }
}

/// One round of every series, appended in batches; each batch's time is
/// passed to `timed` with its start and end.
fn append_round(
    db: &Db,
    fleet: &Fleet,
    labels: &[Labels],
    base_ts: i64,
    interval: i64,
    batch: usize,
    mut timed: impl FnMut(Instant, Instant),
) -> anyhow::Result<()> {
    let samples: Vec<[Sample; 1]> = fleet
        .series
        .iter()
        .map(|s| {
            [Sample::new(
                fleet.sample_ts(s.node, base_ts, interval),
                s.value,
            )]
        })
        .collect();
    for (ls, ss) in labels.chunks(batch).zip(samples.chunks(batch)) {
        let t0 = Instant::now();
        db.append_batch(ls.iter().zip(ss.iter().map(|s| &s[..])))?;
        timed(t0, Instant::now());
    }
    Ok(())
}

/// Fills the head, cuts it while appending, measures; see the module docs.
pub fn run(args: &CutStallArgs) -> anyhow::Result<CutStallReport> {
    let interval = args.interval.as_millis() as i64;
    let block = args.block.as_millis() as i64;
    if interval <= 0 || block < interval {
        bail!("--block must be at least one --interval");
    }
    let cfg =
        FleetArgs::whole_nodes(args.nodes, args.seed, args.fixtures.clone()).config(args.json);
    let mut fleet = Fleet::new(cfg);
    let labels = fleet_labels(&fleet);

    let dir = std::env::temp_dir().join(format!("tessera-cut-stall-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let _scratch = Scratch {
        dir: dir.clone(),
        keep: false,
    };
    let db = Arc::new(Db::open(DbOptions {
        data_dir: Some(dir.clone()),
        blocks: BlockPolicy {
            block_duration_ms: block,
            retention_ms: None,
        },
        ..DbOptions::in_memory(args.shards.max(1))
    })?);

    // Rounds until the head spans more than 1.5 blocks: then a cut is due.
    let start = 1_735_689_600_000i64;
    let setup = Instant::now();
    let mut round = 0i64;
    // (The last of them also warms the pages and allocations of steady
    // state: the span passes 1.5 blocks one round earlier.)
    while round * interval <= block / 2 * 3 + 2 * interval {
        if round > 0 {
            fleet.advance_round(interval);
        }
        let base = start + (round + 1) * interval;
        append_round(
            &db,
            &fleet,
            &labels,
            base,
            interval,
            args.batch_samples,
            |_, _| {},
        )?;
        round += 1;
    }
    let setup_secs = setup.elapsed().as_secs_f64();

    let cutting = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, cutting, done) = (db.clone(), cutting.clone(), done.clone());
        let batch = args.batch_samples;
        std::thread::spawn(move || -> anyhow::Result<Vec<(Instant, Instant)>> {
            let mut times = Vec::new();
            // At least one whole round before the cut starts, then rounds
            // until it is over. These rounds are 1 ms apart, not an
            // interval: sent as fast as they are taken, whole intervals
            // would move the head on by minutes a second and keep making
            // new cuts due, so the pass would never end.
            let base = start + (round + 1) * interval;
            let mut k = 0;
            while !done.load(Ordering::Acquire) {
                k += 1;
                fleet.advance_round(interval);
                append_round(&db, &fleet, &labels, base + k, interval, batch, |a, b| {
                    times.push((a, b))
                })?;
                cutting.store(true, Ordering::Release);
            }
            Ok(times)
        })
    };
    while !cutting.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let t0 = Instant::now();
    let rep = db.maintain();
    let t1 = Instant::now();
    done.store(true, Ordering::Release);
    let times = writer.join().expect("writer thread")?;
    let rep = rep?;
    let (mut steady, mut during) = (Vec::new(), Vec::new());
    for (a, b) in times {
        if b <= t0 {
            steady.push(b - a);
        } else if a <= t1 {
            during.push(b - a);
        }
    }
    Ok(CutStallReport {
        nodes: args.nodes,
        series: labels_len(&db),
        shards: args.shards.max(1),
        batch_samples: args.batch_samples,
        steady: Latency::from_durations(&mut steady),
        during_cut: Latency::from_durations(&mut during),
        cut_secs: (t1 - t0).as_secs_f64(),
        series_cut: rep.cuts.iter().map(|c| c.series).sum(),
        samples_cut: rep.cuts.iter().map(|c| c.samples).sum(),
        setup_secs,
    })
}

fn labels_len(db: &Db) -> usize {
    db.head_stats().iter().map(|h| h.series as usize).sum()
}
