#!/usr/bin/env bash
# Build and run the side-by-side benchmark: our bridge vs Debian's swtpm.
#   bench/run.sh [--quick] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || meson setup build
ninja -C build swtpm-bridge/vtpm-bridge bench/vtpm-bench >/dev/null
exec build/bench/vtpm-bench --ours build/swtpm-bridge/vtpm-bridge --theirs /usr/bin/swtpm "$@"
