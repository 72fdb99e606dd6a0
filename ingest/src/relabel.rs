//! Relabeling at ingest: `--ingest.relabel-config FILE` applied to every
//! series of a write before it reaches storage, reloadable at run time.
//!
//! The rules are Prometheus' `relabel_config` list (the text of a
//! `write_relabel_configs` block works as is). A reload that fails to parse
//! keeps the rules in force and reports why, so a typo never turns into an
//! unfiltered flood.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use tessera_relabel::{Outcome, RelabelConfigs, Scratch};
use tessera_tsdb::METRIC_NAME;

use crate::validate::{Rejections, ValidSeries};

#[derive(Debug, thiserror::Error)]
pub enum RelabelLoadError {
    #[error("reading relabel config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("relabel config {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: tessera_relabel::RelabelError,
    },
}

/// The ingest relabel rules in force, swappable by a reload.
pub struct IngestRelabel {
    path: Option<PathBuf>,
    rules: RwLock<Arc<RelabelConfigs>>,
}

/// What relabeling did to one write.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RelabelStats {
    /// Series dropped, by 0-based rule index.
    pub dropped_by_rule: Vec<(usize, u64)>,
    /// Series whose relabeled labels were invalid (refused with 400).
    pub invalid: u64,
}

impl IngestRelabel {
    /// No rules: every series passes unchanged.
    pub fn none() -> Self {
        IngestRelabel {
            path: None,
            rules: RwLock::new(Arc::new(RelabelConfigs::default())),
        }
    }

    /// Loads rules from a file (at start-up: an error refuses to start).
    pub fn load(path: &Path) -> Result<Self, RelabelLoadError> {
        let rules = read_rules(path)?;
        Ok(IngestRelabel {
            path: Some(path.to_path_buf()),
            rules: RwLock::new(Arc::new(rules)),
        })
    }

    /// Re-reads the file; on error the current rules stay in force. Returns
    /// the number of rules now in force.
    pub fn reload(&self) -> Result<usize, RelabelLoadError> {
        let Some(path) = &self.path else {
            return Ok(0);
        };
        let rules = read_rules(path)?;
        let n = rules.len();
        *self.rules.write() = Arc::new(rules);
        Ok(n)
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn rule_count(&self) -> usize {
        self.rules.read().len()
    }

    /// Relabels every series in place, removing dropped ones and recording
    /// invalid results in `rejected`.
    pub fn apply(&self, series: &mut Vec<ValidSeries>, rejected: &mut Rejections) -> RelabelStats {
        let rules = self.rules.read().clone();
        let mut stats = RelabelStats::default();
        if rules.is_empty() {
            return stats;
        }
        let mut scratch = Scratch::default();
        series.retain_mut(|s| match rules.apply_with(&mut s.labels, &mut scratch) {
            Outcome::Keep if s.labels.get(METRIC_NAME).is_some() => true,
            Outcome::Keep => {
                stats.invalid += 1;
                rejected.record_invalid_series(s.samples.len(), || {
                    format!("relabeling removed {METRIC_NAME} from series {}", s.labels)
                });
                false
            }
            Outcome::Drop { rule } => {
                match stats.dropped_by_rule.iter_mut().find(|(r, _)| *r == rule) {
                    Some((_, n)) => *n += 1,
                    None => stats.dropped_by_rule.push((rule, 1)),
                }
                false
            }
            Outcome::Invalid(e) => {
                stats.invalid += 1;
                rejected.record_invalid_series(s.samples.len(), || {
                    format!("after relabeling, series {} is invalid: {e}", s.labels)
                });
                false
            }
        });
        stats
    }
}

fn read_rules(path: &Path) -> Result<RelabelConfigs, RelabelLoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| RelabelLoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    RelabelConfigs::from_yaml(&text).map_err(|source| RelabelLoadError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_tsdb::{Labels, Sample};

    fn s(pairs: &[(&str, &str)]) -> ValidSeries {
        ValidSeries {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: vec![Sample::new(1, 1.0)],
        }
    }

    #[test]
    fn drops_rewrites_and_counts_by_rule() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yml");
        std::fs::write(
            &path,
            "- source_labels: [__name__]\n  regex: go_.*\n  action: drop\n- regex: pod_template_hash\n  action: labeldrop\n",
        )
        .unwrap();
        let r = IngestRelabel::load(&path).unwrap();
        let mut v = vec![
            s(&[("__name__", "go_goroutines")]),
            s(&[("__name__", "up"), ("pod_template_hash", "abc")]),
            s(&[("__name__", "go_gc")]),
        ];
        let mut rej = Rejections::default();
        let st = r.apply(&mut v, &mut rej);
        assert_eq!(st.dropped_by_rule, vec![(0, 2)]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].labels, Labels::from_pairs([("__name__", "up")]));
        assert!(rej.is_empty());
    }

    #[test]
    fn removing_the_metric_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yml");
        std::fs::write(&path, "- regex: __name__\n  action: labeldrop\n").unwrap();
        let r = IngestRelabel::load(&path).unwrap();
        let mut v = vec![s(&[("__name__", "up"), ("a", "b")])];
        let mut rej = Rejections::default();
        let st = r.apply(&mut v, &mut rej);
        assert_eq!((st.invalid, v.len(), rej.invalid_series), (1, 0, 1));
    }

    #[test]
    fn a_bad_reload_keeps_the_old_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yml");
        std::fs::write(
            &path,
            "- source_labels: [__name__]\n  regex: x\n  action: drop\n",
        )
        .unwrap();
        let r = IngestRelabel::load(&path).unwrap();
        std::fs::write(&path, "- action: hashmod\n  source_labels: [a]\n").unwrap();
        let err = r.reload().unwrap_err().to_string();
        assert!(err.contains("modulus"), "{err}");
        assert_eq!(r.rule_count(), 1);
        let mut v = vec![s(&[("__name__", "x")])];
        r.apply(&mut v, &mut Rejections::default());
        assert!(v.is_empty(), "old rule no longer applied");
        std::fs::write(&path, "").unwrap();
        assert_eq!(r.reload().unwrap(), 0);
    }
}
