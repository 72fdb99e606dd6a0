//! Deduplicating the copies of one series written by an HA pair of senders
//! (equal but for `--query.replica-label` labels): one copy is followed,
//! another taken only across a real gap in it, so copies never interleave.
//!
//! Where the query reads the series only as a counter (`rate`, `irate`,
//! `increase`, `resets`: `tessera_query::counters`), the copy taken over
//! is shifted so that it continues the followed one: the two senders'
//! values of one counter differ a little (scrape times, a lagging exporter
//! cache), and a slightly lower value after the switch would otherwise be
//! a counter reset to `rate()`, a spike of the whole counter's value. The
//! shift keeps the new copy's own increase across the switch (interpolated
//! to the time of the last sample taken), so nothing is counted twice, and
//! keeps a real reset in the new copy a reset.

use tessera_tsdb::Sample;

/// One sample per timestamp out of `copies`: the copy with the earliest
/// samples is followed, and another is switched to only across a real gap
/// in it — no sample for more than twice the interval between the last two
/// samples taken — and then followed in turn. With `counter`, each copy
/// switched to is shifted to continue the counter ([`counter_shift`]).
pub(crate) fn dedup_copies(copies: Vec<Vec<Sample>>, counter: bool) -> Vec<Sample> {
    if copies.len() == 1 {
        return copies.into_iter().next().unwrap_or_default();
    }
    let mut next = vec![0usize; copies.len()];
    let first = |c: &Vec<Sample>| c.first().map_or(i64::MAX, |s| s.t);
    let mut cur = (0..copies.len())
        .min_by_key(|&i| first(&copies[i]))
        .unwrap_or(0);
    // Added to the followed copy's values (0 but for counters).
    let mut shift = 0.0;
    let mut out: Vec<Sample> = Vec::with_capacity(copies.iter().map(Vec::len).max().unwrap_or(0));
    loop {
        if let Some(last) = out.last() {
            for (i, c) in copies.iter().enumerate() {
                while next[i] < c.len() && c[next[i]].t <= last.t {
                    next[i] += 1;
                }
            }
        }
        let Some((earliest_t, earliest)) = (0..copies.len())
            .filter_map(|i| Some((copies[i].get(next[i])?.t, i)))
            .min()
        else {
            break;
        };
        // Until two samples give an interval, the earliest copy is taken
        // (the followed one when tied).
        let n = out.len();
        let max_gap = match n {
            0 => 0,
            1 => earliest_t - out[0].t,
            _ => (out[n - 1].t - out[n - 2].t).saturating_mul(2),
        };
        let in_turn = match (copies[cur].get(next[cur]), out.last()) {
            (Some(s), Some(last)) => s.t - last.t <= max_gap,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !in_turn {
            cur = earliest;
            shift = match (counter, out.last()) {
                (true, Some(last)) => counter_shift(&copies[cur], next[cur], *last),
                _ => 0.0,
            };
        }
        let s = copies[cur][next[cur]];
        out.push(Sample {
            t: s.t,
            v: s.v + shift,
        });
        next[cur] += 1;
    }
    out
}

/// What to add to `copy`'s values from index `at` on so that, read as a
/// counter, it continues from `last` (the last sample taken, from another
/// copy): the copy's value interpolated at `last.t` becomes `last.v`. A
/// copy with no sample before `at`, where its own increase is unknown, is
/// raised to `last.v` only if lower (so no reset shows); a copy that
/// itself resets between its samples around `last.t` is left as it is
/// (the reset is real); staleness markers are never shifted from.
fn counter_shift(copy: &[Sample], at: usize, last: Sample) -> f64 {
    let after = copy[at];
    if !last.v.is_finite() || !after.v.is_finite() {
        return 0.0;
    }
    let Some(before) = at
        .checked_sub(1)
        .map(|i| copy[i])
        .filter(|s| s.v.is_finite())
    else {
        return (last.v - after.v).max(0.0);
    };
    if after.v < before.v || after.t <= before.t {
        return 0.0;
    }
    let frac = (last.t - before.t) as f64 / (after.t - before.t) as f64;
    let at_last = before.v + (after.v - before.v) * frac.clamp(0.0, 1.0);
    last.v - at_last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(ts: &[i64], f: impl Fn(i64) -> f64) -> Vec<Sample> {
        ts.iter().map(|&t| Sample { t, v: f(t) }).collect()
    }

    fn pairs(s: &[Sample]) -> Vec<(i64, f64)> {
        s.iter().map(|s| (s.t, s.v)).collect()
    }

    #[test]
    fn copies_take_turns_only_across_gaps() {
        // a: 0..=40 then a gap until 100; b: slightly different values,
        // from 10 to 120.
        let a = pts(&[0, 10, 20, 30, 40, 100, 110], |t| t as f64);
        let b = pts(&[10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120], |t| {
            t as f64 + 0.5
        });
        let want: Vec<(i64, f64)> = [0, 10, 20, 30, 40]
            .iter()
            .map(|&t| (t, t as f64))
            .chain(
                [50, 60, 70, 80, 90, 100, 110, 120]
                    .iter()
                    .map(|&t| (t, t as f64 + 0.5)),
            )
            .collect();
        assert_eq!(
            pairs(&dedup_copies(vec![b.clone(), a.clone()], false)),
            want
        );
    }

    #[test]
    fn a_lower_counter_taken_over_continues_without_a_reset() {
        // One counter rising 1 per ms; b scrapes 3 ms later and reads 8
        // less (a lagging copy). a stops from 40 to 100.
        let a = pts(&[0, 10, 20, 30, 40, 100, 110], |t| 1000.0 + t as f64);
        let b = pts(&[13, 23, 33, 43, 53, 63, 73], |t| 992.0 + t as f64);
        // As a gauge: b's own values, lower than a's last (a "reset").
        let gauge = dedup_copies(vec![a.clone(), b.clone()], false);
        assert_eq!(gauge[5], Sample { t: 43, v: 1035.0 });
        assert!(gauge[5].v < gauge[4].v);
        // As a counter: b continues a's line exactly (its own increase
        // since t=40 is 3), so rate sees 1 per ms throughout; back on a
        // when b ends, a continues as it is.
        let counter = dedup_copies(vec![a, b], true);
        let want: Vec<(i64, f64)> = [0, 10, 20, 30, 40, 43, 53, 63, 73, 100, 110]
            .iter()
            .map(|&t| (t, 1000.0 + t as f64))
            .collect();
        assert_eq!(pairs(&counter), want);
    }

    #[test]
    fn counter_shift_keeps_real_resets_and_raises_copies_without_history() {
        let last = Sample { t: 40, v: 500.0 };
        // The copy reset between its samples around the switch: kept.
        let reset = pts(&[30, 45], |t| if t < 40 { 900.0 } else { 5.0 });
        assert_eq!(counter_shift(&reset, 1, last), 0.0);
        // No earlier sample: raised to the last value, never lowered.
        assert_eq!(counter_shift(&pts(&[45], |_| 490.0), 0, last), 10.0);
        assert_eq!(counter_shift(&pts(&[45], |_| 520.0), 0, last), 0.0);
        // A staleness marker is no base to shift from.
        let stale = tessera_tsdb::stale_nan();
        assert_eq!(counter_shift(&pts(&[45], |_| stale), 0, last), 0.0);
    }
}
