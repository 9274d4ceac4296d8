#!/usr/bin/env bash
# A time-boxed libFuzzer run of one target (-Dfuzzing=true builds): new
# inputs go to a scratch corpus that is removed afterwards; the seed corpus
# in the source tree is only read. A crash leaves its input in the working
# directory (crash-*), named by libFuzzer.
#   run_libfuzzer.sh TARGET SEED_CORPUS [SECONDS]
set -euo pipefail
target=$1 seeds=$2 secs=${3:-${VTPM_FUZZ_SECONDS:-20}}
# tss2-mu logs every malformed structure it is given: that is the point here.
export TSS2_LOG=${TSS2_LOG:-all+none}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vtpm-fuzz-corpus.XXXXXX")
# Targets that keep an image in memory (fuzz-linear) make it under
# VTPM_FUZZ_SHM: removed here even when the target is stopped by a signal.
shm_parent=/dev/shm
[ -d "$shm_parent" ] && [ -w "$shm_parent" ] || shm_parent=$scratch
export VTPM_FUZZ_SHM
VTPM_FUZZ_SHM=$(mktemp -d "$shm_parent/vtpm-fuzz-corpus.XXXXXX")
trap 'rm -rf "$scratch" "$VTPM_FUZZ_SHM"' EXIT INT TERM
[ -n "$(ls -A "$seeds")" ] || { echo "no seed inputs in $seeds" >&2; exit 1; }
"$target" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "$scratch" "$seeds"
