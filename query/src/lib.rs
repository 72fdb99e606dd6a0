//! PromQL evaluation for Tessera.
