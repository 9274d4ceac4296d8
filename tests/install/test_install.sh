#!/usr/bin/env bash
# `meson install` into a scratch prefix, then: pkg-config finds vtpm, the C
# example compiles and links against the installed library and runs on a
# fresh state directory, <libexecdir>/libvtpm/swtpm is the bridge and
# <libexecdir>/libvtpm/swtpm_setup is vtpm-setup.
set -euo pipefail
builddir=$1
srcdir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
meson install -C "$builddir" --destdir "$work/dest" --no-rebuild >/dev/null
# meson installs under DESTDIR + the configured prefix; find the pc file.
pc=$(find "$work/dest" -name vtpm.pc | head -1)
[ -n "$pc" ] || { echo "FAIL: vtpm.pc not installed"; exit 1; }
root=$(dirname "$(dirname "$(dirname "$pc")")")   # .../<prefix>/lib/<triplet>?/pkgconfig
instprefix=$(pkg-config --variable=prefix "$pc")
export PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR=$work/dest
cflags=$(pkg-config --cflags vtpm)
libs=$(pkg-config --libs vtpm)
echo "pkg-config vtpm: $cflags $libs"
cc -Wall -Werror "$srcdir/examples/c_api_example.c" $cflags $libs -o "$work/example"
libdir=$(dirname "$(find "$work/dest" -name 'libvtpm.so.0' | head -1)")
mkdir "$work/state"
LD_LIBRARY_PATH=$libdir "$work/example" "$work/state"
[ -f "$work/state/tpm2-00.permall" ] || { echo "FAIL: no permall written"; exit 1; }
link=$(find "$work/dest" -path '*libexec/libvtpm/swtpm' | head -1)
[ -L "$link" ] || { echo "FAIL: <libexecdir>/libvtpm/swtpm missing"; exit 1; }
case "$(readlink "$link")" in
  "$instprefix"/bin/vtpm-bridge) echo "ok: $link -> $(readlink "$link")" ;;
  *) echo "FAIL: swtpm entry point points to $(readlink "$link")"; exit 1 ;;
esac
link=$(find "$work/dest" -path '*libexec/libvtpm/swtpm_setup' | head -1)
[ -L "$link" ] || { echo "FAIL: <libexecdir>/libvtpm/swtpm_setup missing"; exit 1; }
case "$(readlink "$link")" in
  "$instprefix"/bin/vtpm-setup) echo "ok: $link -> $(readlink "$link")" ;;
  *) echo "FAIL: swtpm_setup entry point points to $(readlink "$link")"; exit 1 ;;
esac
# libvirt runs `swtpm_setup --print-capabilities` by that name.
caps=$("$work/dest$instprefix/bin/vtpm-setup" --print-capabilities)
case "$caps" in
  *'"tpm-2.0"'*'"cmdarg-pwdfile-fd"'*) echo "ok: swtpm_setup capabilities: $caps" ;;
  *) echo "FAIL: capabilities: $caps"; exit 1 ;;
esac
for h in vtpm.h vtpm.hpp result.hpp; do
  [ -f "$(dirname "$pc")/../../include/vtpm/$h" ] || [ -n "$(find "$work/dest" -path "*include/vtpm/$h")" ] ||
    { echo "FAIL: header $h not installed"; exit 1; }
done
# What a host needs for the daemon: its unit, user, HOSTDIR, udev rule, man page.
for f in lib/systemd/system/vtpm-hostd.service lib/sysusers.d/libvtpm.conf lib/tmpfiles.d/libvtpm-tmpfiles.conf \
         lib/udev/rules.d/61-vtpm-hostd.rules sbin/vtpm-hostd; do
  [ -n "$(find "$work/dest" -path "*$f")" ] || { echo "FAIL: $f not installed"; exit 1; }
done
# A manual page for every installed program.
for prog in $(find "$work/dest" \( -path '*/bin/*' -o -path '*/sbin/*' \) -type f -printf '%f\n'); do
  [ -n "$(find "$work/dest" -path "*/man/man[18]/$prog.[18]*")" ] || { echo "FAIL: no manual page for $prog"; exit 1; }
  echo "ok: man page for $prog"
done
unit=$(find "$work/dest" -path '*systemd/system/vtpm-hostd.service')
grep -q "^User=vtpm-hostd" "$unit" && grep -q "^ExecStart=$instprefix/sbin/vtpm-hostd --dir " "$unit" ||
  { echo "FAIL: the unit does not run vtpm-hostd as its user"; exit 1; }
grep -q 'KERNEL=="tpmrm\[0-9\]\*".*OWNER="vtpm-hostd".*MODE="0600"' "$(find "$work/dest" -name 61-vtpm-hostd.rules)" ||
  { echo "FAIL: the udev rule does not give the TPM to vtpm-hostd alone"; exit 1; }
# A DESTDIR install creates no user on this machine.
! getent passwd vtpm-hostd >/dev/null || [ -n "${VTPM_HOSTD_USER_EXPECTED:-}" ] ||
  { echo "FAIL: a DESTDIR install created the vtpm-hostd user"; exit 1; }
echo "ok: vtpm-hostd unit, sysusers, tmpfiles, udev rule and man page installed"
# What the install's postinst step (install-host.sh: sysusers, tmpfiles) lays
# out, done into a scratch root instead of this machine: the daemon's user
# and HOSTDIR (0700), and the local CA directory owned by tss (libvirt's
# swtpm_user), as swtpm's package does for swtpm-localca.
if command -v systemd-sysusers >/dev/null && command -v systemd-tmpfiles >/dev/null; then
  sysroot=$work/sysroot
  mkdir -p "$sysroot/etc"
  touch "$sysroot/etc/passwd" "$sysroot/etc/group" "$sysroot/etc/shadow" "$sysroot/etc/gshadow"
  systemd-sysusers --root="$sysroot" "$(find "$work/dest" -path '*sysusers.d/libvtpm.conf')" >/dev/null 2>&1
  systemd-tmpfiles --create --root="$sysroot" "$(find "$work/dest" -path '*tmpfiles.d/libvtpm-tmpfiles.conf')"
  uid_of() { awk -F: -v u="$1" '$1 == u { print $3 }' "$sysroot/etc/passwd"; }
  statedir=$(find "$sysroot" -type d -name localca -path '*lib/libvtpm/*' | head -1)
  [ -n "$statedir" ] || { echo "FAIL: tmpfiles made no local CA directory"; exit 1; }
  [ "$(stat -c '%u %a' "$statedir")" = "$(uid_of tss) 750" ] ||
    { echo "FAIL: the local CA directory is $(stat -c '%u %a' "$statedir"), want tss 750"; exit 1; }
  hostdir=$(dirname "$statedir")/host
  [ "$(stat -c '%u %a' "$hostdir")" = "$(uid_of vtpm-hostd) 700" ] ||
    { echo "FAIL: HOSTDIR is $(stat -c '%u %a' "$hostdir"), want vtpm-hostd 700"; exit 1; }
  echo "ok: sysusers and tmpfiles lay out HOSTDIR (vtpm-hostd 0700) and the local CA (tss 0750)"
else
  echo "FAIL: systemd-sysusers/systemd-tmpfiles missing"; exit 1
fi
[ -n "$(find "$work/dest" -path '*doc/libvtpm/examples/bridge.conf')" ] || { echo "FAIL: sample bridge.conf not installed"; exit 1; }
echo "ok: a commented sample bridge.conf"
echo "install test passed"
