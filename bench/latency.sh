#!/usr/bin/env bash
# Latency of the uplink path on loopback, from the GStreamer latency tracer
# inside the daemon (capture -> inter hop -> encode + mux -> appsink), plus the
# SRT latency setting (the receiver's TSBPD delay) and a receiver decode.
# Prints each part and the estimated glass-to-glass total; the goal is at most
# SRT latency + 100 ms. Usage: bench/latency.sh [srt_latency_ms]
set -euo pipefail
cd "$(dirname "$0")/.."
lat=${1:-120}
cargo build --release --locked -q
bin=$PWD/target/release/diemcau
work=$(mktemp -d); port=${PORT:-7411}
cat >"$work/c.toml" <<TOML
[site]
id = "lat"
name = "lat"
[daemon]
state_dir = "$work/state"
socket = "$work/api.sock"
[video]
source = "synthetic"
width = 1280
height = 720
framerate = 30
bitrate_kbps = 2500
[audio]
source = "synthetic"
[uplink]
url = "srt://127.0.0.1:$port"
latency_ms = $lat
[display]
sink = "none"
[speaker]
sink = "none"
TOML
# The hub: a receiver that decodes what arrives, with the tracer on.
GST_TRACERS="latency" GST_DEBUG="GST_TRACER:7" GST_DEBUG_NO_COLOR=1 \
  gst-launch-1.0 -q srtsrc uri="srt://:$port?mode=listener&latency=$lat" ! tsdemux ! h264parse ! avdec_h264 ! fakesink sync=true \
  2>"$work/rx.log" &
rx=$!
trap 'kill $rx 2>/dev/null; rm -rf "$work"' EXIT
GST_TRACERS="latency(flags=pipeline)" GST_DEBUG="GST_TRACER:7" GST_DEBUG_NO_COLOR=1 "$bin" run --config "$work/c.toml" 2>"$work/tx.log" &
d=$!
for _ in $(seq 100); do "$bin" status --config "$work/c.toml" >/dev/null 2>&1 && break; sleep 0.05; done
"$bin" start --config "$work/c.toml" >/dev/null
sleep 10
"$bin" stop --config "$work/c.toml" >/dev/null
kill -TERM $d; wait $d || true
mean() { # log, src element, sink element
  grep "src-element=(string)$2," "$1" | grep "sink-element=(string)$3," | grep -o 'time=(guint64)[0-9]*' | cut -d')' -f2 |
    awk '{s+=$1; n++} END {if (n) printf "%.1f", s/n/1e6; else printf "nan"}'
}
cap=$(mean "$work/tx.log" videotestsrc0 intervideosink0)
enc=$(mean "$work/tx.log" intervideosrc0 ts)
dec=$(grep -o 'time=(guint64)[0-9]*' "$work/rx.log" | cut -d')' -f2 | awk '{s+=$1; n++} END {if (n) printf "%.1f", s/n/1e6; else printf "nan"}')
frame=$(awk 'BEGIN{printf "%.1f", 1000/30}')
echo "capture to inter hop:          ${cap} ms (tracer)"
echo "inter hop wait (at most):      ${frame} ms (one frame at 30 fps)"
echo "encode + mux to appsink:       ${enc} ms (tracer)"
echo "SRT latency (TSBPD):           ${lat} ms (setting)"
echo "receiver demux + decode+sink:  ${dec} ms (tracer, includes its pipeline latency)"
awk -v a="$cap" -v b="$frame" -v c="$enc" -v d="$dec" -v l="$lat" 'BEGIN{t=a+b+c+l+d; printf "estimated glass-to-glass:      %.1f ms = SRT latency + %.1f ms (goal: + at most 100 ms)\n", t, t-l}'
