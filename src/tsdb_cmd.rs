//! `tessera tsdb`: offline tools for a data dir (repair, inspect, analyze).
//!
//! `inspect` and `analyze` change nothing on disk, so they are safe to run
//! on a copy or while investigating; `repair` rewrites damaged WAL segments
//! and blocks and says exactly what it dropped. A damaged block is never
//! deleted: it is moved to `<data dir>/damaged/shard-NNN/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tessera_query::time::rfc3339_trimmed;
use tessera_tsdb::block::{
    Block, BlockError, BlockRepair, BlocksRepair, Damage, DroppedChunk, block_dirs, repair_blocks,
};
use tessera_tsdb::layout::{shard_block_dir, shard_dir, shard_wal_dir, stored_shard_count};
use tessera_tsdb::wal::{self, list_checkpoints, list_segments};
use tessera_tsdb::{Db, DbOptions};

/// Where `repair` moves damaged blocks, under the data dir.
const DAMAGED_DIR: &str = "damaged";

#[derive(Subcommand, Debug)]
pub(crate) enum TsdbCommand {
    /// Repair damaged WAL segments and blocks: keep everything before the
    /// first damage in each shard's WAL, rewrite blocks without their
    /// damaged chunks, move blocks with a damaged index to
    /// `<data dir>/damaged/`, and report what was dropped.
    Repair(DirArgs),
    /// List shards, WAL segments, checkpoints and blocks with their sizes.
    Inspect {
        #[command(flatten)]
        dir: DirArgs,
        /// Also read every chunk of every block and check its CRC32C
        /// (reads all block data); exits non-zero if any block is damaged.
        #[arg(long)]
        verify: bool,
    },
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
pub(crate) struct DirArgs {
    /// The data dir of a (stopped) tessera server.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
}

pub(crate) fn run(cmd: TsdbCommand) -> anyhow::Result<()> {
    match cmd {
        TsdbCommand::Repair(a) => repair(&a.data_dir),
        TsdbCommand::Inspect { dir, verify } => inspect(&dir.data_dir, verify),
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

/// Where `repair` moves shard `i`'s damaged blocks.
fn damaged_root(dir: &Path, i: usize) -> PathBuf {
    let shard = shard_dir(dir, i);
    let name = shard.file_name().map(PathBuf::from).unwrap_or_default();
    dir.join(DAMAGED_DIR).join(name)
}

/// Takes the data dir's `LOCK` as a server does, so a repair never moves
/// blocks or truncates segments under a running server. Held until the
/// returned file is dropped.
fn lock(dir: &Path) -> anyhow::Result<std::fs::File> {
    tessera_tsdb::layout::lock_data_dir(dir)
        .with_context(|| "repair changes the data dir: stop the server using it first")
}

/// Totals of a repair over every shard's blocks.
#[derive(Default)]
struct BlockTotals {
    checked: usize,
    rewritten: usize,
    moved: usize,
    failed: usize,
    chunks_dropped: usize,
    samples_lost: u64,
    /// Blocks moved aside whose `meta.json` was unreadable too: their
    /// sample count is not in `samples_lost`.
    samples_unknown: usize,
}

fn repair(dir: &Path) -> anyhow::Result<()> {
    let n = shards(dir)?;
    let _lock = lock(dir)?;
    let mut damaged_shards = vec![false; n];
    let mut wal_damaged = 0;
    for (i, damaged) in damaged_shards.iter_mut().enumerate() {
        let wdir = shard_wal_dir(dir, i);
        let r = wal::repair(&wdir).with_context(|| format!("repairing {}", wdir.display()))?;
        match &r.damage {
            None => println!(
                "shard {i}: {} segments checked, no damage",
                r.segments_checked
            ),
            Some(d) => {
                wal_damaged += 1;
                *damaged = true;
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
    let mut t = BlockTotals::default();
    let mut errors = Vec::new();
    for (i, damaged) in damaged_shards.iter_mut().enumerate() {
        let bdir = shard_block_dir(dir, i);
        match repair_blocks(&bdir, &damaged_root(dir, i)) {
            Ok(r) => *damaged |= print_block_repair(i, &r, &mut t),
            Err(e) => {
                *damaged = true;
                println!("shard {i}: blocks: cannot repair {}: {e}", bdir.display());
                errors.push(format!("shard {i}: {e}"));
            }
        }
    }
    let lost = if t.samples_unknown > 0 {
        format!(
            "at least {} samples ({} blocks with an unreadable meta.json not counted)",
            t.samples_lost, t.samples_unknown
        )
    } else {
        format!("{} samples", t.samples_lost)
    };
    println!(
        "repair finished: {} of {n} shards had damage (WAL: {wal_damaged} shards; blocks: {} checked, \
         {} rewritten without their damaged chunks, {} moved to {}, {} failed; {} chunks and {lost} dropped)",
        damaged_shards.iter().filter(|d| **d).count(),
        t.checked,
        t.rewritten,
        t.moved,
        dir.join(DAMAGED_DIR).display(),
        t.failed,
        t.chunks_dropped,
    );
    if t.failed > 0 || !errors.is_empty() {
        bail!(
            "{} blocks could not be checked (left as they were) and {} shards' block dirs could not be read; \
             see the lines above, fix the cause (permissions, disk) and run the repair again",
            t.failed,
            errors.len()
        );
    }
    Ok(())
}

/// Prints what a repair did to one shard's blocks; true if it found
/// damage.
fn print_block_repair(i: usize, r: &BlocksRepair, t: &mut BlockTotals) -> bool {
    let mut damaged = false;
    if r.tmp_removed > 0 {
        println!(
            "shard {i}: blocks: deleted {} half-written .tmp block dirs",
            r.tmp_removed
        );
    }
    for p in &r.resumed {
        println!(
            "shard {i}: block {}: finished an interrupted repair (renamed its replacement into place)",
            name(p)
        );
    }
    for (p, rep) in &r.blocks {
        t.checked += 1;
        match rep {
            BlockRepair::Intact { .. } => {}
            BlockRepair::Rewritten {
                moved_to,
                old,
                new,
                dropped,
            } => {
                damaged = true;
                t.rewritten += 1;
                t.chunks_dropped += dropped.len();
                t.samples_lost += rep.samples_lost().unwrap_or(0);
                println!(
                    "shard {i}: block {}: {} damaged chunks dropped, {} samples lost; rewritten with the other \
                     {} chunks ({} samples); the damaged original is at {}",
                    name(p),
                    dropped.len(),
                    old.stats.samples.saturating_sub(new.stats.samples),
                    new.stats.chunks,
                    new.stats.samples,
                    moved_to.display()
                );
                print_dropped(dropped);
            }
            BlockRepair::MovedAside {
                moved_to,
                damage,
                meta,
                dropped,
            } => {
                damaged = true;
                t.moved += 1;
                t.chunks_dropped += dropped.len();
                let held = match meta {
                    Some(m) => {
                        t.samples_lost += m.stats.samples;
                        format!(
                            "{} series, {} samples, {}..{} ms",
                            m.stats.series, m.stats.samples, m.min_time, m.max_time
                        )
                    }
                    None => {
                        t.samples_unknown += 1;
                        "contents unknown: meta.json unreadable".into()
                    }
                };
                let why = if dropped.is_empty() {
                    "cannot be read"
                } else {
                    "has no intact chunk"
                };
                println!(
                    "shard {i}: block {} {why} ({damage}); moved whole to {} ({held})",
                    name(p),
                    moved_to.display()
                );
                print_dropped(dropped);
            }
        }
    }
    for (p, e) in &r.failed {
        damaged = true;
        t.failed += 1;
        println!(
            "shard {i}: block {}: not checked, left as it was: {e}",
            p.display()
        );
    }
    if !damaged && r.tmp_removed == 0 && r.resumed.is_empty() {
        println!("shard {i}: {} blocks checked, no damage", r.blocks.len());
    }
    damaged
}

fn print_dropped(dropped: &[DroppedChunk]) {
    for c in dropped {
        let samples = c
            .samples
            .map_or("an unknown number of".to_string(), |s| s.to_string());
        println!(
            "  dropped chunk of {} from {} to {} ({}..{} ms), {samples} samples: {}",
            c.labels,
            rfc3339_trimmed(c.min_t),
            rfc3339_trimmed(c.max_t),
            c.min_t,
            c.max_t,
            c.damage
        );
    }
}

fn name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// Bytes of the files directly in `dir` (a block's meta.json, index and
/// chunks).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    })
}

/// Sums of the blocks `inspect` listed.
#[derive(Default)]
struct InspectTotals {
    blocks: u64,
    series: u64,
    samples: u64,
    chunks: u64,
    bytes: u64,
    damaged: u64,
}

fn per_sample(bytes: u64, samples: u64) -> String {
    if samples == 0 {
        "-".into()
    } else {
        format!("{:.2}", bytes as f64 / samples as f64)
    }
}

fn inspect(dir: &Path, verify: bool) -> anyhow::Result<()> {
    let n = shards(dir)?;
    println!("data dir {} with {n} shards", dir.display());
    let mut total = 0;
    let mut b = InspectTotals::default();
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
        inspect_blocks(i, &shard_block_dir(dir, i), verify, &mut b)?;
    }
    println!("total WAL bytes: {total}");
    println!(
        "total blocks: {}, {} series, {} samples, {} chunks, {} bytes, {} bytes/sample",
        b.blocks,
        b.series,
        b.samples,
        b.chunks,
        b.bytes,
        per_sample(b.bytes, b.samples)
    );
    let set_aside = dir.join(DAMAGED_DIR);
    if set_aside.is_dir() {
        let moved: usize = (0..n)
            .map(|i| block_dirs(&damaged_root(dir, i)).map_or(0, |d| d.len()))
            .sum();
        println!(
            "damaged blocks set aside by repair: {moved} under {} (not read; delete them once you no longer need them)",
            set_aside.display()
        );
    }
    if b.damaged > 0 {
        bail!(
            "{} damaged or unreadable blocks (see the lines above); stop the server and run \
             `tessera tsdb repair --data-dir {}`",
            b.damaged,
            dir.display()
        );
    }
    Ok(())
}

fn inspect_blocks(
    shard: usize,
    bdir: &Path,
    verify: bool,
    t: &mut InspectTotals,
) -> anyhow::Result<()> {
    let dirs = block_dirs(bdir).with_context(|| format!("listing {}", bdir.display()))?;
    println!("shard {shard:3}: {} blocks", dirs.len());
    for d in dirs {
        let bytes = dir_bytes(&d);
        t.blocks += 1;
        t.bytes += bytes;
        let block = match Block::open(&d) {
            Ok(b) => b,
            Err(e) => {
                t.damaged += 1;
                println!("  block {}: {bytes} bytes, {}", name(&d), problem(e));
                continue;
            }
        };
        let m = block.meta();
        t.series += m.stats.series;
        t.samples += m.stats.samples;
        t.chunks += m.stats.chunks;
        println!(
            "  block {}: {} .. {} ({}..{} ms, {:.2} h), level {}, {} series, {} samples, {} chunks, {bytes} bytes, {} bytes/sample",
            name(&d),
            rfc3339_trimmed(m.min_time),
            rfc3339_trimmed(m.max_time),
            m.min_time,
            m.max_time,
            (m.max_time - m.min_time) as f64 / 3.6e6,
            m.compaction.level,
            m.stats.series,
            m.stats.samples,
            m.stats.chunks,
            per_sample(bytes, m.stats.samples)
        );
        if verify {
            match block.verify() {
                Ok(()) => println!("    verify: OK"),
                Err(e) => {
                    t.damaged += 1;
                    println!("    verify: {}", problem(e));
                }
            }
        }
    }
    Ok(())
}

/// `DAMAGED: <file> at byte offset <n>: <reason>` for damage (what
/// `repair` acts on), `UNREADABLE: <error>` for anything else
/// (permissions, I/O), which `repair` leaves alone.
fn problem(e: BlockError) -> String {
    match Damage::from_error(e) {
        Ok(d) => format!("DAMAGED: {d}"),
        Err(e) => format!("UNREADABLE: {e}"),
    }
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
    println!(
        "\nchurn: {} series started or stopped more than {} min inside the head's range",
        a.churned_series,
        tessera_tsdb::analyze::CHURN_SLACK_MS / 60_000
    );
    list("label pairs most involved in churning", &a.churn_by_pair);
    Ok(())
}
