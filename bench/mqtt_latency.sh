#!/bin/sh
# Command-to-reply latency of the MQTT control plane on loopback (TLS,
# Mosquitto started by the test), p50/p99 over BENCH_N (default 1000)
# sequential `diagnostics` commands. Needs mosquitto and openssl.
set -eu
cd "$(dirname "$0")/.."
exec cargo test --release --test mqtt bench_command_latency -- --ignored --nocapture
