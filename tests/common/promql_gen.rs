//! A seeded, grammar-driven generator of random PromQL queries for the
//! differential fuzzer (`tests/promql_fuzz.rs`), and the shrinking of a
//! query that answers differently to a minimal one that still does.
//!
//! Queries are trees of [`Node`]s, each typed (instant vector, range
//! vector, scalar, string) so that every generated query type-checks;
//! shrinking replaces a node by one of its descendants of the same type.
//! The generator covers the operators, functions, modifiers and
//! aggregations that both Tessera and Prometheus 2.42 know (not 3.x-only
//! ones such as `limitk` or `info`, nor 2.42's `holt_winters`), over the
//! metrics of [`dataset`].
//!
//! Only the fuzzer includes it (by `#[path]`), so the other test binaries
//! do not compile it.
#![allow(dead_code)] // each test binary uses a different subset

/// SplitMix64: tiny, and stable forever, so a seed printed by a failing
/// run reproduces the same queries on any toolchain (`rand`'s `StdRng`
/// does not promise its stream across versions).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub(crate) fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What a node evaluates to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Vector,
    Range,
    Scalar,
    Str,
}

/// A query fragment: literal text and typed children, in order.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub ty: Ty,
    pub parts: Vec<Part>,
}

#[derive(Clone, Debug)]
pub(crate) enum Part {
    Text(String),
    Child(Node),
}

impl Node {
    fn leaf(ty: Ty, text: impl Into<String>) -> Node {
        Node {
            ty,
            parts: vec![Part::Text(text.into())],
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => s.push_str(t),
                Part::Child(c) => s.push_str(&c.render()),
            }
        }
        s
    }

    fn children(&self) -> impl Iterator<Item = &Node> {
        self.parts.iter().filter_map(|p| match p {
            Part::Child(c) => Some(c),
            Part::Text(_) => None,
        })
    }

    /// Every node of the tree, depth first, root included.
    fn all(&self) -> Vec<&Node> {
        let mut out = vec![self];
        for c in self.children() {
            out.extend(c.all());
        }
        out
    }

    /// The tree with the `n`-th node (depth first) replaced by `with`.
    fn replaced(&self, n: usize, with: &Node) -> Node {
        fn go(node: &Node, counter: &mut usize, n: usize, with: &Node) -> Node {
            if *counter == n {
                *counter += 1 + node.all().len() - 1;
                return with.clone();
            }
            *counter += 1;
            let parts = node
                .parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => Part::Text(t.clone()),
                    Part::Child(c) => Part::Child(go(c, counter, n, with)),
                })
                .collect();
            Node { ty: node.ty, parts }
        }
        go(self, &mut 0, n, with)
    }

    /// Smaller trees of the same type: a node replaced by one of its own
    /// descendants of its type.
    pub(crate) fn shrink_candidates(&self) -> Vec<Node> {
        let nodes = self.all();
        let mut out = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            for d in node.all().into_iter().skip(1) {
                if d.ty == node.ty {
                    out.push(self.replaced(i, d));
                }
            }
        }
        out.sort_by_key(|n| n.render().len());
        out
    }
}

fn t(s: impl Into<String>) -> Part {
    Part::Text(s.into())
}

fn c(n: Node) -> Part {
    Part::Child(n)
}

/// One metric of the data set and its label names besides `instance`.
pub(crate) struct Metric {
    pub name: &'static str,
    pub labels: &'static [(&'static str, &'static [&'static str])],
}

pub(crate) const INSTANCES: &[&str] = &["a:9100", "b:9100", "c:9100"];

/// The metrics the generator selects from; `dataset` gives them samples.
pub(crate) const METRICS: &[Metric] = &[
    Metric {
        name: "demo_cpu_usage_seconds_total",
        labels: &[("mode", &["idle", "user", "system"])],
    },
    Metric {
        name: "demo_memory_usage_bytes",
        labels: &[("type", &["buffers", "cached", "free", "used"])],
    },
    Metric {
        name: "demo_api_request_duration_seconds_bucket",
        labels: &[
            ("path", &["/api/foo", "/api/bar"]),
            ("le", &["0.05", "0.1", "0.25", "1", "+Inf"]),
        ],
    },
    Metric {
        name: "demo_api_request_duration_seconds_count",
        labels: &[("path", &["/api/foo", "/api/bar"])],
    },
    Metric {
        name: "demo_num_cpus",
        labels: &[],
    },
    Metric {
        name: "demo_intermittent_metric",
        labels: &[],
    },
    Metric {
        name: "demo_float",
        labels: &[("kind", &["tiny", "huge", "frac"])],
    },
];

/// Labels a grouping or matching clause may name.
const GROUP_LABELS: &[&str] = &["instance", "mode", "type", "path", "le", "kind", "job"];

/// Samples every `STEP_MS`, offset so that no range or lookback boundary
/// of the queries (whole seconds from eval times ending in .123 s) ever
/// falls on a sample: Prometheus 2.42 closes ranges at their start and
/// Prometheus 3 (and Tessera) opens them, which would differ by design.
pub(crate) const STEP_MS: i64 = 15_000;
pub(crate) const SAMPLE_OFFSET_MS: i64 = 3_700;
/// The first sample's time (ms), in the past so nothing is "in the future".
pub(crate) const START_MS: i64 = 1_700_000_000_000;
/// How long the data lasts.
pub(crate) const SPAN_MS: i64 = 60 * 60_000;

/// One series: labels (`__name__` first, the rest sorted) and `(ms, value)`
/// samples.
pub(crate) type SeriesData = (Vec<(String, String)>, Vec<(i64, f64)>);

/// The data set both servers are loaded with: `(labels, samples)` per
/// series, labels sorted, `__name__` first. Deterministic.
pub(crate) fn dataset() -> Vec<SeriesData> {
    let mut rng = Rng::new(20);
    let mut out = Vec::new();
    for m in METRICS {
        // Every combination of the metric's label values, per instance.
        let mut combos: Vec<Vec<(&str, &str)>> = vec![vec![]];
        for (name, values) in m.labels {
            let mut next = Vec::new();
            for combo in &combos {
                for v in *values {
                    let mut c = combo.clone();
                    c.push((name, v));
                    next.push(c);
                }
            }
            combos = next;
        }
        for (ii, inst) in INSTANCES.iter().enumerate() {
            for combo in &combos {
                let mut labels = vec![
                    ("__name__".to_string(), m.name.to_string()),
                    ("instance".to_string(), inst.to_string()),
                    ("job".to_string(), "demo".to_string()),
                ];
                labels.extend(combo.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                labels[1..].sort();
                let samples = series_samples(m.name, ii, combo, &mut rng);
                out.push((labels, samples));
            }
        }
    }
    out
}

fn series_samples(
    name: &str,
    inst: usize,
    combo: &[(&str, &str)],
    rng: &mut Rng,
) -> Vec<(i64, f64)> {
    let n = SPAN_MS / STEP_MS;
    let mut out = Vec::new();
    let mut counter = (rng.below(1000) as f64) * 0.25;
    let le_rank = combo.iter().find(|(k, _)| *k == "le").map(|(_, v)| {
        ["0.05", "0.1", "0.25", "1", "+Inf"]
            .iter()
            .position(|x| x == v)
            .unwrap_or(0)
    });
    for i in 0..n {
        let ts = START_MS + SAMPLE_OFFSET_MS + i * STEP_MS;
        let v = match name {
            "demo_cpu_usage_seconds_total" => {
                // A counter with fractional increments and one reset.
                if i == n / 2 && inst == 1 {
                    counter = 0.0;
                }
                counter += rng.unit() * 3.0 + 0.1;
                counter
            }
            "demo_memory_usage_bytes" => {
                // Gauges with many exact ties across series.
                (rng.below(4) as f64) * 1024.0 * 1024.0
            }
            "demo_api_request_duration_seconds_bucket" => {
                // Cumulative buckets: the same base counter scaled by le.
                let base = (i as f64) * (3.0 + inst as f64);
                (base * (1 + le_rank.unwrap_or(0)) as f64).floor()
            }
            "demo_api_request_duration_seconds_count" => (i as f64) * (15.0 + inst as f64),
            "demo_num_cpus" => [4.0, 8.0, 4.0][inst],
            "demo_intermittent_metric" => {
                // Present for ten minutes, absent for ten.
                if (i / 40) % 2 == 1 {
                    continue;
                }
                (i % 7) as f64 + 0.5
            }
            _ => match combo.first().map(|(_, v)| *v) {
                Some("tiny") => rng.unit() * 1e-7,
                Some("huge") => rng.unit() * 1e22,
                _ => (rng.below(1 << 20) as f64) / 8.0 + 1e14 * inst as f64,
            },
        };
        out.push((ts, v));
    }
    out
}

/// Query generation with a depth bound.
pub(crate) struct Gen<'a> {
    pub rng: &'a mut Rng,
    pub max_depth: usize,
}

const RANGE_FUNCS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "changes",
    "resets",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "present_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "absent_over_time",
];

const MATH_FUNCS: &[&str] = &[
    "abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn", "deg", "rad", "sin",
    "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh",
];

const AGGRS: &[&str] = &[
    "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar",
];

const ARITH: &[&str] = &["+", "-", "*", "/", "%", "^", "atan2"];
const CMP: &[&str] = &["==", "!=", ">", "<", ">=", "<="];
const SETOPS: &[&str] = &["and", "or", "unless"];

impl Gen<'_> {
    pub(crate) fn query(&mut self) -> Node {
        self.vector(0)
    }

    fn duration(&mut self) -> &'static str {
        const DURATIONS: &[&str] = &["30s", "1m", "2m", "5m", "10m"];
        DURATIONS[self.rng.below(DURATIONS.len())]
    }

    fn selector(&mut self) -> Node {
        let m = self.rng.pick(METRICS);
        let mut s = m.name.to_string();
        let mut matchers = Vec::new();
        if self.rng.chance(0.3) {
            let inst = self.rng.pick(INSTANCES);
            let op = self.rng.pick(&["=", "!="]);
            matchers.push(format!("instance{op}\"{inst}\""));
        }
        if let Some((name, values)) = m.labels.first()
            && self.rng.chance(0.3)
        {
            let v = self.rng.pick(values);
            let op = self.rng.pick(&["=", "!=", "=~", "!~"]);
            let v = if op.contains('~') {
                format!("{}|x", regex_escape(v))
            } else {
                v.to_string()
            };
            matchers.push(format!("{name}{op}\"{v}\""));
        }
        if !matchers.is_empty() {
            s.push('{');
            s.push_str(&matchers.join(","));
            s.push('}');
        }
        Node::leaf(Ty::Vector, s)
    }

    /// `offset` and `@` for a selector or subquery (whole seconds, so
    /// boundaries stay off the samples).
    fn modifiers(&mut self) -> String {
        let mut s = String::new();
        if self.rng.chance(0.15) {
            s.push_str(&format!(
                " offset {}",
                self.rng.pick(&["1m", "5m", "-2m", "90s"])
            ));
        }
        if self.rng.chance(0.08) {
            let at = (START_MS + SPAN_MS / 2) / 1000 + self.rng.below(600) as i64;
            s.push_str(&format!(" @ {at}"));
        }
        s
    }

    fn range(&mut self, depth: usize) -> Node {
        if depth + 1 < self.max_depth && self.rng.chance(0.15) {
            let inner = self.vector(depth + 1);
            let step = self.rng.pick(&["", "1m", "30s", "2m"]);
            let range = self.rng.pick(&["5m", "10m"]);
            let m = self.modifiers();
            return Node {
                ty: Ty::Range,
                parts: vec![c(inner), t(format!("[{range}:{step}]{m}"))],
            };
        }
        let sel = self.selector();
        let d = self.duration();
        let m = self.modifiers();
        Node {
            ty: Ty::Range,
            parts: vec![c(sel), t(format!("[{d}]{m}"))],
        }
    }

    fn scalar(&mut self, depth: usize) -> Node {
        match self
            .rng
            .below(if depth + 1 < self.max_depth { 5 } else { 3 })
        {
            0 | 1 => {
                let v = self
                    .rng
                    .pick(&["0", "1", "2", "0.5", "3", "-1", "100", "1e3", "0.3"]);
                Node::leaf(Ty::Scalar, *v)
            }
            2 => Node::leaf(Ty::Scalar, "time()"),
            3 => {
                let v = self.vector(depth + 1);
                Node {
                    ty: Ty::Scalar,
                    parts: vec![t("scalar("), c(v), t(")")],
                }
            }
            _ => {
                let a = self.scalar(depth + 1);
                let b = self.scalar(depth + 1);
                let op = self.rng.pick(&["+", "-", "*", "/"]);
                Node {
                    ty: Ty::Scalar,
                    parts: vec![t("("), c(a), t(format!(" {op} ")), c(b), t(")")],
                }
            }
        }
    }

    fn grouping(&mut self) -> String {
        if self.rng.chance(0.4) {
            return String::new();
        }
        let kw = if self.rng.chance(0.7) {
            "by"
        } else {
            "without"
        };
        let n = 1 + self.rng.below(2);
        let mut names: Vec<&str> = (0..n).map(|_| *self.rng.pick(GROUP_LABELS)).collect();
        names.dedup();
        format!(" {kw} ({})", names.join(", "))
    }

    fn vector(&mut self, depth: usize) -> Node {
        if depth >= self.max_depth {
            return self.selector_with_modifiers();
        }
        let d = depth + 1;
        match self.rng.below(14) {
            0 | 1 => self.selector_with_modifiers(),
            2 | 3 => {
                let f = self.rng.pick(RANGE_FUNCS);
                let r = self.range(d);
                Node {
                    ty: Ty::Vector,
                    parts: vec![t(format!("{f}(")), c(r), t(")")],
                }
            }
            4 => {
                // Range functions with a scalar parameter.
                let r = self.range(d);
                if self.rng.chance(0.5) {
                    let q = self.rng.pick(&["0", "0.5", "0.9", "1"]);
                    Node {
                        ty: Ty::Vector,
                        parts: vec![t(format!("quantile_over_time({q}, ")), c(r), t(")")],
                    }
                } else {
                    let s = self.rng.pick(&["60", "600", "-300"]);
                    Node {
                        ty: Ty::Vector,
                        parts: vec![t("predict_linear("), c(r), t(format!(", {s})"))],
                    }
                }
            }
            5 => {
                let f = self.rng.pick(MATH_FUNCS);
                let v = self.vector(d);
                Node {
                    ty: Ty::Vector,
                    parts: vec![t(format!("{f}(")), c(v), t(")")],
                }
            }
            6 => {
                let v = self.vector(d);
                let (f, args) = match self.rng.below(6) {
                    0 => ("clamp_max", ", 0".to_string()),
                    1 => ("clamp_min", ", 1".to_string()),
                    2 => ("clamp", ", -1, 1e6".to_string()),
                    3 => ("round", ", 0.5".to_string()),
                    4 => ("timestamp", String::new()),
                    _ => ("round", String::new()),
                };
                Node {
                    ty: Ty::Vector,
                    parts: vec![t(format!("{f}(")), c(v), t(format!("{args})"))],
                }
            }
            7 | 8 => {
                let op = self.rng.pick(AGGRS);
                let g = self.grouping();
                let v = self.vector(d);
                Node {
                    ty: Ty::Vector,
                    parts: vec![t(format!("{op}{g} (")), c(v), t(")")],
                }
            }
            9 => {
                let v = self.vector(d);
                let g = self.grouping();
                match self.rng.below(4) {
                    0 | 1 => {
                        let op = self.rng.pick(&["topk", "bottomk"]);
                        let k = self.rng.pick(&["1", "2", "3"]);
                        Node {
                            ty: Ty::Vector,
                            parts: vec![t(format!("{op}{g} ({k}, ")), c(v), t(")")],
                        }
                    }
                    2 => {
                        let q = self.rng.pick(&["0.1", "0.5", "0.99"]);
                        Node {
                            ty: Ty::Vector,
                            parts: vec![t(format!("quantile{g} ({q}, ")), c(v), t(")")],
                        }
                    }
                    _ => Node {
                        ty: Ty::Vector,
                        parts: vec![t(format!("count_values{g} (\"value\", ")), c(v), t(")")],
                    },
                }
            }
            10 | 11 => self.binary(d),
            12 => {
                let v = self.vector(d);
                match self.rng.below(3) {
                    0 => Node {
                        ty: Ty::Vector,
                        parts: vec![t("-"), c(v)],
                    },
                    1 => Node {
                        ty: Ty::Vector,
                        parts: vec![
                            t("label_replace("),
                            c(v),
                            t(", \"dst\", \"x$1\", \"instance\", \"(.*):.*\")"),
                        ],
                    },
                    _ => Node {
                        ty: Ty::Vector,
                        parts: vec![
                            t("label_join("),
                            c(v),
                            t(", \"dst\", \"-\", \"instance\", \"job\")"),
                        ],
                    },
                }
            }
            _ => {
                let q = self.rng.pick(&["0.5", "0.9", "0.99"]);
                let r = self.rng.pick(&["1m", "5m"]);
                let g = if self.rng.chance(0.5) {
                    "le"
                } else {
                    "le, path"
                };
                Node::leaf(
                    Ty::Vector,
                    format!(
                        "histogram_quantile({q}, sum by ({g}) (rate(demo_api_request_duration_seconds_bucket[{r}])))"
                    ),
                )
            }
        }
    }

    fn selector_with_modifiers(&mut self) -> Node {
        let mut s = self.selector();
        let m = self.modifiers();
        s.parts.push(t(m));
        s
    }

    fn binary(&mut self, d: usize) -> Node {
        let lhs = self.vector(d);
        match self.rng.below(5) {
            0 => {
                // vector op scalar (either side), comparisons with bool.
                let s = self.scalar(d);
                let (op, b) = self.op_with_bool();
                if self.rng.chance(0.5) {
                    Node {
                        ty: Ty::Vector,
                        parts: vec![t("("), c(lhs), t(format!(") {op}{b} ")), c(s)],
                    }
                } else {
                    Node {
                        ty: Ty::Vector,
                        parts: vec![c(s), t(format!(" {op}{b} (")), c(lhs), t(")")],
                    }
                }
            }
            1 => {
                let rhs = self.vector(d);
                let op = self.rng.pick(SETOPS);
                let m = self.matching(false);
                Node {
                    ty: Ty::Vector,
                    parts: vec![t("("), c(lhs), t(format!(") {op}{m} (")), c(rhs), t(")")],
                }
            }
            _ => {
                let rhs = self.vector(d);
                let (op, b) = self.op_with_bool();
                let m = self.matching(true);
                Node {
                    ty: Ty::Vector,
                    parts: vec![t("("), c(lhs), t(format!(") {op}{b}{m} (")), c(rhs), t(")")],
                }
            }
        }
    }

    fn op_with_bool(&mut self) -> (&'static str, &'static str) {
        if self.rng.chance(0.5) {
            (*self.rng.pick(ARITH), "")
        } else {
            let op = self.rng.pick(CMP);
            (op, if self.rng.chance(0.3) { " bool" } else { "" })
        }
    }

    /// ` on (..)`/` ignoring (..)`, and for arithmetic/comparisons maybe a
    /// `group_left`/`group_right` with extra labels.
    fn matching(&mut self, grouping_allowed: bool) -> String {
        if self.rng.chance(0.4) {
            return String::new();
        }
        let kw = if self.rng.chance(0.7) {
            "on"
        } else {
            "ignoring"
        };
        let l = self.rng.pick(GROUP_LABELS);
        let mut s = format!(" {kw} ({l})");
        if grouping_allowed && self.rng.chance(0.4) {
            let side = if self.rng.chance(0.5) {
                "group_left"
            } else {
                "group_right"
            };
            let extra = if self.rng.chance(0.5) {
                ""
            } else {
                *self.rng.pick(&["mode", "type", "kind"])
            };
            s.push_str(&format!(" {side} ({extra})"));
        }
        s
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        if "\\.+*?()|[]{}^$".contains(ch) {
            out.push_str("\\\\");
        }
        out.push(ch);
    }
    out
}
