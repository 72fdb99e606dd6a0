//! Merging read results of several sources (blocks, the head) into one
//! answer with `Db::select`'s shape: series sorted by labels, each series
//! once, its samples in time order with one sample per timestamp.

use crate::{Sample, SeriesSamples};

/// Merges per-source results, each sorted by labels (as `Block::select`
/// and `Db::select` return them). A timestamp present in several sources
/// keeps the sample of the earliest source in `sources`, so pass the
/// freshest data (the head) first.
pub fn merge_series(sources: Vec<Vec<SeriesSamples>>) -> Vec<SeriesSamples> {
    let mut iters: Vec<std::iter::Peekable<std::vec::IntoIter<SeriesSamples>>> = sources
        .into_iter()
        .map(|v| v.into_iter().peekable())
        .collect();
    let mut out = Vec::new();
    loop {
        let Some(min) = iters
            .iter_mut()
            .filter_map(|it| it.peek().map(|s| &s.labels))
            .min()
            .cloned()
        else {
            return out;
        };
        let mut acc: Option<SeriesSamples> = None;
        for it in iters.iter_mut() {
            if it.peek().is_some_and(|s| s.labels == min) {
                let s = it.next().expect("peeked");
                acc = Some(match acc {
                    None => s,
                    Some(mut a) => {
                        a.samples = merge_samples(&a.samples, &s.samples);
                        a
                    }
                });
            }
        }
        out.extend(acc);
    }
}

/// Two time-ordered sample lists as one; `a` wins equal timestamps.
fn merge_samples(a: &[Sample], b: &[Sample]) -> Vec<Sample> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].t.cmp(&b[j].t) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}
