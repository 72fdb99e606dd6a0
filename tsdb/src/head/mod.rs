//! The in-memory head of one shard: series table, inverted index, chunks.
//!
//! A shard's [`Head`] is owned by its shard (`crate::shard`) behind one lock;
//! shards never share a head, so appends to different shards never contend.
//! Appending lives in `append.rs`, reading in `read.rs`.

mod append;
mod chunk_files;
pub(crate) mod label_order;
mod listing;
mod postings;
mod read;
mod series;
mod symbols;
mod truncate;

use std::collections::HashMap;
use std::path::Path;

pub use append::AppendStats;
pub(crate) use series::MemSeries;

use chunk_files::ChunkFiles;
use postings::Postings;
use symbols::Symbols;

#[derive(Default)]
pub(crate) struct Head {
    symbols: Symbols,
    postings: Postings,
    series: Vec<MemSeries>,
    /// Series hash → id; a second id with the same hash goes to `collisions`.
    by_hash: HashMap<u64, u32>,
    collisions: HashMap<u64, Vec<u32>>,
    /// Oldest and newest sample timestamps in the head (the oldest never
    /// below `min_valid_t`).
    bounds: Option<(i64, i64)>,
    /// The head's lower bound once a range was cut into a block: older
    /// samples are refused at append, skipped at replay and hidden from
    /// reads (a chunk straddling the cut stays until the next one).
    min_valid_t: Option<i64>,
    /// Series not removed by garbage collection.
    live: usize,
    /// Series churn for the cardinality analysis: series created since the
    /// last cut (WAL replay's included, so after a restart all of them),
    /// and series the last cut removed. Two counters, no per-series cost.
    created_since_cut: u64,
    removed_by_last_cut: u64,
    /// Series removed over the head's life: a streamed listing holding
    /// series ids across lock releases sees when a slot may have been
    /// reused (`listing.rs`).
    removals: u64,
    /// Empty slots of `series` (removed series), reused by new series so
    /// churn does not grow the table. Reusing a WAL ref is safe: a series
    /// is removed only once a block holds all its samples, and replay
    /// redefines a ref in record order (`create_at`).
    free: Vec<u32>,
    /// Where sealed chunks go so they leave the heap (`chunk_files.rs`);
    /// `None` keeps them on the heap (in-memory and read-only databases).
    chunk_files: Option<ChunkFiles>,
}

/// Counts that describe one shard's head, for `/metrics` and status pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadStats {
    pub series: u64,
    /// Chunks held (sealed plus open ones with samples).
    pub chunks: u64,
    pub symbols: u64,
    /// Heap bytes of the head: series, index, symbols, open chunks, and
    /// sealed chunks kept on the heap.
    pub heap_bytes: u64,
    /// Bytes of the live sealed chunks in head chunk files: page cache,
    /// resident only while reads touch them, not heap.
    pub mapped_bytes: u64,
    pub min_t: Option<i64>,
    pub max_t: Option<i64>,
}

impl Head {
    /// Sends sealed chunks to memory-mapped files in `dir` from now on
    /// (`chunk_files.rs`), deleting whatever `dir` held: the files are not
    /// durable, the WAL replay that follows rebuilds them. Call it on a
    /// new head, before anything is appended or replayed.
    pub(crate) fn enable_chunk_files(&mut self, dir: &Path) -> std::io::Result<()> {
        if self.chunk_files.is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the head already has chunk files",
            ));
        }
        self.chunk_files = Some(ChunkFiles::open(dir)?);
        Ok(())
    }

    /// [`Head::enable_chunk_files`] with small files, for tests.
    #[cfg(test)]
    fn enable_chunk_files_sized(&mut self, dir: &Path, file_size: u64) -> std::io::Result<()> {
        self.chunk_files = Some(ChunkFiles::with_file_size(dir, file_size)?);
        Ok(())
    }

    pub(crate) fn stats(&self) -> HeadStats {
        let mut min_t = None::<i64>;
        let mut max_t = None::<i64>;
        let mut heap = self.symbols.heap_bytes() + self.postings.heap_bytes();
        let mut chunks = 0u64;
        let mut mapped = 0u64;
        heap += self.by_hash.capacity() * 16;
        heap += self.series.capacity() * std::mem::size_of::<MemSeries>();
        heap += self.chunk_files.as_ref().map_or(0, ChunkFiles::heap_bytes);
        for s in &self.series {
            // The slot itself is counted with the vector's capacity.
            heap += s.heap_bytes() - std::mem::size_of::<MemSeries>();
            mapped += s.mapped_bytes() as u64;
            chunks += s.sealed.len() as u64 + (!s.open.is_empty()) as u64;
        }
        if let Some((lo, hi)) = self.bounds {
            min_t = Some(lo);
            max_t = Some(hi);
        }
        HeadStats {
            series: self.live as u64,
            chunks,
            symbols: self.symbols.len() as u64,
            heap_bytes: heap as u64,
            mapped_bytes: mapped,
            min_t,
            max_t,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use super::*;
    use crate::read::ReadControl;
    use crate::{Labels, Sample, stale_nan};

    fn labels(i: usize) -> Labels {
        let metric = [
            "DCGM_FI_DEV_GPU_UTIL",
            "node_cpu_seconds_total",
            "DCGM_FI_DEV_POWER_USAGE",
        ][i % 3];
        Labels::from_pairs([
            ("__name__", metric),
            ("instance", &*format!("node-{}", i / 24)),
            ("gpu", &*(i % 8).to_string()),
        ])
    }

    /// Scrape `r` of series `i`: utilisation percentages, a counter of
    /// seconds, watts with decimals; now and then a staleness marker.
    fn value(i: usize, r: i64) -> f64 {
        if i.is_multiple_of(5) && r % 97 == 0 {
            return stale_nan();
        }
        let i = i as i64;
        match i % 3 {
            0 => ((r * 7 + i) % 101) as f64,
            1 => (r * 37 + i) as f64 / 100.0,
            _ => 250.0 + ((r * 13 + i) % 997) as f64 / 10.0,
        }
    }

    fn t_of(t0: i64, r: i64) -> i64 {
        t0 + r * 15_000 + (r * 31) % 7
    }

    /// Appends scrapes `rounds` of `n` series to every head, in time
    /// order across series as ingestion does.
    fn ingest(heads: &mut [&mut Head], n: usize, rounds: Range<i64>, t0: i64) {
        let ls: Vec<Labels> = (0..n).map(labels).collect();
        for r in rounds {
            for (i, l) in ls.iter().enumerate() {
                let smp = [Sample::new(t_of(t0, r), value(i, r))];
                for h in heads.iter_mut() {
                    let (id, _) = h.get_or_create(l, l.stable_hash());
                    let (mut st, mut acc) = (AppendStats::default(), Vec::new());
                    h.append_samples(id, l, &smp, &mut st, &mut acc);
                    assert_eq!(st.rejected(), 0, "{:?}", st.first_rejection);
                }
            }
        }
    }

    /// Everything `select` answers, samples as bits (NaN included).
    fn select(h: &Head, mint: i64, maxt: i64) -> Vec<(String, Vec<(i64, u64)>)> {
        let mut out = Vec::new();
        h.select(&[], mint, maxt, &ReadControl::unlimited(), &mut out)
            .unwrap();
        let mut v: Vec<_> = out
            .into_iter()
            .map(|s| {
                let smp = s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect();
                (s.labels.to_string(), smp)
            })
            .collect();
        v.sort();
        v
    }

    fn file_count(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    fn same_answers(a: &Head, b: &Head, t0: i64, end: i64) {
        let ranges = [
            (i64::MIN, i64::MAX),
            (t0, t0),
            (t0 + 1_000_000, t0 + 3_000_000),
            (t0 + 7_777_777, t0 + 20_000_000),
            (end - 200_000, end),
        ];
        for (lo, hi) in ranges {
            let (x, y) = (select(a, lo, hi), select(b, lo, hi));
            assert_eq!(x, y, "range {lo}..={hi}");
        }
        assert!(!select(a, i64::MIN, i64::MAX).is_empty());
    }

    #[test]
    fn chunk_files_answer_as_the_heap_does() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("head_chunks");
        let mut heap = Head::default();
        let mut mapped = Head::default();
        mapped.enable_chunk_files_sized(&dir, 16 << 10).unwrap();
        let (n, rounds, t0) = (40, 3000, 1_700_000_000_000);
        ingest(&mut [&mut heap, &mut mapped], n, 0..rounds, t0);
        let end = t_of(t0, rounds);

        let (sh, sm) = (heap.stats(), mapped.stats());
        assert_eq!(sh.mapped_bytes, 0);
        assert!(sm.mapped_bytes > 0);
        assert_eq!((sh.chunks, sh.series), (sm.chunks, sm.series));
        assert!(sm.heap_bytes + sm.mapped_bytes <= sh.heap_bytes + 8192);
        assert!(sm.heap_bytes * 3 < sh.heap_bytes, "{sm:?} vs {sh:?}");
        same_answers(&heap, &mapped, t0, end);
        let files_before = file_count(&dir);
        assert!(files_before > 3, "{files_before} files");

        // A cut in the middle drops the same chunks from both; the files
        // holding only those go.
        let mid = t_of(t0, rounds / 2);
        assert_eq!(heap.truncate_before(mid), mapped.truncate_before(mid));
        let files_mid = file_count(&dir);
        assert!(files_mid > 0 && files_mid < files_before);
        assert_eq!(files_mid, mapped.chunk_files.as_ref().unwrap().file_count());
        assert!(mapped.stats().mapped_bytes < sm.mapped_bytes);
        same_answers(&heap, &mapped, mid, end);

        // Appends go on into new files.
        ingest(&mut [&mut heap, &mut mapped], n, rounds..rounds + 500, t0);
        let end = t_of(t0, rounds + 500);
        same_answers(&heap, &mapped, mid, end);
        assert!(file_count(&dir) > files_mid);

        // A cut past every sample removes every series and every file.
        heap.truncate_before(end + 1);
        mapped.truncate_before(end + 1);
        assert_eq!(file_count(&dir), 0);
        let st = mapped.stats();
        assert_eq!((st.series, st.chunks, st.mapped_bytes), (0, 0, 0));
    }

    #[test]
    fn chunk_files_lost_mid_ingest_keep_every_sample() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("head_chunks");
        let mut heap = Head::default();
        let mut mapped = Head::default();
        mapped.enable_chunk_files_sized(&dir, 8 << 10).unwrap();
        let t0 = 1_000_000;
        ingest(&mut [&mut heap, &mut mapped], 12, 0..1000, t0);
        // As a full disk: no new file can be made from here on.
        std::fs::remove_dir_all(&dir).unwrap();
        ingest(&mut [&mut heap, &mut mapped], 12, 1000..2000, t0);
        let cf = mapped.chunk_files.as_ref().unwrap();
        assert!(cf.heap_fallbacks() > 0);
        let st = mapped.stats();
        assert!(st.mapped_bytes > 0 && st.heap_bytes < heap.stats().heap_bytes);
        same_answers(&heap, &mapped, t0, t_of(t0, 2000));
        let t = t_of(t0, 1500);
        assert_eq!(heap.truncate_before(t), mapped.truncate_before(t));
        same_answers(&heap, &mapped, t, t_of(t0, 2000));
        assert_eq!(mapped.chunk_files.as_ref().unwrap().file_count(), 0);
    }

    #[test]
    fn enabling_twice_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut h = Head::default();
        h.enable_chunk_files(&tmp.path().join("a")).unwrap();
        assert!(h.enable_chunk_files(&tmp.path().join("b")).is_err());
        assert!(!tmp.path().join("b").exists());
    }

    fn status_kib(field: &str) -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// 2 h of 15 s scrapes of 100k dcgm-exporter shaped series (5000 GPUs x
    /// 20 metrics) into one head, then heap (`HeadStats`) and process RSS
    /// per series. Run each variant in its own process:
    ///
    /// ```sh
    /// cargo test --release -p tessera-tsdb --lib -- --ignored --exact --nocapture \
    ///     head::tests::measure_memory_per_series_with_chunk_files
    /// cargo test --release -p tessera-tsdb --lib -- --ignored --exact --nocapture \
    ///     head::tests::measure_memory_per_series_on_heap
    /// ```
    fn measure(with_files: bool) {
        const SERIES: usize = 100_000;
        const ROUNDS: i64 = 480;
        const METRICS: [&str; 20] = [
            "DCGM_FI_DEV_GPU_UTIL",
            "DCGM_FI_DEV_MEM_COPY_UTIL",
            "DCGM_FI_DEV_GPU_TEMP",
            "DCGM_FI_DEV_MEMORY_TEMP",
            "DCGM_FI_DEV_POWER_USAGE",
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
            "DCGM_FI_DEV_SM_CLOCK",
            "DCGM_FI_DEV_MEM_CLOCK",
            "DCGM_FI_DEV_FB_FREE",
            "DCGM_FI_DEV_FB_USED",
            "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
            "DCGM_FI_DEV_XID_ERRORS",
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
            "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
            "DCGM_FI_PROF_DRAM_ACTIVE",
            "DCGM_FI_PROF_PCIE_TX_BYTES",
            "DCGM_FI_PROF_PCIE_RX_BYTES",
            "DCGM_FI_PROF_NVLINK_TX_BYTES",
            "DCGM_FI_PROF_NVLINK_RX_BYTES",
            "DCGM_FI_DEV_SM_OCCUPANCY",
        ];
        let tmp = tempfile::tempdir().unwrap();
        let rss0 = status_kib("VmRSS");
        let mut h = Head::default();
        if with_files {
            h.enable_chunk_files(&tmp.path().join("head_chunks"))
                .unwrap();
        }
        // 625 nodes of 8 GPUs.
        let gpus = SERIES / METRICS.len();
        let mut ids = Vec::with_capacity(SERIES);
        for g in 0..gpus {
            let node = g / 8;
            let uuid = format!(
                "GPU-{:08x}-5d2c-4e2a-9f3b-{g:012x}",
                g.wrapping_mul(2_654_435_761) % (1 << 32)
            );
            let instance = format!("10.0.{}.{}:9400", node / 256, node % 256);
            for (m, name) in METRICS.iter().enumerate() {
                let l = Labels::from_pairs([
                    ("__name__", *name),
                    ("Hostname", &*format!("gpu-node-{node:04}")),
                    ("UUID", &*uuid),
                    ("device", &*format!("nvidia{}", g % 8)),
                    ("gpu", &*(g % 8).to_string()),
                    ("instance", &*instance),
                    ("job", "dcgm-exporter"),
                    ("modelName", "NVIDIA H100 80GB HBM3"),
                ]);
                let (id, _) = h.get_or_create(&l, l.stable_hash());
                ids.push((id, m));
            }
        }
        // Only used in rejection messages, and nothing is rejected.
        let any = Labels::from_pairs([("__name__", "x")]);
        let (mut st, mut acc) = (AppendStats::default(), Vec::new());
        let mut counters = vec![0f64; SERIES];
        let t0 = 1_700_000_000_000i64;
        for r in 0..ROUNDS {
            let t = t0 + r * 15_000 + (r * 7919) % 40;
            for (k, &(id, m)) in ids.iter().enumerate() {
                let x = (k as i64 * 31 + r * 17) % 1000;
                let v = match m {
                    0 | 1 => (x % 101) as f64,
                    12..=14 | 19 => (x % 101) as f64 / 100.0,
                    2 | 3 => 30.0 + (x % 40) as f64,
                    4 => (300_000 + x * 137 % 100_000) as f64 / 1000.0,
                    6 | 7 => 1410.0 + (x % 3) as f64 * 15.0,
                    8 | 9 => 81_000.0 - (x * 37) as f64,
                    10 | 11 => 0.0,
                    _ => {
                        counters[k] += (x * 1234) as f64;
                        counters[k]
                    }
                };
                acc.clear();
                h.append_samples(id, &any, &[Sample::new(t, v)], &mut st, &mut acc);
            }
        }
        assert_eq!(st.rejected(), 0);
        drop((acc, counters, ids));
        let s = h.stats();
        let rss = status_kib("VmRSS");
        let (anon, file) = (status_kib("RssAnon"), status_kib("RssFile"));
        let per = |b: u64| b as f64 / SERIES as f64;
        println!(
            "chunk files: {with_files}; {} series, {} chunks ({} files)",
            s.series,
            s.chunks,
            h.chunk_files.as_ref().map_or(0, ChunkFiles::file_count)
        );
        println!(
            "HeadStats per series: heap {:.0} B, mapped {:.0} B",
            per(s.heap_bytes),
            per(s.mapped_bytes)
        );
        let sum = |f: &dyn Fn(&MemSeries) -> usize| h.series.iter().map(f).sum::<usize>() as u64;
        let index = h.symbols.heap_bytes() + h.postings.heap_bytes() + h.by_hash.capacity() * 16;
        println!(
            "heap per series: series struct {} B, labels {:.0} B, open chunk {:.0} B, \
             sealed refs {:.0} B, sealed on heap {:.0} B, symbols+postings+hash {:.0} B",
            std::mem::size_of::<MemSeries>(),
            per(sum(&|m| m.labels.len() * 8)),
            per(sum(&|m| m.open.heap_bytes())),
            per(sum(&|m| {
                m.sealed.capacity() * std::mem::size_of::<chunk_files::HeadChunk>()
            })),
            per(sum(&|m| m.sealed.iter().map(|c| c.heap_bytes()).sum())),
            per(index as u64),
        );
        println!(
            "process RSS growth per series: {:.0} B (VmRSS {rss0} KiB -> {rss} KiB; \
             RssAnon {anon} KiB, RssFile {file} KiB)",
            per(rss.saturating_sub(rss0) * 1024),
        );
        // Reading everything, series by series, touches every mapped page.
        let (mut n, mut buf) = (0, Vec::new());
        for s in &h.series {
            buf.clear();
            s.samples_in(h.chunk_files.as_ref(), i64::MIN, i64::MAX, &mut buf);
            n += buf.len();
        }
        println!(
            "after reading all {n} samples: VmRSS {} KiB (RssAnon {} KiB, RssFile {} KiB)",
            status_kib("VmRSS"),
            status_kib("RssAnon"),
            status_kib("RssFile")
        );
    }

    #[test]
    #[ignore = "measurement: 100k series x 480 samples, run in release"]
    fn measure_memory_per_series_with_chunk_files() {
        measure(true);
    }

    #[test]
    #[ignore = "measurement: 100k series x 480 samples, run in release"]
    fn measure_memory_per_series_on_heap() {
        measure(false);
    }
}
