#!/usr/bin/env bash
# Build the patched QEMU that test_qemu_patched runs: Debian 12's qemu 7.2
# source package with Debian's own stable updates, then
# qemu-7.2-vtpm-ram-digest.patch, configured for what the test needs
# (qemu-system-x86_64, TCG, the TPM backends) and nothing else.
#
#   qemu-patches/build.sh OUTDIR        -> OUTDIR/qemu-system-x86_64
#
# The source comes from check.sh's cache ($QEMU_SRC_CACHE, default
# ~/.cache/libvtpm-qemu-src; check.sh downloads it the first time and checks
# that the patch applies without fuzz). A build whose inputs (Debian
# version, patch, configure line) are unchanged is reused. It finds its
# firmware where Debian's QEMU does (qemu-system-data, seabios, ipxe-qemu).
#
# Exit status: 0 with the binary built, 1 if the build failed, 2 on bad use.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$(mkdir -p "$1" && cd "$1" && pwd)
cache=${QEMU_SRC_CACHE:-$HOME/.cache/libvtpm-qemu-src}
patch_72=$here/qemu-7.2-vtpm-ram-digest.patch
log() { printf 'qemu-patches/build.sh: %s\n' "$*" >&2; }

configure_args=(--target-list=x86_64-softmmu --without-default-features --enable-tcg --enable-tpm
                --enable-fdt=system --disable-docs --disable-werror --meson=/usr/bin/meson
                --prefix=/opt/libvtpm-qemu --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
                --disable-debug-info)
# (A prefix outside /usr: QEMU relocates configured paths under its prefix
# to where the binary is, and the firmware paths must stay Debian's. The
# binary is never installed there.)

# Source first: check.sh fetches it into the cache (exit 77 when it cannot).
if ! "$here/check.sh" >&2; then
    log "check.sh failed: no source to build, or the patch does not apply"
    exit 1
fi
dsc=$(ls -1 "$cache"/qemu_7.2*.dsc | sort -V | tail -n1)
orig=$(ls -1 "$cache"/qemu_*.orig.tar.* | grep -v '\.asc$' | head -n1)
debtar=$(ls -1 "$cache"/qemu_*.debian.tar.* | head -n1)
version=$(sed -n 's/^Version: //p' "$dsc" | head -n1)

stamp=$( { printf '%s\n' "$version" "${configure_args[*]}"; sha256sum "$patch_72" "$0" | cut -d' ' -f1; } |
         sha256sum | cut -d' ' -f1)
if [ -x "$out/qemu-system-x86_64" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "up to date: $out/qemu-system-x86_64 (Debian $version + vtpm-ram-digest)"
    exit 0
fi

rm -rf "$out/src" "$out/build" "$out/qemu-system-x86_64" "$out/.stamp"
mkdir -p "$out/src" "$out/build"
log "extracting Debian's qemu $version"
tar -xf "$orig" -C "$out/src" --strip-components=1
tar -xf "$debtar" -C "$out/src"
# Debian's patches to QEMU itself come before the first '#' in series (the
# ones after it are for the firmware ROMs, which Debian builds and we do not);
# the qtest one is needed because Debian's tree has no roms to depend on.
while read -r p _; do
    case $p in '#'*) break ;; '') continue ;; esac
    patch -d "$out/src" -p1 -s --forward --no-backup-if-mismatch <"$out/src/debian/patches/$p"
done <"$out/src/debian/patches/series"
patch -d "$out/src" -p1 -s --forward --no-backup-if-mismatch \
    <"$out/src/debian/patches/ignore-roms-dependency-in-qtest.patch"
log "applying $(basename "$patch_72")"
patch -d "$out/src" -p1 -s --fuzz=0 --no-backup-if-mismatch <"$patch_72"

log "configuring (${configure_args[*]})"
(cd "$out/build" && ../src/configure "${configure_args[@]}" >configure.log 2>&1) ||
    { tail -n 30 "$out/build/configure.log" >&2; log "configure failed"; exit 1; }
log "building qemu-system-x86_64 ($(nproc) jobs; about 6 minutes on 2 cores)"
ninja -C "$out/build" qemu-system-x86_64 >"$out/build/ninja.log" 2>&1 ||
    { tail -n 40 "$out/build/ninja.log" >&2; log "build failed"; exit 1; }
cp "$out/build/qemu-system-x86_64" "$out/qemu-system-x86_64.tmp"
mv "$out/qemu-system-x86_64.tmp" "$out/qemu-system-x86_64"
# The sources and objects are not needed once the binary is there.
rm -rf "$out/src" "$out/build"
printf '%s\n' "$stamp" >"$out/.stamp"
log "built $out/qemu-system-x86_64 (Debian $version + vtpm-ram-digest)"
