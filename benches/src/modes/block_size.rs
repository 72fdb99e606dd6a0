//! `block-size`: on-disk bytes per sample of blocks holding the fleet's data.
//!
//! The fleet is generated in-process (no server, no remote write): every
//! `--block-span` of rounds becomes one level-1 block written with
//! `BlockWriter` and the options the head's blocks use, then all of them are
//! compacted into one block with the options recommended for compaction
//! outputs, as the TSDB will do. Each is measured from the files: bytes of
//! `index` + `chunks` per sample, split into timestamp columns, value
//! columns, chunk headers with CRCs, and the index. `--by-metric` says which
//! metric names the value bytes go to, which is what a codec change has to
//! move.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use tessera_tsdb::Sample;
use tessera_tsdb::block::{self, Block, BlockOptions, BlockWriter};

use super::{FleetArgs, Scratch, fleet_labels, parse_duration};
use crate::generator::Fleet;

/// Options of `tessera-bench block-size`.
#[derive(Debug, Clone, Args)]
pub struct BlockSizeArgs {
    /// GPU nodes to simulate (about 4,500 series each).
    #[arg(long, default_value_t = 20)]
    pub nodes: usize,
    /// Seed of the deterministic generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The shared fixtures folder (see `ingest --fixtures`).
    #[arg(long)]
    pub fixtures: Option<PathBuf>,
    /// Time generated; a whole number of `--block-span`s.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub span: Duration,
    /// Time range of each level-1 block (the head cuts 2 h blocks).
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub block_span: Duration,
    /// Scrape interval.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Samples per chunk of the compacted block; default: what
    /// `BlockOptions::compacted()` recommends.
    #[arg(long)]
    pub compact_chunk_samples: Option<usize>,
    /// Where the blocks go (must be empty or absent; kept). Default: a new
    /// directory under the system temp dir, deleted at the end unless
    /// `--keep`.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the blocks after measuring.
    #[arg(long)]
    pub keep: bool,
    /// Metric names to list, largest value columns first (compacted block).
    #[arg(long, default_value_t = 12)]
    pub by_metric: usize,
    /// Print the report as JSON on stdout (the human summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// Where the bytes of one or more blocks go.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Sizes {
    pub blocks: usize,
    pub series: u64,
    pub samples: u64,
    pub chunks: u64,
    pub index_bytes: u64,
    /// The whole `chunks` files.
    pub chunks_bytes: u64,
    /// Timestamp columns as stored (a shared column counts once).
    pub timestamp_bytes: u64,
    pub value_bytes: u64,
    /// Samples and value-column bytes per value encoding.
    pub by_encoding: BTreeMap<String, (u64, u64)>,
}

impl Sizes {
    pub fn bytes_per_sample(&self) -> f64 {
        self.per(self.index_bytes + self.chunks_bytes)
    }

    /// Chunk headers, CRCs and the `chunks` file header: everything in
    /// `chunks` that is not a column.
    pub fn header_bytes(&self) -> u64 {
        self.chunks_bytes - self.timestamp_bytes - self.value_bytes
    }

    fn per(&self, bytes: u64) -> f64 {
        bytes as f64 / self.samples.max(1) as f64
    }

    fn add(&mut self, o: &Sizes) {
        self.blocks += o.blocks;
        self.series += o.series;
        self.samples += o.samples;
        self.chunks += o.chunks;
        self.index_bytes += o.index_bytes;
        self.chunks_bytes += o.chunks_bytes;
        self.timestamp_bytes += o.timestamp_bytes;
        self.value_bytes += o.value_bytes;
        for (k, (s, b)) in &o.by_encoding {
            let e = self.by_encoding.entry(k.clone()).or_default();
            e.0 += s;
            e.1 += b;
        }
    }

    fn line(&self, what: &str) -> String {
        format!(
            "{what:28} {:6.3} = ts {:5.3} + values {:5.3} + headers/CRC {:5.3} + index {:5.3}   \
             ({} series, {} samples, {:.1} chunks/series)\n",
            self.bytes_per_sample(),
            self.per(self.timestamp_bytes),
            self.per(self.value_bytes),
            self.per(self.header_bytes()),
            self.per(self.index_bytes),
            self.series / self.blocks.max(1) as u64,
            self.samples,
            self.chunks as f64 / self.series.max(1) as f64,
        )
    }
}

/// One metric name's share of the compacted block.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MetricSize {
    pub name: String,
    pub series: u64,
    pub samples: u64,
    pub value_bytes: u64,
    /// Samples per value encoding.
    pub encodings: BTreeMap<String, u64>,
}

/// What `block-size` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BlockSizeReport {
    pub nodes: usize,
    pub series: usize,
    pub interval_ms: i64,
    pub span_ms: i64,
    pub block_span_ms: i64,
    pub compact_chunk_samples: usize,
    /// All level-1 blocks together.
    pub level1: Sizes,
    pub compacted: Sizes,
    pub generate_secs: f64,
    pub write_secs: f64,
    pub compact_secs: f64,
    /// Decoding every sample of the compacted block, once.
    pub decode_samples_per_sec: f64,
    pub by_metric: Vec<MetricSize>,
}

impl BlockSizeReport {
    pub fn human(&self, top: usize) -> String {
        let h = |ms: i64| ms as f64 / 3.6e6;
        let mut s = format!(
            "block-size: {} nodes, {} series, {} h at {} s: {} level-1 blocks of {} h, compacted with {} samples/chunk\n\
             generate {:.1} s, write level-1 {:.1} s, compact {:.1} s, decode compacted {:.0} M samples/s\n\
             bytes/sample of index + chunks:\n",
            self.nodes,
            self.series,
            h(self.span_ms),
            self.interval_ms as f64 / 1000.0,
            self.level1.blocks,
            h(self.block_span_ms),
            self.compact_chunk_samples,
            self.generate_secs,
            self.write_secs,
            self.compact_secs,
            self.decode_samples_per_sec / 1e6,
        );
        s += &self.level1.line(&format!(
            "{} × {} h level-1 blocks",
            self.level1.blocks,
            h(self.block_span_ms)
        ));
        s += &self
            .compacted
            .line(&format!("compacted {} h block", h(self.span_ms)));
        for (what, sz) in [("level-1", &self.level1), ("compacted", &self.compacted)] {
            s += &format!("value encodings, {what}:");
            for (enc, (n, b)) in &sz.by_encoding {
                s += &format!(
                    " {enc} {:.1} % of samples at {:.3} B;",
                    100.0 * *n as f64 / sz.samples.max(1) as f64,
                    *b as f64 / (*n).max(1) as f64
                );
            }
            s += "\n";
        }
        if top > 0 {
            s += "value bytes by metric (compacted), largest first:\n";
            for m in self.by_metric.iter().take(top) {
                let encs: Vec<String> = m
                    .encodings
                    .iter()
                    .map(|(e, n)| {
                        format!("{e} {:.0} %", 100.0 * *n as f64 / m.samples.max(1) as f64)
                    })
                    .collect();
                s += &format!(
                    "  {:50} {:6} series {:6.3} B/sample {:5.1} % of values  {}\n",
                    m.name,
                    m.series,
                    m.value_bytes as f64 / m.samples.max(1) as f64,
                    100.0 * m.value_bytes as f64 / self.compacted.value_bytes.max(1) as f64,
                    encs.join(", ")
                );
            }
        }
        s
    }
}

/// Measures a block from its files; with `by_metric`, also adds each
/// series' value bytes to its metric name.
fn measure(
    b: &Block,
    mut by_metric: Option<&mut HashMap<String, MetricSize>>,
) -> anyhow::Result<Sizes> {
    let dir = b.dir();
    let len = |f: &str| -> anyhow::Result<u64> {
        let p = dir.join(f);
        Ok(std::fs::metadata(&p)
            .with_context(|| format!("stat {}", p.display()))?
            .len())
    };
    let meta = b.meta().stats;
    let mut s = Sizes {
        blocks: 1,
        series: meta.series,
        samples: meta.samples,
        chunks: meta.chunks,
        index_bytes: len(block::INDEX_FILE)?,
        chunks_bytes: len(block::CHUNKS_FILE)?,
        ..Sizes::default()
    };
    for id in 0..b.series_count() {
        let sc = b.series_chunks(id, i64::MIN, i64::MAX)?;
        let (mut samples, mut vals) = (0u64, 0u64);
        let mut encs: Vec<(String, u64)> = Vec::new();
        for c in &sc.chunks {
            let (ts_len, vals_len) = c.column_lens();
            // A shared column is stored once, with the first chunk using it.
            if c.as_chunk_ref().is_some() {
                s.timestamp_bytes += ts_len as u64;
            }
            let name = encoding_name(c);
            if by_metric.is_some() {
                encs.push((name.clone(), c.len() as u64));
            }
            let e = s.by_encoding.entry(name).or_default();
            e.0 += c.len() as u64;
            e.1 += vals_len as u64;
            samples += c.len() as u64;
            vals += vals_len as u64;
        }
        s.value_bytes += vals;
        if let Some(m) = by_metric.as_deref_mut() {
            let name = sc.labels.metric_name().unwrap_or("").to_string();
            let e = m.entry(name.clone()).or_insert_with(|| MetricSize {
                name,
                ..MetricSize::default()
            });
            e.series += 1;
            e.samples += samples;
            e.value_bytes += vals;
            for (enc, n) in encs {
                *e.encodings.entry(enc).or_default() += n;
            }
        }
    }
    Ok(s)
}

/// The value encoding's kind without its parameters (decimals, table).
fn encoding_name(c: &block::BlockChunk<'_>) -> String {
    let d = format!("{:?}", c.value_encoding());
    d.split([' ', '{', '(']).next().unwrap_or("").to_string()
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// Generates, writes, compacts and measures; see the module docs.
pub fn run(args: &BlockSizeArgs) -> anyhow::Result<BlockSizeReport> {
    let interval = ms(args.interval);
    let (span, block_span) = (ms(args.span), ms(args.block_span));
    if interval <= 0 || block_span < interval || block_span % interval != 0 {
        bail!("--block-span must be a positive multiple of --interval");
    }
    if span < block_span || span % block_span != 0 {
        bail!("--span must be a positive multiple of --block-span");
    }
    let per_block = (block_span / interval) as usize;
    let n_blocks = (span / block_span) as usize;
    let cfg =
        FleetArgs::whole_nodes(args.nodes, args.seed, args.fixtures.clone()).config(args.json);
    let mut fleet = Fleet::new(cfg);
    let n = fleet.series.len();
    let labels = fleet_labels(&fleet);
    // The writer takes series in label order.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| labels[a].cmp(&labels[b]));

    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("tessera-block-size-{}", std::process::id())),
    };
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} is not empty", dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let _scratch = Scratch {
        dir: dir.clone(),
        keep: args.keep || args.dir.is_some(),
    };

    // 2025-01-01T00:00Z: block ranges line up with whole 2 h windows.
    let start = 1_735_689_600_000i64;
    // One block's values, series by series: the writer wants each series
    // whole, the generator yields a round of every series at a time.
    let mut vals = vec![0f64; n * per_block];
    let (mut gen_secs, mut write_secs) = (0f64, 0f64);
    let mut level1 = Sizes::default();
    let mut paths = Vec::with_capacity(n_blocks);
    for k in 0..n_blocks {
        let t0 = Instant::now();
        for r in 0..per_block {
            if k > 0 || r > 0 {
                fleet.advance_round(interval);
            }
            for (s, series) in fleet.series.iter().enumerate() {
                vals[s * per_block + r] = series.value;
            }
        }
        gen_secs += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let first = start + (k * per_block) as i64 * interval;
        let p = dir.join(block::block_dir_name(
            first,
            first + block_span - 1,
            k as u32,
        ));
        let mut w = BlockWriter::create(&p, BlockOptions::default())?;
        for &s in &order {
            let node = fleet.series[s].node;
            let f = &fleet;
            let samples = vals[s * per_block..(s + 1) * per_block]
                .iter()
                .enumerate()
                .map(move |(r, &v)| {
                    // `sample_ts` takes the round's stamp, one interval
                    // after the scrape window it falls in.
                    let base = first + (r as i64 + 1) * interval;
                    Sample::new(f.sample_ts(node, base, interval), v)
                });
            w.add_series(&labels[s], samples)?;
        }
        w.finish()?;
        write_secs += t0.elapsed().as_secs_f64();
        level1.add(&measure(&Block::open(&p)?, None)?);
        paths.push(p);
        if !args.json {
            eprint!("\rwrote level-1 block {}/{n_blocks}", k + 1);
        }
    }
    if !args.json {
        eprintln!();
    }
    drop(vals);

    let opts = match args.compact_chunk_samples {
        Some(max) => BlockOptions {
            max_chunk_samples: max,
            ..BlockOptions::compacted()
        },
        None => BlockOptions::compacted(),
    };
    let blocks = paths
        .iter()
        .map(Block::open)
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&Block> = blocks.iter().collect();
    let t0 = Instant::now();
    let out = dir.join("compacted");
    block::compact(&refs, &out, opts)?;
    let compact_secs = t0.elapsed().as_secs_f64();
    let c = Block::open(&out)?;
    let mut metrics = HashMap::new();
    let compacted = measure(&c, Some(&mut metrics))?;
    if compacted.samples != level1.samples {
        bail!(
            "compaction kept {} of {} samples",
            compacted.samples,
            level1.samples
        );
    }
    let decode_samples_per_sec = decode_rate(&c)?;
    let mut by_metric: Vec<MetricSize> = metrics.into_values().collect();
    by_metric.sort_by(|a, b| {
        b.value_bytes
            .cmp(&a.value_bytes)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(BlockSizeReport {
        nodes: args.nodes,
        series: n,
        interval_ms: interval,
        span_ms: span,
        block_span_ms: block_span,
        compact_chunk_samples: opts.max_chunk_samples,
        level1,
        compacted,
        generate_secs: gen_secs,
        write_secs,
        compact_secs,
        decode_samples_per_sec,
        by_metric,
    })
}

/// Decodes every sample of `b` once and returns samples per second of the
/// decoding alone (chunks are looked up and CRC-checked beforehand).
fn decode_rate(b: &Block) -> anyhow::Result<f64> {
    let mut chunks = Vec::new();
    for id in 0..b.series_count() {
        chunks.extend(b.series_chunks(id, i64::MIN, i64::MAX)?.chunks);
    }
    let t0 = Instant::now();
    let mut n = 0u64;
    let mut sum = 0f64;
    for c in &chunks {
        for (_, v) in c.iter() {
            n += 1;
            sum += v;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    if n != b.meta().stats.samples {
        bail!(
            "{}: decoded {n} of {} samples",
            b.dir().display(),
            b.meta().stats.samples
        );
    }
    Ok(n as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_fleet_compacts_to_fewer_bytes_with_every_sample() {
        // No `--dir`: a scratch directory the run deletes.
        let args = BlockSizeArgs {
            nodes: 1,
            seed: 3,
            fixtures: None,
            span: Duration::from_secs(30 * 60),
            block_span: Duration::from_secs(15 * 60),
            interval: Duration::from_secs(15),
            compact_chunk_samples: None,
            dir: None,
            keep: false,
            by_metric: 3,
            json: true,
        };
        let r = run(&args).expect("runs");
        let series = r.series as u64;
        assert_eq!(r.level1.blocks, 2);
        assert_eq!(r.level1.samples, series * 120);
        assert_eq!(r.compacted.samples, r.level1.samples);
        assert_eq!(r.compacted.series, series);
        assert!(r.compacted.bytes_per_sample() < r.level1.bytes_per_sample());
        let enc_samples: u64 = r.compacted.by_encoding.values().map(|e| e.0).sum();
        assert_eq!(enc_samples, r.compacted.samples);
        let metric_samples: u64 = r.by_metric.iter().map(|m| m.samples).sum();
        assert_eq!(metric_samples, r.compacted.samples);
        assert!(r.human(3).contains("compacted 0.5 h block"));
        assert!(serde_json::to_string(&r).is_ok());
        // Spans that are not whole blocks are refused.
        let bad = BlockSizeArgs {
            span: Duration::from_secs(20 * 60),
            ..args
        };
        assert!(run(&bad).is_err());
    }
}
