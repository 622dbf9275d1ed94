#!/usr/bin/env bash
# CPU of the daemon streaming 720p30 + audio to a local SRT receiver, side by
# side with the bare gst-launch-1.0 pipeline doing the same encode and send
# (the project's uplink anchor), on one identical 10 s clip.
# Prints user+sys CPU seconds and peak memory of each, and the ratio
# daemon / gst-launch (goal: <= 1.10).
# Usage: bench/uplink-cpu.sh [runs]   (after `bash tests/quickstart.sh install`)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
dir=${TMPDIR:-/tmp}/diemcau-anchors; mkdir -p "$dir"
clip=$dir/src720.y4m
[ -s "$clip" ] || ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -t 10 -pix_fmt yuv420p "$clip"
cargo build --release --locked -q
bin=$PWD/target/release/diemcau
port=${PORT:-7311}
work=$(mktemp -d)
srt-live-transmit -a:yes -q "srt://:$port?mode=listener" "udp://127.0.0.1:$((port+1))" >/dev/null 2>&1 &
listener=$!
trap 'kill $listener 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
sleep 1

cat >"$work/bench.toml" <<TOML
[site]
id = "bench"
name = "bench"
[daemon]
state_dir = "$work/state"
socket = "$work/api.sock"
language = "en"
[video]
source = "file"
device = "$clip"
width = 1280
height = 720
framerate = 30
encoder = "x264"
bitrate_kbps = 2500
min_bitrate_kbps = 2500
max_bitrate_kbps = 2500
keyframe_interval_s = 2
[audio]
source = "synthetic"
channels = 2
bitrate_kbps = 64
echo_cancel = false
[uplink]
url = "srt://127.0.0.1:$port"
latency_ms = 120
adaptive_bitrate = false
[display]
sink = "none"
[speaker]
sink = "none"
TOML

anchor() {
  /usr/bin/time -f "%U %S %M" -o "$work/anchor.time" gst-launch-1.0 -q -e filesrc location="$clip" ! y4mdec ! clocksync ! \
    x264enc tune=zerolatency speed-preset=ultrafast bitrate=2500 key-int-max=60 ! h264parse ! queue ! mux. \
    audiotestsrc is-live=true samplesperbuffer=480 num-buffers=1000 ! audio/x-raw,rate=48000,channels=2 ! \
    opusenc bitrate=64000 ! queue ! mux. mpegtsmux name=mux alignment=7 ! srtsink uri="srt://127.0.0.1:$port" latency=120 >/dev/null
}

daemon() {
  rm -rf "$work/state"
  /usr/bin/time -f "%U %S %M" -o "$work/daemon.time" "$bin" run --config "$work/bench.toml" 2>"$work/daemon.log" &
  local pid=$!
  for _ in $(seq 100); do "$bin" status --config "$work/bench.toml" >/dev/null 2>&1 && break; sleep 0.05; done
  "$bin" start --config "$work/bench.toml" >/dev/null
  sleep 10
  "$bin" stop --config "$work/bench.toml" >/dev/null
  # Signal the daemon itself, not the time(1) wrapper around it.
  pkill -TERM -f "^$bin run --config $work/bench.toml" || true
  wait "$pid" || true
}

cpu() { awk '{printf "%.2f", $1 + $2}' "$1"; }
mem() { awk '{print $3}' "$1"; }
total_a=0; total_d=0
for i in $(seq "$runs"); do
  anchor; sleep 1; daemon; sleep 1
  a=$(cpu "$work/anchor.time"); d=$(cpu "$work/daemon.time")
  echo "run $i: gst-launch cpu_s=$a peak_kb=$(mem "$work/anchor.time")   diemcau cpu_s=$d peak_kb=$(mem "$work/daemon.time")   ratio=$(awk -v a="$a" -v d="$d" 'BEGIN{printf "%.3f", d/a}')"
  total_a=$(awk -v x="$total_a" -v a="$a" 'BEGIN{print x+a}'); total_d=$(awk -v x="$total_d" -v d="$d" 'BEGIN{print x+d}')
done
echo "total: gst-launch cpu_s=$total_a diemcau cpu_s=$total_d ratio=$(awk -v a="$total_a" -v d="$total_d" 'BEGIN{printf "%.3f", d/a}') (goal <= 1.10)"
