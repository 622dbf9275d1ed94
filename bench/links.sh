#!/usr/bin/env bash
# The uplink on bad links, side by side: the daemon and the two uplink
# anchors (the bare gst-launch pipeline and the ffmpeg command line, at
# the same bitrate, neither adapting) through the test harness's bad-link
# relay (loss, delay, a rate cap, rate changes, an outage) to an
# srt-live-transmit hub. One table: the hub's video received, its longest
# freeze, damaged-picture seconds (ffmpeg's decoder), the mean bitrate
# delivered, and for the daemon the local recording's completeness and
# whether the session stayed live.
#
# Usage: bench/links.sh            (60 s a scenario, about 20 minutes)
#        LINKS_SECONDS=30 bench/links.sh
#        LINKS_ONLY="random loss" LINKS_SENDERS=diemcau LINKS_TRACE=1 bench/links.sh
#          (one row, one sender, the daemon's uplink status every second)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --locked -q --test uplink -- --ignored --nocapture links_bench_table
