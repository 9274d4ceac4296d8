#!/bin/sh
# After `meson install`: create the daemon's user and HOSTDIR now, as the
# package's postinst would. Only for a real install as root: a DESTDIR
# (staging, tests) changes nothing on this machine.
set -e
[ -z "${DESTDIR:-}" ] || exit 0
[ "$(id -u)" = 0 ] || { echo "install-host: not root, leaving users and directories alone"; exit 0; }
libdir=$1
command -v systemd-sysusers >/dev/null && systemd-sysusers "$libdir/sysusers.d/libvtpm.conf"
command -v systemd-tmpfiles >/dev/null && systemd-tmpfiles --create "$libdir/tmpfiles.d/libvtpm-tmpfiles.conf"
command -v udevadm >/dev/null && udevadm control --reload 2>/dev/null || true
exit 0
