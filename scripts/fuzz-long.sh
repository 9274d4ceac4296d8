#!/usr/bin/env bash
# Long libFuzzer runs (not run by CI): every fuzz target, or the ones named,
# to at least RUNS executions each, then a table of what each reached.
#   scripts/fuzz-long.sh [RUNS] [TARGET...]     RUNS default 10000000;
#                                               TARGET: data or fuzz-data
# Builds build-fuzz (the options scripts/test.sh uses) if needed. New inputs
# go to scratch corpora in a temporary directory removed at exit; the seed
# corpora in the source tree are only read. An input that crashes, leaks,
# times out or runs out of memory stops that target's run and is kept in
# build-fuzz/fuzz-long/artifacts/<target>/ (reported in the table).
# Resumable: results accumulate in build-fuzz/fuzz-long/results.tsv, and a
# target that already reached RUNS without a finding is not run again
# (VTPM_FUZZ_FORCE=1 runs it anyway).
#
# Environment: VTPM_FUZZ_BUILD (default build-fuzz), VTPM_FUZZ_FORCE,
#   VTPM_FUZZ_ARGS (more libFuzzer options, e.g. -jobs=2 -workers=2 on a
#   machine with cores to spare: the counts are then per job).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-10000000}
[ $# -gt 0 ] && shift
case $runs in '' | *[!0-9]*) echo "usage: $0 [RUNS] [TARGET...]" >&2; exit 2 ;; esac
build=${VTPM_FUZZ_BUILD:-build-fuzz}
out=$build/fuzz-long
results=$out/results.tsv

if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$build" -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dintegration_tests=false
fi
# name, executable and seed corpus of every fuzz target: the executables are
# the fuzz-* targets, their corpora the arguments of their fuzz-suite tests.
mapfile -t all < <(
  { meson introspect --targets "$build"; echo; meson introspect --tests "$build"; } | python3 -c '
import json, os, sys
targets_json, tests_json = sys.stdin.read().split("\n\n", 1)
exes = {t["name"]: t["filename"][0] for t in json.loads(targets_json)
        if t["type"] == "executable" and t["name"].startswith("fuzz-")}
corpus = {t["name"]: t["cmd"][-1] for t in json.loads(tests_json)
          if any(s.split(":")[-1] == "fuzz" for s in t["suite"])}
for name in sorted(exes):
    if name not in corpus:
        sys.exit(f"no fuzz test (seed corpus) for {name}")
    print(name, exes[name], corpus[name], sep="\t")')
[ ${#all[@]} -gt 0 ] || { echo "no fuzz targets in $build (configured with -Dfuzzing=true?)" >&2; exit 1; }

declare -A exe_of seeds_of
names=()
for row in "${all[@]}"; do
  IFS=$'\t' read -r name exe seeds <<<"$row"
  exe_of[$name]=$exe seeds_of[$name]=$seeds
  names+=("$name")
done
if [ $# -gt 0 ]; then
  names=()
  for t in "$@"; do
    t=fuzz-${t#fuzz-}
    [ -n "${exe_of[$t]:-}" ] || { echo "unknown fuzz target $t" >&2; exit 2; }
    names+=("$t")
  done
fi

# Only the fuzz targets: the rest of the tree is not needed here.
mapfile -t rel < <(for n in "${names[@]}"; do realpath --relative-to="$build" "${exe_of[$n]}"; done)
ninja -C "$build" "${rel[@]}"

mkdir -p "$out"
touch "$results"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vtpm-fuzz-long.XXXXXX")
# Targets that keep an image in memory (fuzz-linear) make it under
# VTPM_FUZZ_SHM: removed here even when the target is stopped by a signal.
shm_parent=/dev/shm
[ -d "$shm_parent" ] && [ -w "$shm_parent" ] || shm_parent=$scratch
export VTPM_FUZZ_SHM
VTPM_FUZZ_SHM=$(mktemp -d "$shm_parent/vtpm-fuzz-long.XXXXXX")
trap 'rm -rf "$scratch" "$VTPM_FUZZ_SHM"' EXIT INT TERM
# tss2-mu logs every malformed structure it is given: that is the point here.
export TSS2_LOG=${TSS2_LOG:-all+none}

# The best earlier result of a target with at least RUNS executions and no finding.
done_before() {
  awk -F'\t' -v t="$1" -v n="$runs" '$1 == t && $2 >= n && $5 == 0 { found = 1 } END { exit !found }' "$results"
}

for name in "${names[@]}"; do
  if [ "${VTPM_FUZZ_FORCE:-0}" != 1 ] && done_before "$name"; then
    echo "$name: already run to >= $runs executions (VTPM_FUZZ_FORCE=1 to run again)"
    continue
  fi
  work=$scratch/$name
  artifacts=$out/artifacts/$name
  mkdir -p "$work/corpus" "$artifacts"
  echo "$name: $runs executions from ${seeds_of[$name]} ..."
  start=$(date +%s)
  exe=$(realpath "${exe_of[$name]}") seeds=$(realpath "${seeds_of[$name]}") keep=$(realpath "$artifacts")
  # The working directory is scratch too: a target may write beside itself.
  # shellcheck disable=SC2086
  (cd "$work" && TMPDIR=$work "$exe" -runs="$runs" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
     -artifact_prefix="$keep/" ${VTPM_FUZZ_ARGS:-} corpus "$seeds" >"$work/log" 2>&1) || true
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$work/log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -1 | cut -d' ' -f2)
  # Crashes, leaks, timeouts and OOMs are findings; a "slow unit" (over 10 s
  # of wall clock) is reported apart: on a loaded machine a niced run's
  # units get slow without being slow (rerun it to see).
  found=$(find "$artifacts" -type f -newermt "@$start" ! -name 'slow-unit-*' | wc -l)
  slow=$(find "$artifacts" -type f -newermt "@$start" -name 'slow-unit-*' | wc -l)
  [ "$slow" -eq 0 ] || echo "$name: $slow slow unit(s) kept in $artifacts (rerun each: $exe FILE)" >&2
  cp "$work/log" "$out/$name.log"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${execs:-0}" "$secs" "${cov:-0}" "$found" "$(date -u +%F)" >>"$results"
  if [ "$found" -gt 0 ]; then
    echo "$name: FOUND $found input(s), see $artifacts and $out/$name.log" >&2
    grep -m3 -E '^==[0-9]+==ERROR|^SUMMARY' "$work/log" >&2 || true
  fi
  rm -rf "$work"
done

# The table: each target's latest result.
printf '\n%-18s %12s %8s %9s %7s %8s  %s\n' target executions seconds exec/s edges findings date
status=0
for name in "${names[@]}"; do
  line=$(awk -F'\t' -v t="$name" '$1 == t { l = $0 } END { print l }' "$results")
  [ -n "$line" ] || continue
  IFS=$'\t' read -r _ execs secs cov found day <<<"$line"
  rate=$(( secs > 0 ? execs / secs : execs ))
  printf '%-18s %12s %8s %9s %7s %8s  %s\n' "$name" "$execs" "$secs" "$rate" "$cov" "$found" "$day"
  [ "$found" -eq 0 ] || status=1
  [ "$execs" -ge "$runs" ] || status=1
done
exit $status
