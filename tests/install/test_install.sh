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
echo "install test passed"
