#!/usr/bin/env bash
# Echo cancellation, measured: the daemon's canceller (webrtcdsp against
# the speaker path's webrtcechoprobe, the description the daemon runs)
# on a simulated room (tests/echo.rs says how: no speaker or microphone
# here), for echo delays of 20, 60 and 120 ms. Prints ERLE with the
# canceller on and off after 2 s of convergence, and the room's talker's
# level change during double talk. Targets: ERLE >= 25 dB, near end
# within 3 dB. About two minutes, in real time.
#
# Usage: bench/echo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --locked -q --test echo -- --ignored --nocapture echo_bench_table
