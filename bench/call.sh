#!/usr/bin/env bash
# The conference call's cost and latency on loopback, against baresip (the
# far end nobody here wrote), on the uplink bench's identical 720p30 clip.
#
# 1. CPU: user+sys seconds of the daemon for a 10 s session with the SRT
#    uplink only, with the SIP call only (G.722 + H.264 to baresip), and
#    with both (one encode serving the two), and the ratios.
# 2. Latency, stage by stage on the room -> far end audio path, from the
#    GStreamer latency tracer inside the daemon (each pipeline's source to
#    sink), plus the hops between pipelines and the far end's receive side,
#    which the tracer cannot see (their settings, stated as such).
#
# Usage: bench/call.sh   (after `bash tests/quickstart.sh install`)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${TMPDIR:-/tmp}/diemcau-anchors; mkdir -p "$dir"
clip=$dir/src720.y4m
[ -s "$clip" ] || ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -t 10 -pix_fmt yuv420p "$clip"
cargo build --release --locked -q
bin=$PWD/target/release/diemcau
work=$(mktemp -d)
srt_port=${PORT:-7511}; sip_port=$((srt_port + 10)); far_port=$((srt_port + 20)); rtp=$(( (srt_port + 100) / 2 * 2 ))
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

# The hub for the SRT path.
srt-live-transmit -a:yes -q "srt://:$srt_port?mode=listener" "udp://127.0.0.1:$((srt_port + 1))" >/dev/null 2>&1 &
pids+=($!)

# The far end: baresip, auto-answer, G.722, headless (the tests' config).
mkdir -p "$work/far/conf" "$work/far/media" "$work/far/rec"
ffmpeg -nostdin -loglevel error -y -f lavfi -i sine=frequency=1000:sample_rate=16000:duration=120 -ac 1 "$work/far/media/tone1k.wav"
sed -e "s|@MEDIA_DIR@|$work/far/media|; s|@REC_DIR@|$work/far/rec|; s|@SIP_PORT@|$far_port|; s|@ADDR@|127.0.0.1|g" \
    -e "s|@CTRL_PORT@|$((far_port + 1))|; s|@RTP_PORTS@|$((far_port + 2))-$((far_port + 40))|" \
    tests/sip/baresip/config >"$work/far/conf/config"
echo "<sip:8001@127.0.0.1;transport=udp>;regint=0;answermode=auto;audio_codecs=G722/16000/1" >"$work/far/conf/accounts"
baresip -f "$work/far/conf" >"$work/far/baresip.log" 2>&1 </dev/null &
pids+=($!)
sleep 2

config() { # mode
  local uplink="" sip=""
  case $1 in
    srt) uplink="[uplink]
url = \"srt://127.0.0.1:$srt_port\"
latency_ms = 120
adaptive_bitrate = false" ;;
    sip) sip="[sip]
mode = \"sip\"
conference = \"sip:8001@127.0.0.1:$far_port\"
local_port = $sip_port
rtp_port = $rtp
srtp = \"off\"" ;;
    both) uplink="[uplink]
url = \"srt://127.0.0.1:$srt_port\"
latency_ms = 120
adaptive_bitrate = false"
      sip="[sip]
mode = \"both\"
conference = \"sip:8001@127.0.0.1:$far_port\"
local_port = $sip_port
rtp_port = $rtp
srtp = \"off\"" ;;
  esac
  cat <<TOML
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
$uplink
$sip
[display]
sink = "none"
[speaker]
sink = "none"
TOML
}

run() { # mode [env...]
  local mode=$1; shift
  rm -rf "$work/state"
  config "$mode" >"$work/$mode.toml"
  env "$@" /usr/bin/time -f "%U %S %M" -o "$work/$mode.time" "$bin" run --config "$work/$mode.toml" 2>"$work/$mode.log" &
  local pid=$!
  for _ in $(seq 100); do "$bin" status --config "$work/$mode.toml" >/dev/null 2>&1 && break; sleep 0.05; done
  "$bin" start --config "$work/$mode.toml" >/dev/null
  sleep 10
  "$bin" status --json --config "$work/$mode.toml" >"$work/$mode.status"
  "$bin" stop --config "$work/$mode.toml" >/dev/null
  pkill -TERM -f "^$bin run --config $work/$mode.toml" || true
  wait "$pid" || true
}

cpu() { awk '{printf "%.2f", $1 + $2}' "$work/$1.time"; }
for mode in srt sip both; do
  run "$mode"
  state=$(grep -o '"state": *"[a-z]*"' "$work/$mode.status" | head -1 | cut -d'"' -f4)
  echo "$mode: cpu_s=$(cpu "$mode") peak_kb=$(awk '{print $3}' "$work/$mode.time") call=${state:-none}"
  sleep 1
done
awk -v s="$(cpu srt)" -v c="$(cpu sip)" -v b="$(cpu both)" \
  'BEGIN{printf "ratios: call/srt %.2f, both/srt %.2f (one encode serves both paths)\n", c/s, b/s}'

# Latency of the room's sound on its way to the far end.
run sip GST_TRACERS="latency(flags=pipeline)" GST_DEBUG="GST_TRACER:7" GST_DEBUG_NO_COLOR=1
echo "latency tracer, mean per pipeline (source -> sink, ms):"
grep 'latency, src-element-id=(string)[^%]' "$work/sip.log" |
  sed -n 's/.*src-element=(string)\([^,]*\),.*sink-element=(string)\([^,]*\),.*time=(guint64)\([0-9]*\).*/\1 \2 \3/p' |
  awk '{k=$1" -> "$2; s[k]+=$3; n[k]++} END {for (k in s) printf "  %-40s %7.1f ms (%d buffers)\n", k, s[k]/n[k]/1e6, n[k]}' | sort
cat <<EOF
not seen by the tracer (settings, not measurements):
  inter hop mic -> encode (interaudiosrc)   25 ms periods (period-time; it reports 100 ms)
  inter hop encode -> call (appsink/appsrc) under 1 ms (a queue, no clock wait)
  call pipeline appsrc -> udpsink            G.722 encode and payloading; the tracer's probe
                                             does not cross rtpbin's send side
  G.722 packet time                          20 ms
  loopback network                           under 1 ms
  far end jitter buffer + decode + playout   baresip's own (audio_buffer in its config; 20-160 ms adaptive)
EOF
