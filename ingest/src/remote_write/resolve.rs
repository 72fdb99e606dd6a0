//! Remote write 2.0 series into 1.0 series: the symbol references resolved,
//! so both versions go through the one [`crate::validate()`] and the one
//! append path (`crate::write`), with the same limits, checks and reasons.
//!
//! A series whose references are broken (an odd count, an index past the
//! symbols table, in its labels or its metadata) is refused with its reason
//! and the rest of the request is kept; nothing here can panic on hostile
//! input. Each resolved label copies its name and value out of the symbols
//! table, and those bytes are charged to the same struct budget the decoder
//! used (1 byte of reference can name a 4 KiB symbol, so without it a small
//! request could expand to gigabytes). That budget is a fresh one of the
//! same size as the decoder's, so a 2.0 request may hold at most twice the
//! structs a 1.0 one may.
//!
//! Created (start) timestamps, in `TimeSeries.created_timestamp` or
//! `Sample.start_timestamp`, are accepted and dropped: Tessera does not
//! store them (yet). Exemplars and histograms are carried over only far
//! enough to be counted and refused, as in 1.0.

use tessera_tsdb::METRIC_NAME;
use tessera_tsdb::labels::is_valid_metric_name;

use super::proto::{self, MetricMetadata};
use super::proto_v2 as pb;
use super::v1::DecodeLimits;
use super::wire::{self, Budget};
use crate::error::IngestError;
use crate::validate::{Rejections, SeriesError, ValidatedWrite, validate_series_of};

/// Validates a decoded remote write 2.0 request: references resolved
/// series by series (see the module doc), each series then validated as
/// for 1.0 ([`crate::validate()`]'s own code) as soon as it is resolved.
/// Fails as a whole only when the resolved labels would exceed the
/// request's memory budget ([`IngestError::LabelsExpandTooMuch`], 413).
pub fn validate_v2(req: pb::Request, limits: &DecodeLimits) -> Result<ValidatedWrite, IngestError> {
    let mut r = Resolver {
        symbols: &req.symbols,
        budget: wire::budget_for(limits),
        rejected: Rejections::default(),
        metadata: Vec::new(),
        over_budget: None,
    };
    let n = req.timeseries.len();
    let resolved = req
        .timeseries
        .into_iter()
        .enumerate()
        // map_while: past the budget, nothing more is resolved.
        .map_while(|(i, ts)| r.series(i, ts))
        .flatten();
    let mut out = validate_series_of(n, resolved, Vec::new(), limits);
    if let Some(e) = r.over_budget {
        return Err(e);
    }
    out.metadata = r.metadata;
    out.rejected.merge(r.rejected);
    Ok(out)
}

/// The state of one request's resolution.
struct Resolver<'a> {
    symbols: &'a [Vec<u8>],
    budget: Budget,
    /// Series refused for their references.
    rejected: Rejections,
    metadata: Vec<MetricMetadata>,
    over_budget: Option<IngestError>,
}

impl Resolver<'_> {
    /// Series `i` as a 1.0 series: `Some(None)` when it was refused (and
    /// recorded), `None` to stop (the budget ran out).
    fn series(&mut self, i: usize, ts: pb::TimeSeries) -> Option<Option<proto::TimeSeries>> {
        let labels = match labels(&ts.labels_refs, self.symbols, &mut self.budget) {
            Ok(l) => l,
            Err(Refused::Series(e)) => return Some(self.refuse(i, &ts, e)),
            Err(Refused::OverBudget) => {
                self.over_budget = Some(IngestError::LabelsExpandTooMuch {
                    limit: self.budget.total(),
                    series: i,
                });
                return None;
            }
        };
        if let Some(m) = &ts.metadata {
            match metadata(m, &labels, self.symbols) {
                Ok(Some(m)) if self.metadata.last() != Some(&m) => self.metadata.push(m),
                Ok(_) => {}
                Err(e) => return Some(self.refuse(i, &ts, e)),
            }
        }
        Some(Some(proto::TimeSeries {
            labels,
            samples: ts
                .samples
                .iter()
                .map(|s| proto::Sample {
                    value: s.value,
                    timestamp: s.timestamp,
                })
                .collect(),
            // Refused by validation, which only counts them; their labels
            // are not resolved.
            exemplars: ts
                .exemplars
                .iter()
                .map(|e| proto::Exemplar {
                    labels: Vec::new(),
                    value: e.value,
                    timestamp: e.timestamp,
                })
                .collect(),
            histograms: ts
                .histograms
                .iter()
                .map(|h| proto::Histogram {
                    timestamp: h.timestamp,
                })
                .collect(),
        }))
    }

    /// Records series `i` as refused for `e`, its exemplars and histograms
    /// with it (as validation counts them for a series with bad labels).
    fn refuse(
        &mut self,
        i: usize,
        ts: &pb::TimeSeries,
        e: SeriesError,
    ) -> Option<proto::TimeSeries> {
        self.rejected.exemplars += ts.exemplars.len() as u64;
        self.rejected.histograms += ts.histograms.len() as u64;
        self.rejected.record_invalid_series(ts.samples.len(), || {
            format!("{e} in series {i} of the request")
        });
        None
    }
}

enum Refused {
    Series(SeriesError),
    OverBudget,
}

/// The series' labels, in the order sent (validation sorts them).
fn labels(
    refs: &[u32],
    symbols: &[Vec<u8>],
    budget: &mut Budget,
) -> Result<Vec<proto::Label>, Refused> {
    if !refs.len().is_multiple_of(2) {
        return Err(Refused::Series(SeriesError::OddLabelRefs {
            count: refs.len(),
        }));
    }
    let mut out = Vec::with_capacity(refs.len() / 2);
    let over = |_| Refused::OverBudget;
    budget
        .charge::<proto::Label>(refs.len() / 2, 0)
        .map_err(over)?;
    for pair in refs.chunks_exact(2) {
        let name = symbol(symbols, pair[0], "label name")?;
        let value = symbol(symbols, pair[1], "label value")?;
        budget
            .charge_bytes(name.len() + value.len(), 0)
            .map_err(over)?;
        out.push(proto::Label {
            name: name.to_vec(),
            value: value.to_vec(),
        });
    }
    Ok(out)
}

fn symbol<'a>(symbols: &'a [Vec<u8>], index: u32, what: &'static str) -> Result<&'a [u8], Refused> {
    symbols.get(index as usize).map(Vec::as_slice).ok_or({
        Refused::Series(SeriesError::SymbolOutOfRange {
            what,
            index,
            len: symbols.len(),
        })
    })
}

/// The series' metadata as a 1.0 entry named after its `__name__`, or
/// `None` when it says nothing (type unspecified, no help, no unit) or the
/// series has no valid name to file it under (validation refuses that
/// series anyway).
fn metadata(
    m: &pb::Metadata,
    labels: &[proto::Label],
    symbols: &[Vec<u8>],
) -> Result<Option<MetricMetadata>, SeriesError> {
    let text = |index, what| {
        symbols
            .get(index as usize)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .ok_or(SeriesError::SymbolOutOfRange {
                what,
                index,
                len: symbols.len(),
            })
    };
    let help = text(m.help_ref, "metadata help")?;
    let unit = text(m.unit_ref, "metadata unit")?;
    if m.r#type == 0 && help.is_empty() && unit.is_empty() {
        return Ok(None);
    }
    let Some(name) = labels
        .iter()
        .find(|l| l.name == METRIC_NAME.as_bytes())
        .and_then(|l| std::str::from_utf8(&l.value).ok())
        .filter(|n| is_valid_metric_name(n))
    else {
        return Ok(None);
    };
    Ok(Some(MetricMetadata {
        r#type: m.r#type,
        metric_family_name: name.to_string(),
        help,
        unit,
    }))
}
