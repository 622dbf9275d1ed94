#!/usr/bin/env bash
# Build the diemcau Debian package from this checkout (the OS image installs
# it). Reproducible in content: file times are clamped to the last commit
# (SOURCE_DATE_EPOCH) and owners are root.
# Usage: image/build-deb.sh [BINARY] [OUTDIR]   (default: a release build, target/deb)
set -euo pipefail
# The package's modes must not depend on the builder's umask (dpkg-deb
# refuses a 0700 control directory, and the box wants 0755 directories).
umask 022
cd "$(dirname "$0")/.."
bin=${1:-}
out=${2:-target/deb}
if [ -z "$bin" ]; then
  cargo build --release --locked
  bin=target/release/diemcau
fi
version=$(awk -F'"' '/^version = / && !v {v = $2} END {print v}' Cargo.toml)
arch=$(dpkg --print-architecture)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"

install -D -m 0755 "$bin" "$root/usr/bin/diemcau"
# Debug info stays in the build tree; the box gets the lean binary.
if command -v strip >/dev/null; then strip --strip-debug "$root/usr/bin/diemcau"; fi
install -D -m 0644 systemd/diemcau.service "$root/usr/lib/systemd/system/diemcau.service"
install -D -m 0644 systemd/diemcau.sysusers.conf "$root/usr/lib/sysusers.d/diemcau.conf"
install -D -m 0644 systemd/diemcau.tmpfiles.conf "$root/usr/lib/tmpfiles.d/diemcau.conf"
install -D -m 0644 hw/99-diemcau.rules "$root/usr/lib/udev/rules.d/99-diemcau.rules"
install -D -m 0644 config/example.toml "$root/usr/share/doc/diemcau/example.toml"
install -D -m 0644 README.md "$root/usr/share/doc/diemcau/README.md"
install -D -m 0644 docs/mqtt-api.asyncapi.yaml "$root/usr/share/doc/diemcau/mqtt-api.asyncapi.yaml"
# What a technician, an archivist or an inspector needs beside the box: the
# guide, the room's sign, the recording format and its reference verifier.
install -D -m 0644 docs/HUONG-DAN-KY-THUAT.md "$root/usr/share/doc/diemcau/HUONG-DAN-KY-THUAT.md"
install -D -m 0644 docs/bien-bao-ghi-hinh.html "$root/usr/share/doc/diemcau/bien-bao-ghi-hinh.html"
install -D -m 0644 docs/RECORDING-FORMAT.md "$root/usr/share/doc/diemcau/RECORDING-FORMAT.md"
install -D -m 0755 tools/verify-recording.py "$root/usr/share/doc/diemcau/verify-recording.py"

mkdir -p "$root/DEBIAN"
# Installed-Size as dpkg-gencontrol counts it: each file's apparent size in
# KiB, rounded up. Not `du`, whose block counts depend on the filesystem the
# build runs on (XFS preallocation, for one) and so break reproducibility.
size=$(find "$root" -path "$root/DEBIAN" -prune -o \( -type f -o -type l \) -printf '%s\n' |
  awk '{ kib += int(($1 + 1023) / 1024) } END { print kib + 0 }')
cat >"$root/DEBIAN/control" <<CONTROL
Package: diemcau
Version: $version
Architecture: $arch
Maintainer: diemcau developers <diemcau@localhost>
Installed-Size: $size
Section: video
Priority: optional
Depends: libc6, libgstreamer1.0-0 (>= 1.22), libgstreamer-plugins-base1.0-0 (>= 1.22),
 gstreamer1.0-plugins-base, gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad,
 gstreamer1.0-plugins-ugly, gstreamer1.0-libav, gstreamer1.0-x, gstreamer1.0-alsa,
 libasound2t64 | libasound2, fonts-dejavu-core, systemd
Description: commune bridge room for online citizen reception
 Captures the room's camera and microphone, streams them to the provincial
 hub over SRT, records every session with a hash chain and uploads it to the
 central archive, reports to the NOC over MQTT, and starts and stops sessions
 from one hardware button.
CONTROL
cat >"$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  systemd-sysusers diemcau.conf || true
  systemd-tmpfiles --create diemcau.conf || true
  udevadm control --reload-rules 2>/dev/null || true
  systemctl enable diemcau.service 2>/dev/null || true
fi
POSTINST
cat >"$root/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ "$1" = remove ]; then
  systemctl disable --now diemcau.service 2>/dev/null || true
fi
PRERM
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb="$out/diemcau_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$root" "$deb" >/dev/null
echo "$deb"
