//! Remote write 2.0 bodies of the same load: a 1.0 `WriteRequest` rewritten
//! with a symbols table, as a 2.0 sender would build it (every distinct
//! string once, series as references), for comparing the two receive paths
//! on identical data.

use std::collections::HashMap;

use tessera_ingest::{proto, proto_v2};

/// `req` as a remote write 2.0 request: the same series, labels, samples
/// and (per series, under its `__name__`) metadata.
pub fn to_v2(req: &proto::WriteRequest) -> proto_v2::Request {
    let mut symbols: Vec<Vec<u8>> = vec![Vec::new()];
    let mut index: HashMap<Vec<u8>, u32> = HashMap::from([(Vec::new(), 0)]);
    let mut sym = |s: &[u8]| -> u32 {
        if let Some(&i) = index.get(s) {
            return i;
        }
        let i = symbols.len() as u32;
        symbols.push(s.to_vec());
        index.insert(s.to_vec(), i);
        i
    };
    let metadata: HashMap<&str, &proto::MetricMetadata> = req
        .metadata
        .iter()
        .map(|m| (m.metric_family_name.as_str(), m))
        .collect();
    let timeseries = req
        .timeseries
        .iter()
        .map(|ts| {
            let name = ts
                .labels
                .iter()
                .find(|l| l.name == b"__name__")
                .and_then(|l| std::str::from_utf8(&l.value).ok());
            proto_v2::TimeSeries {
                labels_refs: ts
                    .labels
                    .iter()
                    .flat_map(|l| [sym(&l.name), sym(&l.value)])
                    .collect(),
                samples: ts
                    .samples
                    .iter()
                    .map(|s| proto_v2::Sample {
                        value: s.value,
                        timestamp: s.timestamp,
                        start_timestamp: 0,
                    })
                    .collect(),
                metadata: name
                    .and_then(|n| metadata.get(n))
                    .map(|m| proto_v2::Metadata {
                        r#type: m.r#type,
                        help_ref: sym(m.help.as_bytes()),
                        unit_ref: sym(m.unit.as_bytes()),
                    }),
                ..Default::default()
            }
        })
        .collect();
    proto_v2::Request {
        symbols,
        timeseries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::{Fleet, FleetConfig};
    use prost::Message;
    use tessera_ingest::{DecodeLimits, validate, validate_v2};

    #[test]
    fn a_fleet_round_validates_the_same_in_both_versions() {
        let mut fleet = Fleet::new(FleetConfig {
            nodes: 2,
            ..FleetConfig::default()
        });
        let limits = DecodeLimits::default();
        let mut batches = 0;
        fleet.round(0, 1_700_000_000_000, 15_000, 500, |b| {
            let v1 = proto::WriteRequest::decode(b.proto.as_slice()).unwrap();
            let v2 = to_v2(&v1);
            assert!(
                v2.encoded_len() < b.proto.len(),
                "2.0 is the smaller encoding"
            );
            let a = validate(v1, &limits);
            let b = validate_v2(v2, &limits).unwrap();
            assert_eq!(a.series, b.series);
            assert!(b.rejected.is_empty());
            batches += 1;
        });
        assert!(batches > 1);
    }
}
