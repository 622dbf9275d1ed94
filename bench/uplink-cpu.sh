#!/usr/bin/env bash
# CPU, memory and picture quality of the daemon streaming 720p30 + audio to a
# local SRT hub (uplink and recording both), side by side with the project's
# two uplink anchors on one identical 10 s clip: the bare gst-launch-1.0
# pipeline and the ffmpeg command line, copied here exactly as the anchor
# script has them (the comparison is only fair if the anchors are untouched).
#
# Prints, per run, user+sys CPU seconds and peak RSS of each; then the ratios
# of the totals (goal: the daemon at most 1.0x the ffmpeg line); SSIM and
# PSNR against the clip of what the hub received from each (last run); and
# the daemon's peak RSS in a whole room: echo cancellation, the display and
# the speaker (fake sinks), recording and MQTT to a local broker, all on
# (goal: at most 80 MB).
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
hub=
broker=
trap 'kill $hub $broker 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

# One hub per run: an srt-live-transmit listener that keeps what it gets.
hub_start() {
  srt-live-transmit -q "srt://:$port?mode=listener" file://con >"$work/hub-$1.ts" 2>/dev/null &
  hub=$!
  sleep 0.5
}
hub_stop() { sleep 0.5; kill "$hub" 2>/dev/null || true; wait "$hub" 2>/dev/null || true; hub=; }

config() { # $1: file, $2: "room" for the whole room
  cat >"$1" <<TOML
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
channels = 1
bitrate_kbps = 64
echo_cancel = $([ "${2:-}" = room ] && echo true || echo false)
[uplink]
url = "srt://127.0.0.1:$port"
latency_ms = 120
adaptive_bitrate = false
[display]
sink = "$([ "${2:-}" = room ] && echo fake || echo none)"
[speaker]
sink = "$([ "${2:-}" = room ] && echo fake || echo none)"
TOML
  if [ "${2:-}" = room ]; then
    printf '[mqtt]\nurl = "mqtt://127.0.0.1:%s"\n' "$((port + 2))" >>"$1"
  fi
}
config "$work/bench.toml"
config "$work/room.toml" room

# The anchor script's two command lines, verbatim.
gst() { gst-launch-1.0 -q -e filesrc location="$clip" ! y4mdec ! clocksync ! \
  x264enc tune=zerolatency speed-preset=ultrafast bitrate=2500 key-int-max=60 ! h264parse ! queue ! mux. \
  audiotestsrc is-live=true samplesperbuffer=480 num-buffers=1000 ! audio/x-raw,rate=48000,channels=2 ! \
  opusenc bitrate=64000 ! queue ! mux. mpegtsmux name=mux alignment=7 ! srtsink uri="srt://127.0.0.1:$port" latency=120; }
ff() { ffmpeg -nostdin -loglevel error -re -i "$clip" -re -f lavfi -i sine=frequency=440:sample_rate=48000 -shortest \
  -c:v libx264 -preset ultrafast -tune zerolatency -b:v 2500k -g 60 -c:a libopus -b:a 64k \
  -f mpegts "srt://127.0.0.1:$port?pkt_size=1316"; }

anchor() { # $1: gst or ff
  hub_start "$1"
  /usr/bin/time -f "%U %S %M" -o "$work/$1.time" bash -c "$(declare -f "$1"); clip='$clip' port=$port $1" >/dev/null
  hub_stop
}

daemon() { # $1: config file, $2: name
  rm -rf "$work/state"
  hub_start "$2"
  /usr/bin/time -f "%U %S %M" -o "$work/$2.time" "$bin" run --config "$1" 2>"$work/$2.log" &
  local pid=$!
  for _ in $(seq 100); do "$bin" status --config "$1" >/dev/null 2>&1 && break; sleep 0.05; done
  "$bin" start --config "$1" >/dev/null
  sleep 10
  "$bin" stop --config "$1" >/dev/null
  # Signal the daemon itself, not the time(1) wrapper around it.
  pkill -TERM -f "^$bin run --config $1" || true
  wait "$pid" || true
  hub_stop
}

cpu() { awk '{printf "%.2f", $1 + $2}' "$work/$1.time"; }
mem() { awk '{print $3}' "$work/$1.time"; }
sum() { awk -v x="$1" -v y="$2" 'BEGIN{print x + y}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a / b}'; }
# SSIM and PSNR of a hub capture against the clip, frame by frame from the
# first frame of each (both start at the clip's first frame).
quality() {
  ffmpeg -nostdin -v info -i "$work/hub-$1.ts" -i "$clip" -lavfi \
    "[0:v]setpts=N/30/TB,split[a0][a1];[1:v]setpts=N/30/TB,split[b0][b1];[a0][b0]ssim=shortest=1;[a1][b1]psnr=shortest=1" \
    -f null - 2>&1 | awk '/SSIM/{for(i=1;i<=NF;i++) if($i ~ /^All:/){sub("All:","",$i); s=$i}}
      /PSNR/{for(i=1;i<=NF;i++) if($i ~ /^average:/){sub("average:","",$i); p=$i}}
      END{printf "SSIM %s  PSNR %s dB", s, p}'
}

t_gst=0; t_ff=0; t_d=0
for i in $(seq "$runs"); do
  anchor gst; anchor ff; daemon "$work/bench.toml" diemcau
  echo "run $i: gst-launch cpu_s=$(cpu gst) peak_kb=$(mem gst)   ffmpeg cpu_s=$(cpu ff) peak_kb=$(mem ff)   diemcau cpu_s=$(cpu diemcau) peak_kb=$(mem diemcau)"
  t_gst=$(sum "$t_gst" "$(cpu gst)"); t_ff=$(sum "$t_ff" "$(cpu ff)"); t_d=$(sum "$t_d" "$(cpu diemcau)")
done
echo "total: gst-launch cpu_s=$t_gst ffmpeg cpu_s=$t_ff diemcau cpu_s=$t_d"
echo "ratio: diemcau/ffmpeg=$(ratio "$t_d" "$t_ff") (goal <= 1.0)  diemcau/gst-launch=$(ratio "$t_d" "$t_gst")"
for who in gst ff diemcau; do echo "quality $who: $(quality "$who")"; done

mosquitto -p "$((port + 2))" >/dev/null 2>&1 &
broker=$!
sleep 0.5
daemon "$work/room.toml" room
grep -q 'MQTT connected' "$work/room.log" || { echo "the whole-room run never reached the broker: see $work/room.log (KEEP=1 keeps it)"; exit 1; }
echo "whole room (echo cancellation, fake display and speaker, recording, MQTT): diemcau cpu_s=$(cpu room) peak_kb=$(mem room) (goal <= 81920)"
