//! Resolving matchers to series ids through the block's label index and
//! postings, with the head's semantics (`head/postings.rs`): a matcher that
//! accepts "" also selects the series without the label.

use roaring::RoaringBitmap;

use super::BlockError;
use super::reader::Block;
use crate::matcher::{MatchOp, Matcher};

impl Block {
    /// Series ids matching all matchers (all series with none), ascending,
    /// i.e. in label order.
    pub fn postings(&self, matchers: &[Matcher]) -> Result<RoaringBitmap, BlockError> {
        crate::matcher::intersect_postings(matchers, || self.all_ids(), |m| self.postings_for(m))
    }

    pub(super) fn all_ids(&self) -> RoaringBitmap {
        let mut all = RoaringBitmap::new();
        all.insert_range(0..self.index.n_series);
        all
    }

    /// Series whose value for the matcher's label satisfies it; a series
    /// without the label has the empty value.
    fn postings_for(&self, m: &Matcher) -> Result<RoaringBitmap, BlockError> {
        let idx = &self.index;
        let entry = idx.find_name(&m.name)?;
        if m.matches_empty() {
            let mut out = self.all_ids();
            if let Some(e) = entry {
                for j in 0..e.len() {
                    let (v, p) = idx.value_entry(&e, j)?;
                    if !m.matches(idx.symbol(v)?) {
                        out -= idx.postings(p)?;
                    }
                }
            }
            return Ok(out);
        }
        let Some(e) = entry else {
            return Ok(RoaringBitmap::new());
        };
        let lookup = |value: &str| -> Result<Option<RoaringBitmap>, BlockError> {
            let j = idx.lower_bound(&e, value)?;
            if j < e.len() {
                let (v, p) = idx.value_entry(&e, j)?;
                if idx.symbol(v)? == value {
                    return idx.postings(p).map(Some);
                }
            }
            Ok(None)
        };
        if m.op == MatchOp::Equal {
            return Ok(lookup(&m.value)?.unwrap_or_default());
        }
        let mut out = RoaringBitmap::new();
        if let Some(set) = m.set_matches() {
            for v in set {
                if let Some(ids) = lookup(&v)? {
                    out |= ids;
                }
            }
            return Ok(out);
        }
        // Values are sorted, so a literal prefix narrows the scan to one run.
        let (from, prefix) = match m.literal_prefix() {
            Some(p) => (idx.lower_bound(&e, p)?, p),
            None => (0, ""),
        };
        for j in from..e.len() {
            let (v, p) = idx.value_entry(&e, j)?;
            let s = idx.symbol(v)?;
            if !s.starts_with(prefix) {
                break;
            }
            if m.matches(s) {
                out |= idx.postings(p)?;
            }
        }
        Ok(out)
    }
}
