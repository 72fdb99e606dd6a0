//! Tessera's benchmarks and capacity load harness.
