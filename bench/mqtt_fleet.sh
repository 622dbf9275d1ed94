#!/usr/bin/env bash
# Fleet scale: FLEET_N (default 500) control planes of the daemon in one
# process against one local Mosquitto (mutual TLS); one broadcast command;
# prints reply latency p50/p99 and the broker's and simulator's memory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --locked --test mqtt bench_fleet_broadcast -- --ignored --nocapture
