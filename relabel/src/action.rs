//! Applying relabel rules to a label set, with Prometheus' semantics.
//!
//! Mirrors `relabel()` in Prometheus' `model/relabel/relabel.go` rule by
//! rule, including its `labels.Builder` details where they change results:
//!
//! - a label set to an empty value is removed (empty = absent);
//! - `labelmap`, `labeldrop`, `labelkeep` iterate over the labels as they
//!   were when the rule started, input labels first (sorted) and then the
//!   labels earlier rules set, in the order they were set. The order only
//!   matters when two labels map to the same name: the last one wins.
//! - `replace` skips the rule when the expanded `target_label` is not a
//!   valid label name, and removes the target when the expanded
//!   `replacement` is empty.
//!
//! After the last rule every label name is checked; a name `labelmap` made
//! invalid yields [`Outcome::Invalid`]. Labels starting with `__` (other
//! than `__name__`) are kept, as Prometheus' relabeling keeps them: dropping
//! `__tmp_*`/`__meta_*` labels is the caller's policy, not relabeling's.
//!
//! Hot path: per-rule capture buffers, the joined source values and the
//! expansion buffers live in a [`Scratch`] reused across calls, so a rule
//! that does not match allocates nothing.

use std::cell::RefCell;
use std::fmt::Write as _;

use regex::CaptureLocations;
use tessera_tsdb::labels::is_valid_label_name;
use tessera_tsdb::{Labels, LabelsError};

use crate::case::{push_lower, push_upper};
use crate::config::{Action, RelabelConfig, RelabelConfigs};
use crate::expand::expand;
use crate::hashmod::hashmod;

/// What relabeling decided for one label set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Keep the series with the relabeled labels.
    Keep,
    /// Rule `rule` (0-based) dropped the series (keep, drop, keepequal,
    /// dropequal). The labels are left as they were when it dropped.
    Drop { rule: usize },
    /// The relabeled labels are not a valid series: a label name is not
    /// `[a-zA-Z_][a-zA-Z0-9_]*` (e.g. `labelmap` produced an empty name).
    /// Prometheus rejects such a series; so should the caller.
    Invalid(LabelsError),
}

/// Reusable buffers for [`RelabelConfigs::apply_with`]. One per thread (or
/// per worker); it adapts itself to whichever rule list it is used with.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The rule list `locs` belongs to (0: none yet).
    owner: u64,
    /// One capture buffer per rule, sized for that rule's regex.
    locs: Vec<CaptureLocations>,
    bufs: Buffers,
}

#[derive(Debug, Default)]
struct Buffers {
    joined: String,
    target: String,
    value: String,
    /// Names set by rules during this call, in Prometheus' Builder `add`
    /// order (see the module doc).
    added: NameList,
    /// `labelmap`'s (name, value) pairs, collected before any is set.
    pending: PairList,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl RelabelConfigs {
    /// Applies every rule in order to `labels`, in place, using a
    /// thread-local [`Scratch`]. On [`Outcome::Drop`] the labels are left
    /// half-relabeled and should be discarded.
    pub fn apply(&self, labels: &mut Labels) -> Outcome {
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => self.apply_with(labels, &mut s),
            // Only reachable if apply is re-entered on this thread.
            Err(_) => self.apply_with(labels, &mut Scratch::default()),
        })
    }

    /// Like [`apply`](Self::apply) with caller-owned buffers.
    pub fn apply_with(&self, labels: &mut Labels, scratch: &mut Scratch) -> Outcome {
        if scratch.owner != self.id || scratch.locs.len() != self.rules.len() {
            scratch.locs = self
                .rules
                .iter()
                .map(|r| r.regex.capture_locations())
                .collect();
            scratch.owner = self.id;
        }
        let bufs = &mut scratch.bufs;
        bufs.added.clear();
        for (i, (rule, locs)) in self.rules.iter().zip(&mut scratch.locs).enumerate() {
            if !rule.apply(labels, locs, bufs) {
                return Outcome::Drop { rule: i };
            }
        }
        match labels.iter().find(|l| !is_valid_label_name(&l.name)) {
            Some(l) => Outcome::Invalid(LabelsError::InvalidName(l.name.clone())),
            None => Outcome::Keep,
        }
    }
}

impl RelabelConfig {
    /// Applies this one rule; false means drop the series.
    fn apply(&self, labels: &mut Labels, locs: &mut CaptureLocations, b: &mut Buffers) -> bool {
        if !matches!(
            self.action,
            Action::LabelMap | Action::LabelDrop | Action::LabelKeep
        ) {
            self.join_sources(labels, &mut b.joined);
        }
        let val = b.joined.as_str();
        match self.action {
            Action::Drop => return !self.regex.is_match(val),
            Action::Keep => return self.regex.is_match(val),
            Action::DropEqual => return labels.get(&self.target_label).unwrap_or("") != val,
            Action::KeepEqual => return labels.get(&self.target_label).unwrap_or("") == val,
            Action::Replace => self.replace(labels, locs, b),
            Action::Lowercase => {
                b.value.clear();
                push_lower(&mut b.value, val);
                set(labels, &mut b.added, &self.target_label, &b.value);
            }
            Action::Uppercase => {
                b.value.clear();
                push_upper(&mut b.value, val);
                set(labels, &mut b.added, &self.target_label, &b.value);
            }
            Action::HashMod => {
                b.value.clear();
                let shard = hashmod(val.as_bytes(), self.modulus);
                write!(b.value, "{shard}").expect("writing to a String cannot fail");
                set(labels, &mut b.added, &self.target_label, &b.value);
            }
            Action::LabelMap => self.label_map(labels, locs, b),
            Action::LabelDrop => {
                labels.retain(|l| !self.regex.is_match(&l.name));
                b.added.retain_present(labels);
            }
            Action::LabelKeep => {
                labels.retain(|l| self.regex.is_match(&l.name));
                b.added.retain_present(labels);
            }
        }
        true
    }

    /// The source label values joined with the separator; an absent label
    /// contributes an empty string, as in Prometheus.
    fn join_sources(&self, labels: &Labels, out: &mut String) {
        out.clear();
        for (i, name) in self.source_labels.iter().enumerate() {
            if i > 0 {
                out.push_str(&self.separator);
            }
            out.push_str(labels.get(name).unwrap_or(""));
        }
    }

    fn replace(&self, labels: &mut Labels, locs: &mut CaptureLocations, b: &mut Buffers) {
        let val = b.joined.as_str();
        // Prometheus' fast path: nothing to expand, so the regex only decides
        // whether to set; with the default regex and an empty value it does
        // not even run it.
        if !self.target_has_refs && !self.replacement_has_refs {
            if (val.is_empty() && self.regex_is_default) || self.regex.is_match(val) {
                set(labels, &mut b.added, &self.target_label, &self.replacement);
            }
            return;
        }
        if self.regex.captures_read(locs, val).is_none() {
            return;
        }
        let target = if self.target_has_refs {
            b.target.clear();
            expand(&mut b.target, &self.target_label, &self.regex, val, locs);
            if !is_valid_label_name(&b.target) {
                return;
            }
            b.target.as_str()
        } else {
            self.target_label.as_str()
        };
        b.value.clear();
        expand(&mut b.value, &self.replacement, &self.regex, val, locs);
        set(labels, &mut b.added, target, &b.value);
    }

    fn label_map(&self, labels: &mut Labels, locs: &mut CaptureLocations, b: &mut Buffers) {
        b.pending.clear();
        let mut visit = |name: &str, value: &str| {
            if self.regex.captures_read(locs, name).is_some() {
                let (t, v) = b.pending.push();
                expand(t, &self.replacement, &self.regex, name, locs);
                v.push_str(value);
            }
        };
        for l in labels.iter().filter(|l| !b.added.contains(&l.name)) {
            visit(&l.name, &l.value);
        }
        for name in b.added.iter() {
            if let Some(value) = labels.get(name) {
                visit(name, value);
            }
        }
        for (name, value) in b.pending.iter() {
            set(labels, &mut b.added, name, value);
        }
    }
}

/// Prometheus' `Builder.Set`: an empty value removes the label; either way
/// the name moves to the end of the "set by rules" order only if new there.
fn set(labels: &mut Labels, added: &mut NameList, name: &str, value: &str) {
    if value.is_empty() {
        labels.remove(name);
        added.remove(name);
        return;
    }
    // Labels::set allocates; skip it when the value is already there.
    if labels.get(name) != Some(value) {
        labels.set(name, value);
    }
    if !added.contains(name) {
        added.push(name);
    }
}

/// An ordered list of names whose `String`s are reused across calls.
#[derive(Debug, Default)]
struct NameList {
    names: Vec<String>,
    len: usize,
}

impl NameList {
    fn clear(&mut self) {
        self.len = 0;
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        self.names[..self.len].iter().map(String::as_str)
    }

    fn contains(&self, name: &str) -> bool {
        self.iter().any(|n| n == name)
    }

    fn push(&mut self, name: &str) {
        if self.len == self.names.len() {
            self.names.push(String::new());
        }
        let slot = &mut self.names[self.len];
        slot.clear();
        slot.push_str(name);
        self.len += 1;
    }

    fn remove(&mut self, name: &str) {
        let found = self.names[..self.len].iter().position(|n| n == name);
        if let Some(i) = found {
            // Keep the order of the rest; the removed String moves past the
            // end to be reused.
            self.names[i..self.len].rotate_left(1);
            self.len -= 1;
        }
    }

    fn retain_present(&mut self, labels: &Labels) {
        let mut i = 0;
        while i < self.len {
            if labels.get(&self.names[i]).is_some() {
                i += 1;
            } else {
                self.names[i..self.len].rotate_left(1);
                self.len -= 1;
            }
        }
    }
}

/// A list of (name, value) pairs whose `String`s are reused across calls.
#[derive(Debug, Default)]
struct PairList {
    pairs: Vec<(String, String)>,
    len: usize,
}

impl PairList {
    fn clear(&mut self) {
        self.len = 0;
    }

    /// A new empty pair at the end.
    fn push(&mut self) -> (&mut String, &mut String) {
        if self.len == self.pairs.len() {
            self.pairs.push(Default::default());
        }
        self.len += 1;
        let (n, v) = &mut self.pairs[self.len - 1];
        n.clear();
        v.clear();
        (n, v)
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs[..self.len]
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }
}
