#!/usr/bin/env bash
# Build the test guest: the Debian cloud kernel and a busybox initramfs whose
# /init is guest/init, plus any programs given after OUTDIR (with the shared
# libraries they and tpm2-tss's device TCTI need).
# Output: OUTDIR/vmlinuz, OUTDIR/initrd.img
set -euo pipefail
out=$1
shift
extra=("$@")
here=$(cd "$(dirname "$0")" && pwd)
kernel=$(ls -1 /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -1)
[ -n "$kernel" ] || { echo "no cloud kernel in /boot (install linux-image-cloud-amd64)" >&2; exit 1; }
mkdir -p "$out"
stamp="$out/.stamp"
fresh=1
for f in "$here/init" "$kernel" "${extra[@]}"; do [ -f "$stamp" ] && [ "$stamp" -nt "$f" ] || fresh=0; done
[ "$(cat "$stamp" 2>/dev/null)" = "${extra[*]}" ] || fresh=0
if [ "$fresh" = 1 ]; then exit 0; fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp}
cp /bin/busybox "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
cp "$here/init" "$root/init"
if [ ${#extra[@]} -gt 0 ]; then
  tcti=$(ls /usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0 2>/dev/null || true)
  for f in "${extra[@]}"; do cp "$f" "$root/bin/"; done
  for lib in $(ldd "${extra[@]}" $tcti | grep -v ':$' | grep -o '/[^ ]*\.so[^ ]*' | sort -u) $tcti; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
fi
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initrd.img.tmp"
mv "$out/initrd.img.tmp" "$out/initrd.img"
cp "$kernel" "$out/vmlinuz"
echo "${extra[*]}" > "$stamp"
