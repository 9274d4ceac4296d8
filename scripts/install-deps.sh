#!/usr/bin/env bash
# Install what libvtpm needs to build, test and run its demo on Debian 12.
# Idempotent: packages already present are left alone.
set -euo pipefail

PKGS=(
  build-essential g++ meson ninja-build pkg-config python3
  libtpms-dev libssl-dev libglib2.0-dev libtss2-dev libseccomp-dev catch2
  clang libclang-rt-14-dev clang-format
  swtpm swtpm-tools tpm2-tools gdb strace
  qemu-system-x86 qemu-utils busybox-static cpio linux-image-cloud-amd64
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
  libpixman-1-dev libfdt-dev  # qemu-patches/build.sh: the patched QEMU the tests run
  libfuse3-dev  # vtpm-bridge cuse (the CUSE front end)
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
