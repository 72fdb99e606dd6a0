//! A deterministic generator of remote-write load shaped like a GPU fleet.
//!
//! A [`Fleet`] holds every series of `--nodes` GPU servers: dcgm-exporter's
//! per-GPU metrics ([`dcgm`]), node-exporter's host metrics and a few kubelet
//! classic histograms ([`node`]), and the five series Prometheus adds per
//! scrape target. Each [`Fleet::round`] advances every value by one scrape
//! interval (counters increase, gauges wander around a mean and often repeat,
//! histograms stay cumulative), replaces `--churn` percent of the series by
//! giving GPUs new pods, and emits remote-write 1.0 `WriteRequest` bodies of
//! at most `batch_samples` samples each.
//!
//! Everything random comes from one SplitMix64 stream seeded by `--seed` and
//! consumed in a fixed order, so two fleets with the same configuration emit
//! byte-identical requests (the `rand` crate's `StdRng` does not promise a
//! stable stream across versions, which would make figures incomparable).

pub mod dcgm;
pub mod node;
pub mod rw2;

use std::collections::HashMap;

use prost::encoding::{encode_varint, encoded_len_varint};

/// SplitMix64: tiny, fast, and its output is fixed forever for a seed.
/// The state is a `Cell` so a builder can draw a start value while it is
/// itself mutably borrowed (`b.add(.., b.rng.range(..))`).
#[derive(Debug, Clone)]
pub struct Rng(std::cell::Cell<u64>);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(std::cell::Cell::new(seed))
    }

    pub fn next_u64(&self) -> u64 {
        let s = self.0.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.0.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in [0, n).
    pub fn below(&self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Roughly normal (Irwin–Hall of 4 uniforms): cheap, bounded, good
    /// enough for gauge noise.
    pub fn normal(&self) -> f64 {
        (self.unit() + self.unit() + self.unit() + self.unit() - 2.0) * 1.732
    }
}

/// Index into [`Symbols`].
pub type Sym = u32;

/// Interned label names and values: a fleet repeats the same few thousand
/// strings millions of times, so series store pairs of `u32`.
#[derive(Debug, Default)]
pub struct Symbols {
    ids: HashMap<Box<str>, Sym>,
    strings: Vec<Box<str>>,
}

impl Symbols {
    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strings.len() as Sym;
        self.strings.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    pub fn get(&self, id: Sym) -> &str {
        &self.strings[id as usize]
    }
}

/// How a series' value evolves from one round to the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    /// Never changes (info metrics, sizes, limits).
    Constant,
    /// Increases by `rate` per second with ±20 % noise; `step` is the
    /// resolution the exporter reports (1 for integer counters, 0.01 for
    /// `USER_HZ` CPU seconds).
    Counter { rate: f64, step: f64 },
    /// Mean-reverting walk around `mean` with noise `sigma`, clamped to
    /// `[min, max]`, rounded to `step` (0 = full precision); with probability
    /// `hold` the previous value repeats, as when the exporter's collection
    /// interval is longer than the scrape interval.
    Gauge {
        mean: f64,
        sigma: f64,
        min: f64,
        max: f64,
        step: f64,
        hold: f64,
    },
    /// A cumulative bucket (or `_count` with `share` 1) of histogram `group`:
    /// grows by `share` × the observations drawn for the group this round.
    Bucket { group: u32, share: f64 },
    /// The `_sum` of histogram `group`: grows by observations × `mean`.
    HistSum { group: u32, mean: f64 },
}

/// One series: sorted label pairs, its model and current value.
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: Box<[(Sym, Sym)]>,
    pub node: u32,
    pub model: Model,
    pub value: f64,
}

/// A histogram family's per-round observation rate.
#[derive(Debug, Clone, Copy)]
pub struct HistGroup {
    pub obs_per_sec: f64,
}

/// Where a GPU's series sit in [`Fleet::series`] and which pod it runs.
#[derive(Debug, Clone)]
pub struct GpuSlot {
    pub node: u32,
    pub series: std::ops::Range<usize>,
    /// How many pods this GPU has had; `None` when it is idle (its series
    /// carry no pod labels and never churn).
    pub pod_generation: Option<u32>,
}

/// Shape of the simulated fleet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub nodes: usize,
    /// Index of the first node (host `gpu-node-{first_node + 1}`), so
    /// several harness processes can load one server with disjoint hosts.
    pub first_node: usize,
    pub gpus_per_node: usize,
    pub cpus_per_node: usize,
    /// Percent of all series replaced per round (by new pods on GPUs).
    pub churn_percent: f64,
    /// Attach `pod`/`namespace`/`container` to allocated GPUs (the Helm
    /// chart's default); churn needs it.
    pub pods: bool,
    pub seed: u64,
    pub counters: dcgm::CounterSet,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            nodes: 1,
            first_node: 0,
            gpus_per_node: 8,
            cpus_per_node: 128,
            churn_percent: 0.0,
            pods: true,
            seed: 1,
            counters: dcgm::CounterSet::builtin(),
        }
    }
}

/// Label-set builder for one node's series; keeps label order canonical.
pub struct Builder<'a> {
    pub syms: &'a mut Symbols,
    pub rng: &'a Rng,
    pub out: &'a mut Vec<Series>,
    pub groups: &'a mut Vec<HistGroup>,
    pub node: u32,
    /// Labels every series of the current target carries (job, instance…).
    pub target: Vec<(Sym, Sym)>,
}

impl Builder<'_> {
    /// Switches to another scrape target of the same node.
    pub fn target(&mut self, labels: &[(&str, &str)]) {
        self.target = labels
            .iter()
            .map(|(n, v)| (self.syms.intern(n), self.syms.intern(v)))
            .collect();
    }

    /// Adds one series with the target's labels plus `extra`; the initial
    /// value is `start`.
    pub fn add(&mut self, name: &str, extra: &[(&str, &str)], model: Model, start: f64) {
        let mut labels = Vec::with_capacity(self.target.len() + extra.len() + 1);
        labels.push((self.syms.intern("__name__"), self.syms.intern(name)));
        labels.extend_from_slice(&self.target);
        // An empty value means "no such label" in Prometheus: the scrape
        // drops it, so it never reaches remote write.
        for (n, v) in extra.iter().filter(|(_, v)| !v.is_empty()) {
            labels.push((self.syms.intern(n), self.syms.intern(v)));
        }
        let syms = &*self.syms;
        // Remote write requires labels sorted by name (byte order).
        labels.sort_by(|a, b| syms.get(a.0).cmp(syms.get(b.0)));
        self.out.push(Series {
            labels: labels.into_boxed_slice(),
            node: self.node,
            model,
            value: start,
        });
    }

    /// Adds a classic histogram: one `_bucket` per bound plus `+Inf`,
    /// `_sum` and `_count`. `shares` are the cumulative fractions of
    /// observations at or below each bound.
    pub fn histogram(
        &mut self,
        name: &str,
        extra: &[(&str, &str)],
        bounds: &[f64],
        obs_per_sec: f64,
        mean: f64,
    ) {
        let group = self.groups.len() as u32;
        self.groups.push(HistGroup { obs_per_sec });
        let base = self.rng.range(100.0, 10_000.0).round();
        let bucket = format!("{name}_bucket");
        let les = bounds
            .iter()
            .map(|&b| (format_le(b), 1.0 - (-b / mean).exp()))
            .chain([("+Inf".to_owned(), 1.0)]);
        for (le, share) in les {
            // Exponential latency distribution: P(x <= b) = 1 - e^(-b/mean).
            let mut with_le: Vec<(&str, &str)> = extra.to_vec();
            with_le.push(("le", &le));
            self.add(
                &bucket,
                &with_le,
                Model::Bucket { group, share },
                (base * share).round(),
            );
        }
        self.add(
            &format!("{name}_sum"),
            extra,
            Model::HistSum { group, mean },
            base * mean,
        );
        self.add(
            &format!("{name}_count"),
            extra,
            Model::Bucket { group, share: 1.0 },
            base,
        );
    }
}

/// Formats a bucket bound as Prometheus' client libraries do (`0.005`, `1`,
/// `2.5`).
pub fn format_le(b: f64) -> String {
    format!("{b}")
}

/// All series of the simulated fleet and their evolving values.
pub struct Fleet {
    pub config: FleetConfig,
    pub syms: Symbols,
    pub series: Vec<Series>,
    pub gpus: Vec<GpuSlot>,
    groups: Vec<HistGroup>,
    group_obs: Vec<f64>,
    rng: Rng,
    /// Per-node scrape offset within the interval, in ms: targets are not
    /// scraped in lockstep.
    node_offset_ms: Vec<i64>,
    churn_carry: f64,
    /// Distinct series emitted so far (initial set plus churned-in ones).
    pub series_created: u64,
    pod_sym: Sym,
    next_pod: u64,
}

/// One remote-write request body (uncompressed protobuf) and its size.
#[derive(Debug, Clone)]
pub struct Batch {
    pub proto: Vec<u8>,
    pub samples: usize,
    /// Which sender carries it: a series always lands in the same shard, and
    /// each shard sends in order, so a series' samples arrive in time order
    /// (Prometheus' remote-write queue shards by series for the same reason).
    pub shard: usize,
}

impl Fleet {
    pub fn new(config: FleetConfig) -> Self {
        let rng = Rng::new(config.seed);
        let mut syms = Symbols::default();
        let mut series = Vec::new();
        let mut groups = Vec::new();
        let mut gpus = Vec::new();
        let mut node_offset_ms = Vec::with_capacity(config.nodes);
        for n in 0..config.nodes {
            node_offset_ms.push(rng.below(10_000) as i64);
            let host = host_name(config.first_node + n);
            let mut b = Builder {
                syms: &mut syms,
                rng: &rng,
                out: &mut series,
                groups: &mut groups,
                node: n as u32,
                target: Vec::new(),
            };
            dcgm::build_node(&mut b, &config, &host, &mut gpus);
            node::build_node(&mut b, &config, &host);
        }
        let series_created = series.len() as u64;
        let pod_sym = syms.intern("pod");
        let group_obs = vec![0.0; groups.len()];
        Fleet {
            config,
            syms,
            series,
            gpus,
            groups,
            group_obs,
            rng,
            node_offset_ms,
            churn_carry: 0.0,
            series_created,
            pod_sym,
            next_pod: 0,
        }
    }

    /// Active series per round (constant: churn replaces, never adds).
    pub fn active_series(&self) -> usize {
        self.series.len()
    }

    /// Advances every series by `interval_ms`, applies churn (except on the
    /// first round), and emits, per shard, batches of at most
    /// `batch_samples` samples stamped within the interval before
    /// `base_ts_ms` (each node has its own scrape offset).
    pub fn round(
        &mut self,
        round: u64,
        base_ts_ms: i64,
        interval_ms: i64,
        batch_samples: usize,
        emit: impl FnMut(Batch),
    ) {
        self.round_sharded(round, base_ts_ms, interval_ms, batch_samples, 1, emit);
    }

    /// [`Fleet::round`] with the series spread over `shards` senders
    /// (series `i` goes to shard `i % shards`).
    pub fn round_sharded(
        &mut self,
        round: u64,
        base_ts_ms: i64,
        interval_ms: i64,
        batch_samples: usize,
        shards: usize,
        mut emit: impl FnMut(Batch),
    ) {
        if round > 0 {
            self.advance_round(interval_ms);
        }
        let batch_samples = batch_samples.max(1);
        let shards = shards.max(1);
        let mut bufs: Vec<(Vec<u8>, usize)> = (0..shards)
            .map(|_| (Vec::with_capacity(batch_samples * 256), 0))
            .collect();
        for (i, s) in self.series.iter().enumerate() {
            let ts = self.sample_ts(s.node, base_ts_ms, interval_ms);
            let shard = i % shards;
            let (buf, n) = &mut bufs[shard];
            encode_series(buf, &self.syms, &s.labels, s.value, ts);
            *n += 1;
            if *n == batch_samples {
                let proto = std::mem::replace(buf, Vec::with_capacity(batch_samples * 256));
                emit(Batch {
                    proto,
                    samples: *n,
                    shard,
                });
                *n = 0;
            }
        }
        for (shard, (proto, samples)) in bufs.into_iter().enumerate() {
            if samples > 0 {
                emit(Batch {
                    proto,
                    samples,
                    shard,
                });
            }
        }
    }

    /// Moves every series one interval on (values, then churn) without
    /// encoding anything: what [`Fleet::round_sharded`] does before it emits,
    /// for modes that take the values in-process (`block-size`).
    pub fn advance_round(&mut self, interval_ms: i64) {
        self.advance(interval_ms as f64 / 1000.0);
        self.churn();
    }

    /// The timestamp node `node`'s samples carry in the round stamped
    /// `base_ts_ms`: the node's fixed scrape offset within the interval
    /// before it, as [`Fleet::round_sharded`] stamps them.
    pub fn sample_ts(&self, node: u32, base_ts_ms: i64, interval_ms: i64) -> i64 {
        base_ts_ms - interval_ms + self.node_offset_ms[node as usize] % interval_ms.max(1)
    }

    fn advance(&mut self, secs: f64) {
        for (i, g) in self.groups.iter().enumerate() {
            self.group_obs[i] = (g.obs_per_sec * secs * self.rng.range(0.5, 1.5)).round();
        }
        for s in &mut self.series {
            s.value = step(s.model, s.value, secs, &self.rng, &self.group_obs);
        }
    }

    /// Gives randomly chosen busy GPUs a new pod; each such GPU's series get
    /// a new label set (old ones go stale), as when a job restarts.
    fn churn(&mut self) {
        if self.config.churn_percent <= 0.0 || self.gpus.is_empty() {
            return;
        }
        let per_gpu = self.gpus[0].series.len().max(1) as f64;
        self.churn_carry += self.series.len() as f64 * self.config.churn_percent / 100.0 / per_gpu;
        let busy: Vec<usize> = (0..self.gpus.len())
            .filter(|&i| self.gpus[i].pod_generation.is_some())
            .collect();
        if busy.is_empty() {
            return;
        }
        // Distinct GPUs per round: a label set replaced twice before it is
        // sent would count as a series that never reached the server.
        let mut picked = vec![false; self.gpus.len()];
        let mut left = busy.len();
        while self.churn_carry >= 1.0 && left > 0 {
            self.churn_carry -= 1.0;
            let mut slot = busy[self.rng.below(busy.len() as u64) as usize];
            while picked[slot] {
                slot = busy[self.rng.below(busy.len() as u64) as usize];
            }
            picked[slot] = true;
            left -= 1;
            self.next_pod += 1;
            let pod = self
                .syms
                .intern(&pod_name(self.next_pod + 1_000_000, &self.rng));
            let gpu = &mut self.gpus[slot];
            gpu.pod_generation = gpu.pod_generation.map(|g| g + 1);
            for s in &mut self.series[gpu.series.clone()] {
                for l in s.labels.iter_mut() {
                    if l.0 == self.pod_sym {
                        l.1 = pod;
                    }
                }
            }
            self.series_created += gpu.series.len() as u64;
        }
        // More churn than busy GPUs is capped, not carried into later rounds.
        self.churn_carry = self.churn_carry.min(1.0);
    }
}

/// The next value of a series under `model`.
fn step(model: Model, v: f64, secs: f64, rng: &Rng, group_obs: &[f64]) -> f64 {
    match model {
        Model::Constant => v,
        Model::Counter { rate, step } => {
            if rate == 0.0 {
                return v;
            }
            let inc = rate * secs * rng.range(0.8, 1.2);
            round_to(v + inc, step)
        }
        Model::Gauge {
            mean,
            sigma,
            min,
            max,
            step,
            hold,
        } => {
            if hold > 0.0 && rng.unit() < hold {
                return v;
            }
            // Ornstein–Uhlenbeck-like: pull 20 % toward the mean plus noise.
            let next = v + 0.2 * (mean - v) + sigma * rng.normal();
            round_to(next.clamp(min, max), step)
        }
        Model::Bucket { group, share } => v + (group_obs[group as usize] * share).round(),
        Model::HistSum { group, mean } => {
            let n = group_obs[group as usize];
            v + n * mean * rng.range(0.9, 1.1)
        }
    }
}

fn round_to(v: f64, step: f64) -> f64 {
    if step > 0.0 {
        (v / step).round() * step
    } else {
        v
    }
}

/// `gpu-node-0001`: the host name of node `n` (0-based), as the fixture's.
pub fn host_name(n: usize) -> String {
    format!("gpu-node-{:04}", n + 1)
}

/// A Kubernetes-looking pod name (`train-7f9c4d8b6-x2k4q`).
pub fn pod_name(id: u64, rng: &Rng) -> String {
    const ALNUM: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut suffix = String::with_capacity(5);
    for _ in 0..5 {
        suffix.push(ALNUM[rng.below(ALNUM.len() as u64) as usize] as char);
    }
    format!("train-{id:x}-{suffix}")
}

// --- protobuf framing --------------------------------------------------
//
// `proto::WriteRequest` would need a `Vec<Label>` of owned byte vectors per
// series per round: about ten allocations per sample, which on a shared
// 2-core machine costs the server under test real CPU. So the generator
// frames the same wire format straight from interned strings into one
// reused buffer; `tests::hand_framing_decodes_as_proto_write_request`
// checks it against the prost types.

const LEN: u64 = 2; // wire type: length-delimited
const FIXED64: u64 = 1;
const VARINT: u64 = 0;

fn key(field: u64, wire: u64) -> u64 {
    (field << 3) | wire
}

fn label_len(n: &str, v: &str) -> usize {
    1 + encoded_len_varint(n.len() as u64)
        + n.len()
        + 1
        + encoded_len_varint(v.len() as u64)
        + v.len()
}

/// Appends one `WriteRequest.timeseries` entry with a single sample.
pub fn encode_series(
    buf: &mut Vec<u8>,
    syms: &Symbols,
    labels: &[(Sym, Sym)],
    value: f64,
    ts: i64,
) {
    let mut ts_len = 0;
    for &(n, v) in labels {
        let l = label_len(syms.get(n), syms.get(v));
        ts_len += 1 + encoded_len_varint(l as u64) + l;
    }
    // Like prost, omit fields equal to their default (0.0, 0) so the bytes
    // are canonical and identical to `WriteRequest::encode`.
    let has_value = value.to_bits() != 0;
    let sample_len = if has_value { 9 } else { 0 }
        + if ts != 0 {
            1 + encoded_len_varint(ts as u64)
        } else {
            0
        };
    ts_len += 1 + encoded_len_varint(sample_len as u64) + sample_len;

    encode_varint(key(1, LEN), buf);
    encode_varint(ts_len as u64, buf);
    for &(n, v) in labels {
        let (n, v) = (syms.get(n), syms.get(v));
        encode_varint(key(1, LEN), buf);
        encode_varint(label_len(n, v) as u64, buf);
        encode_varint(key(1, LEN), buf);
        encode_varint(n.len() as u64, buf);
        buf.extend_from_slice(n.as_bytes());
        encode_varint(key(2, LEN), buf);
        encode_varint(v.len() as u64, buf);
        buf.extend_from_slice(v.as_bytes());
    }
    encode_varint(key(2, LEN), buf);
    encode_varint(sample_len as u64, buf);
    if has_value {
        encode_varint(key(1, FIXED64), buf);
        buf.extend_from_slice(&value.to_le_bytes());
    }
    if ts != 0 {
        encode_varint(key(2, VARINT), buf);
        encode_varint(ts as u64, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use std::collections::HashSet;
    use tessera_ingest::proto::WriteRequest;

    fn fleet(nodes: usize, churn: f64, seed: u64) -> Fleet {
        Fleet::new(FleetConfig {
            nodes,
            churn_percent: churn,
            seed,
            ..FleetConfig::default()
        })
    }

    fn run(f: &mut Fleet, rounds: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for r in 0..rounds {
            f.round_sharded(
                r,
                1_700_000_000_000 + r as i64 * 15_000,
                15_000,
                1000,
                3,
                |b| out.push(b.proto),
            );
        }
        out
    }

    fn decode(bodies: &[Vec<u8>]) -> Vec<WriteRequest> {
        bodies
            .iter()
            .map(|b| WriteRequest::decode(b.as_slice()).expect("valid protobuf"))
            .collect()
    }

    type Key = Vec<(Vec<u8>, Vec<u8>)>;

    fn key_of(ts: &tessera_ingest::proto::TimeSeries) -> Key {
        ts.labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect()
    }

    #[test]
    fn same_seed_emits_identical_bytes_different_seed_differs() {
        let a = run(&mut fleet(2, 2.0, 7), 4);
        let b = run(&mut fleet(2, 2.0, 7), 4);
        let c = run(&mut fleet(2, 2.0, 8), 4);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn hand_framing_decodes_as_proto_write_request() {
        let mut f = fleet(1, 0.0, 1);
        let mut bodies = Vec::new();
        f.round(0, 1_700_000_000_000, 15_000, 10_000, |b| bodies.push(b));
        assert_eq!(bodies.len(), 1);
        let req = WriteRequest::decode(bodies[0].proto.as_slice()).expect("decodes");
        assert_eq!(req.timeseries.len(), f.active_series());
        assert_eq!(req.timeseries.len(), bodies[0].samples);
        // Re-encoding with prost gives the same bytes: the framing is exact.
        let canonical = req.encode_to_vec();
        assert!(
            canonical == bodies[0].proto,
            "framing differs from prost ({} vs {} bytes)",
            canonical.len(),
            bodies[0].proto.len()
        );
        for ts in &req.timeseries {
            assert_eq!(ts.samples.len(), 1);
            let names: Vec<&[u8]> = ts.labels.iter().map(|l| l.name.as_slice()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "labels must be sorted by name");
            assert!(names.contains(&b"__name__".as_slice()));
        }
    }

    #[test]
    fn series_per_node_matches_documented_shape_and_scales_linearly() {
        let one = fleet(1, 0.0, 1).active_series();
        assert_eq!(one, node::series_per_node(&FleetConfig::default()));
        assert!(
            (3_500..=4_500).contains(&one),
            "default node has {one} series"
        );
        assert_eq!(fleet(3, 0.0, 1).active_series(), 3 * one);
    }

    #[test]
    fn every_series_in_a_round_is_distinct() {
        let mut f = fleet(2, 0.0, 3);
        let reqs = decode(&run(&mut f, 1));
        let keys: HashSet<_> = reqs
            .iter()
            .flat_map(|r| &r.timeseries)
            .map(key_of)
            .collect();
        assert_eq!(keys.len(), f.active_series());
    }

    #[test]
    fn counters_never_decrease_and_gauges_change_across_rounds() {
        let mut f = fleet(1, 0.0, 5);
        let reqs = decode(&run(&mut f, 6));
        let mut by_series: HashMap<Key, Vec<(i64, f64)>> = HashMap::new();
        for ts in reqs.iter().flat_map(|r| &r.timeseries) {
            by_series
                .entry(key_of(ts))
                .or_default()
                .push((ts.samples[0].timestamp, ts.samples[0].value));
        }
        let name = |k: &Key| {
            String::from_utf8(
                k.iter()
                    .find(|(n, _)| n == b"__name__")
                    .expect("name")
                    .1
                    .clone(),
            )
            .expect("utf8")
        };
        let mut changed_gauges = 0;
        for (k, pts) in &by_series {
            assert_eq!(pts.len(), 6);
            assert!(
                pts.windows(2).all(|w| w[1].0 - w[0].0 == 15_000),
                "timestamps step by the interval"
            );
            let n = name(k);
            if n.ends_with("_total")
                || n.ends_with("_bucket")
                || n == "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
            {
                assert!(
                    pts.windows(2).all(|w| w[1].1 >= w[0].1),
                    "{n} decreased: {pts:?}"
                );
            }
            if n == "DCGM_FI_DEV_POWER_USAGE" && pts.windows(2).any(|w| w[1].1 != w[0].1) {
                changed_gauges += 1;
            }
        }
        assert_eq!(changed_gauges, 8, "every GPU's power draw wanders");
    }

    #[test]
    fn a_series_stays_in_its_shard_across_rounds() {
        let mut f = fleet(1, 0.0, 4);
        let mut shard_of: HashMap<Key, usize> = HashMap::new();
        for r in 0..3 {
            f.round_sharded(
                r,
                1_700_000_000_000 + r as i64 * 15_000,
                15_000,
                500,
                4,
                |b| {
                    assert!(b.samples <= 500);
                    for ts in WriteRequest::decode(b.proto.as_slice())
                        .expect("decodes")
                        .timeseries
                    {
                        let prev = shard_of.insert(key_of(&ts), b.shard);
                        assert!(
                            prev.is_none() || prev == Some(b.shard),
                            "series moved shards"
                        );
                    }
                },
            );
        }
        assert_eq!(shard_of.len(), f.active_series());
        assert_eq!(shard_of.values().collect::<HashSet<_>>().len(), 4);
    }

    #[test]
    fn churn_replaces_the_requested_share_of_series_per_round() {
        let mut f = fleet(10, 1.0, 9);
        let active = f.active_series() as u64;
        let reqs = decode(&run(&mut f, 5));
        let keys: HashSet<_> = reqs
            .iter()
            .flat_map(|r| &r.timeseries)
            .map(key_of)
            .collect();
        assert_eq!(keys.len() as u64, f.series_created);
        // 4 churn rounds × 1 % of the active series, in whole GPUs of 25.
        let churned = f.series_created - active;
        let expected = active * 4 / 100;
        assert!(
            churned.abs_diff(expected) <= 25,
            "churned {churned}, expected ≈{expected}"
        );
        assert!(churned > 0);
    }
}
