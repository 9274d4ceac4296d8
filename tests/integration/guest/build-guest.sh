#!/usr/bin/env bash
# Build the test guest: the Debian cloud kernel and a busybox initramfs whose
# /init is guest/init. Output: OUTDIR/vmlinuz, OUTDIR/initrd.img
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
kernel=$(ls -1 /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -1)
[ -n "$kernel" ] || { echo "no cloud kernel in /boot (install linux-image-cloud-amd64)" >&2; exit 1; }
mkdir -p "$out"
stamp="$out/.stamp"
if [ -f "$stamp" ] && [ "$stamp" -nt "$here/init" ] && [ "$stamp" -nt "$kernel" ]; then exit 0; fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp}
cp /bin/busybox "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
cp "$here/init" "$root/init"
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initrd.img.tmp"
mv "$out/initrd.img.tmp" "$out/initrd.img"
cp "$kernel" "$out/vmlinuz"
touch "$stamp"
