#!/usr/bin/env bash
# Build the diemcau OS image: a bootable GPT disk image for x86-64 (EFI),
# Debian 13 (trixie) from Debian's own packages, with diemcau installed as a
# Debian package built from this checkout.
#
#   sudo bash image/build.sh [OUTDIR]          (default: target/image)
#
# Environment:
#   DIEMCAU_BINARY   use this diemcau binary instead of a release build
#   MIRROR           Debian mirror (default http://deb.debian.org/debian); for
#                    byte-identical package sets use a snapshot, e.g.
#                    https://snapshot.debian.org/archive/debian/20261101T000000Z
#   SOURCE_DATE_EPOCH  file times and ids (default: the last commit's time)
#   TECH_PASSWORD    password of the technician's console account "kythuat"
#                    (default: none, the account is locked)
#
# Layout (see docs/IMAGE.md):
#   1 diemcau-esp    FAT32  EFI system partition: systemd-boot, kernel, initrd
#   2 diemcau-root   ext4   the system, mounted read-only
#   3 diemcau-setup  FAT    "DIEMCAU": site.toml and certificates (technician)
#   4 diemcau-state  ext4   /var: recordings, logs, config; grows to fill the disk
set -euo pipefail
umask 022
cd "$(dirname "$0")/.."
repo=$PWD
SUITE=trixie                      # pinned: the image is Debian 13
MIRROR=${MIRROR:-http://deb.debian.org/debian}
out=$(realpath -m "${1:-target/image}")
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 1767225600)}
# Fixed ids derived from nothing random: the same build gives the same image.
DISK_GUID=4d1e3ca0-0000-4000-8000-00000000d1ca
ROOT_UUID=4d1e3ca0-0000-4000-8000-000000000002
STATE_UUID=4d1e3ca0-0000-4000-8000-000000000004
ESP_VOLID=D1E3CA01
SETUP_VOLID=D1E3CA03

if [ "$(id -u)" != 0 ]; then echo "build.sh: run as root (mmdebstrap, file owners)" >&2; exit 2; fi
need() { command -v "$1" >/dev/null || missing+=" $2"; }
missing=""
need mmdebstrap mmdebstrap; need mkfs.ext4 e2fsprogs; need mkfs.vfat dosfstools
need mcopy mtools; need sfdisk fdisk; need dpkg-deb dpkg
if [ -n "$missing" ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi

t0=$(date +%s)
phase() { echo "== $(( $(date +%s) - t0 ))s: $*"; }
work=$(mktemp -d /var/tmp/diemcau-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
mkdir -p "$out"

phase "diemcau Debian package"
deb=$(bash image/build-deb.sh "${DIEMCAU_BINARY:-}" "$work/deb")
version=$(dpkg-deb -f "$deb" Version)
# The package's own dependencies, installed from the archive with the system.
deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g' | grep -v '^$' | tr '\n' ',')

# What the box runs and nothing more: kernel, firmware for common mini PCs'
# graphics, sound and network, systemd's network, resolver and time sync,
# GStreamer (from the package's dependencies), fonts with Vietnamese
# diacritics (fonts-dejavu-core), and filesystem tools for the two fsck's.
pkgs="linux-image-amd64,initramfs-tools,zstd,login,passwd,mount,systemd,systemd-sysv,udev,dbus,kmod,\
systemd-resolved,systemd-timesyncd,systemd-repart,systemd-boot-efi,\
e2fsprogs,dosfstools,ca-certificates,iproute2,iputils-ping,less,\
firmware-linux-free,firmware-realtek,firmware-intel-graphics,firmware-intel-sound,\
firmware-amd-graphics,intel-media-va-driver,gstreamer1.0-vaapi,$deps"

phase "Debian $SUITE root file system (mmdebstrap)"
root=$work/root
mmdebstrap --mode=root --variant=apt --format=directory \
  --components=main,non-free-firmware \
  --aptopt='Acquire::Retries "3"' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/vi/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/diemcau/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --include="$pkgs" \
  --customize-hook="sync-in '$repo/image/rootfs' /" \
  --customize-hook="copy-in '$deb' /tmp" \
  --customize-hook='chroot "$1" dpkg -i /tmp/'"$(basename "$deb")" \
  --customize-hook='rm -f "$1"/tmp/*.deb' \
  --customize-hook='chroot "$1" systemctl enable diemcau.service diemcau-provision.service systemd-networkd.service systemd-resolved.service systemd-timesyncd.service' \
  --customize-hook='chroot "$1" systemctl mask getty@tty1.service' \
  --customize-hook='echo diemcau > "$1/etc/hostname"' \
  --customize-hook='ln -sf ../run/systemd/resolve/stub-resolv.conf "$1/etc/resolv.conf"' \
  --customize-hook='mkdir -p "$1/mnt/setup" "$1/var/lib/diemcau-etc" && chmod 0770 "$1/var/lib/diemcau-etc" && chroot "$1" chown root:diemcau /var/lib/diemcau-etc' \
  --customize-hook='chroot "$1" useradd -m -s /bin/bash -G diemcau,video,audio,input kythuat' \
  --customize-hook="if [ -n \"\${TECH_PASSWORD:-}\" ]; then echo \"kythuat:\$TECH_PASSWORD\" | chroot \"\$1\" chpasswd; fi" \
  --customize-hook='chroot "$1" update-initramfs -u -k all' \
  --customize-hook='chroot "$1" dpkg-query -W -f="\${Package} \${Version} \${Installed-Size}\n" > "$1/usr/share/doc/diemcau/packages.txt"' \
  "$SUITE" "$root" "$MIRROR" 2>&1 | grep -v '^I: \(running\|installing\|unpacking\|configuring\)' || { echo "mmdebstrap failed" >&2; exit 1; }
# Reproducible in content: no logs, caches or machine identity from the build.
rm -rf "$root"/var/log/* "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old \
  "$root"/var/lib/dpkg/*-old "$root"/etc/ssh/ssh_host_* "$root"/var/lib/systemd/random-seed
: > "$root/etc/machine-id"
mkdir -p "$root/var/log/journal"

phase "partitions"
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)
# gpt_auto off: the partitions are named in /etc/fstab, and the read-only
# root has no /efi to automount the ESP on.
cmdline="root=PARTLABEL=diemcau-root ro rootwait quiet console=ttyS0,115200 console=tty1 systemd.show_status=auto systemd.gpt_auto=0"
esp=$work/esp.img; setup=$work/setup.img; rootimg=$work/root.img; state=$work/state.img
# ESP: systemd-boot as the removable-media loader, no menu.
mkdir -p "$work/espdir/EFI/BOOT" "$work/espdir/loader/entries"
cp "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$work/espdir/EFI/BOOT/BOOTX64.EFI"
cp "$kernel" "$work/espdir/vmlinuz"
cp "$initrd" "$work/espdir/initrd.img"
printf 'default diemcau.conf\ntimeout 0\nconsole-mode keep\nrandom-seed-mode off\n' > "$work/espdir/loader/loader.conf"
printf 'title diemcau %s\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n' "$version" "$cmdline" \
  > "$work/espdir/loader/entries/diemcau.conf"
esp_mib=$(( $(du -sm "$work/espdir" | cut -f1) + 40 ))
[ $esp_mib -lt 64 ] && esp_mib=64
fat_image() { # IMG MIB LABEL VOLID DIR
  rm -f "$1"
  mkfs.vfat -C --invariant -i "$4" -n "$3" $( [ "$2" -ge 64 ] && echo -F 32 ) "$1" $(( $2 * 1024 )) >/dev/null
  find "$5" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  (cd "$5" && for f in *; do mcopy -s -p -m -i "$1" "$f" ::/; done)
}
fat_image "$esp" "$esp_mib" DIEMCAU-EFI "$ESP_VOLID" "$work/espdir"
# Setup partition: what the technician edits from a laptop.
mkdir -p "$work/setupdir/certs"
cp image/setup/* "$work/setupdir/" 2>/dev/null || true
cp image/setup/certs/* "$work/setupdir/certs/" 2>/dev/null || true
fat_image "$setup" 32 DIEMCAU "$SETUP_VOLID" "$work/setupdir"
# The system: everything but /var, read-only on the box.
mv "$root/var" "$work/var" && mkdir -p "$root/var"
# The same directories, empty, under the mount point: services that start
# before /var is mounted (systemd-resolved's private /var/tmp) find them.
(cd "$work/var" && find . -mindepth 1 -maxdepth 2 -type d -exec mkdir -p "$root/var/{}" \;)
mkdir -p "$work/var/lib/diemcau"
find "$root" "$work/var" -xdev -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + 2>/dev/null || true
ext4_image() { # IMG DIR LABEL UUID EXTRA_MIB
  local mib=$(( $(du -sm "$2" | cut -f1) * 115 / 100 + $5 ))
  rm -f "$1"
  E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -F -L "$3" -U "$4" -E "hash_seed=$4,root_owner=0:0" -d "$2" "$1" "${mib}M"
}
ext4_image "$rootimg" "$root" diemcau-root "$ROOT_UUID" 64
ext4_image "$state" "$work/var" diemcau-state "$STATE_UUID" 256

phase "disk image"
img=$out/diemcau-$version-amd64.img
mib() { echo $(( ($(stat -c %s "$1") + 1048575) / 1048576 )); }
e=$(mib "$esp"); r=$(mib "$rootimg"); s=$(mib "$setup"); v=$(mib "$state")
total=$(( 1 + e + r + s + v + 1 ))
rm -f "$img"; truncate -s "${total}M" "$img"
sfdisk -q --no-reread --no-tell-kernel "$img" <<SFDISK
label: gpt
label-id: $DISK_GUID
first-lba: 2048
start=1MiB, size=${e}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=4d1e3ca0-0000-4000-8000-0000000000e1, name=diemcau-esp
size=${r}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=4d1e3ca0-0000-4000-8000-0000000000e2, name=diemcau-root
size=${s}MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=4d1e3ca0-0000-4000-8000-0000000000e3, name=diemcau-setup
size=${v}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=4d1e3ca0-0000-4000-8000-0000000000e4, name=diemcau-state
SFDISK
off=1
for p in "$esp:$e" "$rootimg:$r" "$setup:$s" "$state:$v"; do
  dd if="${p%:*}" of="$img" bs=1M seek=$off conv=notrunc,sparse status=none
  off=$(( off + ${p##*:} ))
done
cp "$root/usr/share/doc/diemcau/packages.txt" "$out/diemcau-$version-amd64.packages"
touch -d "@$SOURCE_DATE_EPOCH" "$img"

phase "done"
echo "image:    $img"
echo "size:     $(du -h --apparent-size "$img" | cut -f1) ($(du -h "$img" | cut -f1) on disk, sparse)"
echo "sha256:   $(sha256sum "$img" | cut -d' ' -f1)"
# Per partition, so two builds can be compared part by part.
for p in esp:"$esp" root:"$rootimg" setup:"$setup" state:"$state"; do
  echo "  ${p%%:*}: $(sha256sum "${p#*:}" | cut -d' ' -f1)"
done
sfdisk -l "$img" | sed -n '/^Device/,$p'
echo "contents: $(wc -l < "$out/diemcau-$version-amd64.packages") Debian $SUITE packages (list: $out/diemcau-$version-amd64.packages)"
echo "largest installed packages (KiB):"
# awk stops printing, not reading: `head` would close the pipe early and,
# under pipefail, fail the build with SIGPIPE whenever sort is still writing.
sort -k3 -n -r "$out/diemcau-$version-amd64.packages" | awk 'NR <= 12 {printf "  %-40s %8s\n", $1" "$2, $3}'
echo "kernel:   $(basename "$kernel"); diemcau $version"
