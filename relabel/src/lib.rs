//! Prometheus `relabel_config` parsing and application.
