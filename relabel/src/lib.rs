//! Prometheus `relabel_config` parsing and application.
//!
//! Owns the relabel rules Prometheus users already write
//! (`relabel_configs`, `metric_relabel_configs`, `write_relabel_configs`):
//! parsing them from YAML with Prometheus' defaults and validation, and
//! applying them to a [`Labels`](tessera_tsdb::Labels) set with Prometheus'
//! exact semantics, every action included (replace, keep, drop, keepequal,
//! dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase,
//! uppercase). Pure functions: no I/O, no clock, no global state besides a
//! thread-local scratch buffer.
//!
//! It does not decide what a relabeled series means to the store: dropping
//! `__`-prefixed helper labels, requiring `__name__`, counting drops are
//! the caller's (ingest's) policy.
//!
//! Start from [`RelabelConfigs::from_yaml`] and [`RelabelConfigs::apply`]:
//!
//! ```
//! use tessera_relabel::{Outcome, RelabelConfigs};
//! use tessera_tsdb::Labels;
//!
//! let rules = RelabelConfigs::from_yaml(r#"
//! - source_labels: [__name__]
//!   regex: go_.*
//!   action: drop
//! - source_labels: [Hostname]
//!   target_label: node
//! "#).unwrap();
//! let mut labels = Labels::from_pairs([("__name__", "DCGM_FI_DEV_GPU_UTIL"), ("Hostname", "gpu-7")]);
//! assert_eq!(rules.apply(&mut labels), Outcome::Keep);
//! assert_eq!(labels.get("node"), Some("gpu-7"));
//! ```
//!
//! Differences from Prometheus, all deliberate: label names are validated
//! with the legacy charset `[a-zA-Z_][a-zA-Z0-9_]*` (Tessera's data model),
//! and regexes are compiled by the `regex` crate after rewriting the few
//! Go RE2 constructs whose meaning differs (see `goregex.rs`).

mod action;
mod case;
mod config;
mod error;
mod expand;
mod goregex;
mod hashmod;

pub use action::{Outcome, Scratch};
pub use config::{
    Action, DEFAULT_REGEX, DEFAULT_REPLACEMENT, DEFAULT_SEPARATOR, RelabelConfig, RelabelConfigs,
};
pub use error::RelabelError;
pub use hashmod::hashmod;
