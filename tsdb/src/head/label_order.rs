//! Series ids in label order, made without holding the head's lock for long.
//!
//! A block stores its series in label order, so a cut sorts a shard's
//! series ids by their label sets. Sorted in one go under the shard's read
//! lock, that is O(n log n) string comparisons in one hold (100–200 ms at
//! 140k series a shard, seconds at a million), and every append to the
//! shard waits that long. Here the ids are sorted in runs of a few thousand,
//! each under its own short hold, and the runs are then merged a batch at a
//! time; the caller takes the lock for each step and appends go on between
//! steps.
//!
//! Between steps the head may gain series (new ids, not in the snapshot,
//! which is right: the range being cut is closed to appends) but must not
//! lose one or reuse its slot: the caller guarantees it (only a cut removes
//! series, and a cut holds the shard's maintenance lock throughout).

use std::cmp::Ordering;

use super::Head;

/// Ids sorted under one hold of the lock.
pub(crate) const RUN: usize = 8192;

/// A snapshot of series ids becoming a label-ordered sequence, step by step.
pub(crate) struct LabelOrder {
    /// Ids not yet sorted into a run.
    unsorted: Vec<u32>,
    run_len: usize,
    /// Sorted runs, each read from its cursor on.
    runs: Vec<Vec<u32>>,
    cursor: Vec<usize>,
    /// Runs with ids left, as a binary min-heap keyed by each run's next id
    /// (compared through the head); built once every run is sorted.
    heap: Vec<usize>,
    heap_built: bool,
}

impl LabelOrder {
    /// Starts ordering `ids` (distinct live series of the head), sorting
    /// `run_len` of them per [`LabelOrder::sort_run`].
    pub(crate) fn new(ids: Vec<u32>, run_len: usize) -> Self {
        LabelOrder {
            unsorted: ids,
            run_len: run_len.max(1),
            runs: Vec::new(),
            cursor: Vec::new(),
            heap: Vec::new(),
            heap_built: false,
        }
    }

    /// Sorts the next run. Returns whether ids are left to sort, so
    /// `while order.sort_run(&lock.read().head) {}` holds the lock a run
    /// at a time.
    pub(crate) fn sort_run(&mut self, head: &Head) -> bool {
        if self.unsorted.is_empty() {
            return false;
        }
        let from = self.unsorted.len().saturating_sub(self.run_len);
        let mut run = self.unsorted.split_off(from);
        run.sort_unstable_by(|&a, &b| head.cmp_series(a, b));
        self.runs.push(run);
        self.cursor.push(0);
        if self.unsorted.is_empty() {
            self.unsorted.shrink_to_fit();
        }
        !self.unsorted.is_empty()
    }

    /// Replaces `out` with the next (up to) `n` ids in label order; empty
    /// once all are out. Sorts whatever [`LabelOrder::sort_run`] left.
    pub(crate) fn next_batch(&mut self, head: &Head, n: usize, out: &mut Vec<u32>) {
        out.clear();
        while self.sort_run(head) {}
        if !self.heap_built {
            self.heap = (0..self.runs.len()).collect();
            for i in (0..self.heap.len() / 2).rev() {
                self.sift_down(head, i);
            }
            self.heap_built = true;
        }
        while out.len() < n {
            let Some(&r) = self.heap.first() else { break };
            out.push(self.runs[r][self.cursor[r]]);
            self.cursor[r] += 1;
            if self.cursor[r] == self.runs[r].len() {
                // The run is spent: free it and take it out of the heap.
                self.runs[r] = Vec::new();
                let last = self.heap.pop().expect("non-empty heap");
                if self.heap.is_empty() {
                    break;
                }
                self.heap[0] = last;
            }
            self.sift_down(head, 0);
        }
    }

    fn head_of(&self, r: usize) -> u32 {
        self.runs[r][self.cursor[r]]
    }

    fn less(&self, head: &Head, a: usize, b: usize) -> bool {
        head.cmp_series(self.head_of(a), self.head_of(b)) == Ordering::Less
    }

    fn sift_down(&mut self, head: &Head, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut min = i;
            if l < n && self.less(head, self.heap[l], self.heap[min]) {
                min = l;
            }
            if r < n && self.less(head, self.heap[r], self.heap[min]) {
                min = r;
            }
            if min == i {
                return;
            }
            self.heap.swap(i, min);
            i = min;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Labels;

    fn head_with(n: usize, seed: u64) -> Head {
        let mut h = Head::default();
        let mut x = seed;
        for i in 0..n {
            // SplitMix-ish: label values that collide often, so ties on a
            // prefix of the label set are common.
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (x ^ (x >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let mut pairs = vec![
                ("__name__".to_string(), format!("m{}", z % 7)),
                ("instance".to_string(), format!("n{}", (z >> 8) % 13)),
                ("i".to_string(), i.to_string()),
            ];
            if z.is_multiple_of(3) {
                pairs.push(("gpu".to_string(), format!("{}", (z >> 16) % 8)));
            }
            let ls = Labels::from_pairs(pairs);
            h.get_or_create(&ls, ls.stable_hash());
        }
        h
    }

    fn ordered(h: &Head, run: usize, batch: usize) -> Vec<u32> {
        let ids: Vec<u32> = h.postings.all().iter().collect();
        let mut order = LabelOrder::new(ids, run);
        while order.sort_run(h) {}
        let (mut all, mut out) = (Vec::new(), Vec::new());
        loop {
            order.next_batch(h, batch, &mut out);
            if out.is_empty() {
                return all;
            }
            all.extend_from_slice(&out);
        }
    }

    #[test]
    fn merged_runs_equal_one_sort_of_the_label_sets() {
        for (n, run, batch) in [
            (0, 4, 3),
            (1, 4, 3),
            (5, 1, 1),
            (1000, 7, 64),
            (1000, 1000, 5),
            (2500, 64, 1024),
        ] {
            let h = head_with(n, n as u64 + 3);
            let mut want: Vec<u32> = h.postings.all().iter().collect();
            want.sort_by_key(|&id| h.labels_of(id));
            assert_eq!(
                ordered(&h, run, batch),
                want,
                "n={n} run={run} batch={batch}"
            );
        }
    }

    #[test]
    fn series_added_between_steps_do_not_disturb_the_snapshot() {
        let mut h = head_with(300, 11);
        let ids: Vec<u32> = h.postings.all().iter().collect();
        let mut want = ids.clone();
        want.sort_by_key(|&id| h.labels_of(id));
        let mut order = LabelOrder::new(ids, 16);
        let (mut all, mut out) = (Vec::new(), Vec::new());
        let mut extra = 0;
        loop {
            // An append between two holds of the lock adds a series.
            extra += 1;
            let ls =
                Labels::from_pairs([("__name__", "late".to_string()), ("k", extra.to_string())]);
            h.get_or_create(&ls, ls.stable_hash());
            order.next_batch(&h, 10, &mut out);
            if out.is_empty() {
                break;
            }
            all.extend_from_slice(&out);
        }
        assert_eq!(all, want);
    }
}
