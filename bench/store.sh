#!/usr/bin/env bash
# Recording store benchmarks: sled write throughput by chunk size beside
# plain file appends fsynced at the same cadence, and space amplification in
# a steady record/upload/prune ring. See tests/bench_store.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --locked --test bench_store -- --ignored --nocapture --test-threads 1
