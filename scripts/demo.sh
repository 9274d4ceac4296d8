#!/usr/bin/env bash
# The main job: set everything up, build, and boot a VM under QEMU with our
# vTPM: measured boot, vAIK attestation rooted in the host TPM, save and
# restore verified against guest memory.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build
ninja -C build
VTPM_BUILD_DIR="$PWD/build" exec python3 scripts/demo.py "$PWD/build/swtpm-bridge/vtpm-bridge"
