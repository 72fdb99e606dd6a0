//! `tessera tsdb`: offline tools for a data dir (repair, inspect, analyze).
//!
//! `inspect` and `analyze` change nothing on disk, so they are safe to run
//! on a copy or while investigating; `repair` rewrites damaged WAL segments
//! and says exactly what it dropped.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tessera_tsdb::db::{shard_wal_dir, stored_shard_count};
use tessera_tsdb::wal::{self, list_checkpoints, list_segments};
use tessera_tsdb::{Db, DbOptions};

#[derive(Subcommand, Debug)]
pub enum TsdbCommand {
    /// Repair damaged WAL segments: keep everything before the first damage
    /// in each shard and report what was dropped.
    Repair(DirArgs),
    /// List shards, WAL segments, checkpoints and their sizes.
    Inspect(DirArgs),
    /// Replay the data dir (read-only) and report cardinality: series per
    /// metric name, values per label name, series per label pair.
    Analyze {
        #[command(flatten)]
        dir: DirArgs,
        /// Entries per list.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
}

#[derive(Args, Debug)]
pub struct DirArgs {
    /// The data dir of a (stopped) tessera server.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
}

pub fn run(cmd: TsdbCommand) -> anyhow::Result<()> {
    match cmd {
        TsdbCommand::Repair(a) => repair(&a.data_dir),
        TsdbCommand::Inspect(a) => inspect(&a.data_dir),
        TsdbCommand::Analyze { dir, top } => analyze(&dir.data_dir, top),
    }
}

fn shards(dir: &Path) -> anyhow::Result<usize> {
    match stored_shard_count(dir)? {
        Some(n) => Ok(n),
        None => bail!(
            "{} is not a tessera data dir (no tessera-meta.json)",
            dir.display()
        ),
    }
}

fn repair(dir: &Path) -> anyhow::Result<()> {
    let n = shards(dir)?;
    let mut damaged = 0;
    for i in 0..n {
        let wdir = shard_wal_dir(dir, i);
        let r = wal::repair(&wdir).with_context(|| format!("repairing {}", wdir.display()))?;
        match &r.damage {
            None => println!(
                "shard {i}: {} segments checked, no damage",
                r.segments_checked
            ),
            Some(d) => {
                damaged += 1;
                println!(
                    "shard {i}: damage in {} at offset {} ({}); dropped {} bytes ({} records), deleted segments {:?}",
                    d.path.display(),
                    d.offset,
                    d.reason,
                    r.bytes_dropped,
                    r.records_dropped,
                    r.segments_deleted
                );
            }
        }
    }
    println!("repair finished: {damaged} of {n} shards had damage");
    Ok(())
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn inspect(dir: &Path) -> anyhow::Result<()> {
    let n = shards(dir)?;
    println!("data dir {} with {n} shards", dir.display());
    let mut total = 0;
    for i in 0..n {
        let wdir = shard_wal_dir(dir, i);
        let segs = list_segments(&wdir).unwrap_or_default();
        let bytes: u64 = segs
            .iter()
            .map(|s| size(&wdir.join(wal::segment_name(*s))))
            .sum();
        total += bytes;
        let cps = list_checkpoints(&wdir).unwrap_or_default();
        println!(
            "shard {i:3}: wal {} segments ({}..{}), {bytes} bytes; checkpoints {:?}",
            segs.len(),
            segs.first().map_or("-".into(), |s| s.to_string()),
            segs.last().map_or("-".into(), |s| s.to_string()),
            cps
        );
    }
    println!("total WAL bytes: {total}");
    Ok(())
}

fn analyze(dir: &Path, top: usize) -> anyhow::Result<()> {
    let n = shards(dir)?;
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
    let db = Db::open(DbOptions {
        data_dir: Some(dir.to_path_buf()),
        shards: n,
        replay_threads: cpus,
        read_only: true,
        ..DbOptions::in_memory(n)
    })?;
    let a = db.analyze(top);
    println!("series: {}  label pairs: {}", a.series, a.label_pairs);
    if let (Some(lo), Some(hi)) = (a.min_time, a.max_time) {
        println!(
            "time range: {lo} .. {hi} ms ({:.1} h)",
            (hi - lo) as f64 / 3.6e6
        );
    }
    let list = |title: &str, v: &[(String, u64)]| {
        println!("\n{title}:");
        for (k, c) in v {
            println!("{c:>12}  {k}");
        }
    };
    list("series by metric name", &a.series_by_metric);
    list("distinct values by label name", &a.values_by_label);
    list("bytes of values by label name", &a.bytes_by_label);
    list("series by label pair", &a.series_by_pair);
    Ok(())
}
