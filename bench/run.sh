#!/usr/bin/env bash
# Run the side-by-side benchmark: our bridge vs Debian's swtpm. Builds nothing:
# build first with `ninja -C build bench/vtpm-bench swtpm-bridge/vtpm-bridge`.
#   bench/run.sh [--quick] [--json FILE] [--rounds N] [--cpu N] [--ours PATH] [--theirs PATH]
# Environment: BUILD_DIR (default build), OURS (default $BUILD_DIR/swtpm-bridge/vtpm-bridge).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
bench="$build/bench/vtpm-bench"
ours="${OURS:-$build/swtpm-bridge/vtpm-bridge}"

if [ ! -x "$bench" ]; then
    echo "run.sh: $bench not built; run: ninja -C $build bench/vtpm-bench" >&2
    exit 2
fi
args=()
case " $* " in
    *" --ours "*) ;;
    *)
        if [ ! -x "$ours" ]; then
            echo "run.sh: $ours not built; run: ninja -C $build swtpm-bridge/vtpm-bridge (or pass --ours PATH)" >&2
            exit 2
        fi
        args+=(--ours "$ours")
        ;;
esac
exec "$bench" "${args[@]}" "$@"
