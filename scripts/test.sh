#!/usr/bin/env bash
# Set everything up and run every test: the README's test command.
#   unit tests (Catch2), fuzz replays, integration tests against real QEMU,
#   swtpm_ioctl, tpm2-tools and Debian's swtpm; then the unit, fuzz and
#   sanitizer-suite tests again in an ASan+UBSan build, the page hasher
#   (which uses all cores) under ThreadSanitizer, and a time-boxed libFuzzer
#   run of every fuzz target where clang is installed.
#
# Environment:
#   VTPM_EXPECT_SKIP="name1 name2"  tests allowed to skip (exit 77), by meson
#                                   test name (e.g. qemu-patches); any other
#                                   skip fails the run. Default: integ-cuse
#                                   where /dev/cuse is missing, else none.
#   VTPM_TESTS="name1 name2"        run only these meson tests (both builds)
#   VTPM_NO_ASAN=1                  leave out the sanitizer builds (ASan, TSan, libFuzzer)
#
# Prints the number of checks each test ran (its "# N checks passed" line)
# and fails if the run changed the system directories the tests must leave
# alone (/var/lib/libvtpm, /etc/libvtpm, /etc/libvirt, /var/lib/swtpm-localca).
set -euo pipefail
cd "$(dirname "$0")/.."
# The CUSE device test needs the kernel's CUSE driver; where /dev/cuse is
# missing (as in these containers) it skips with that reason, and only then
# is the skip expected.
[ -e /dev/cuse ] || VTPM_EXPECT_SKIP="${VTPM_EXPECT_SKIP:-} integ-cuse"

scripts/install-deps.sh

# Regular build.
[ -f build/build.ninja ] || meson setup build
ninja -C build
# Sanitizer build.
if [ "${VTPM_NO_ASAN:-0}" != 1 ]; then
  [ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
  ninja -C build-asan
  # ThreadSanitizer: only the threaded code (the page hasher) is built.
  [ -f build-tsan/build.ninja ] || meson setup build-tsan -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debug \
    -Dintegration_tests=false
  ninja -C build-tsan tests/unit/snapshot/unit-page-hasher
  # libFuzzer (clang, ASan+UBSan): only the fuzz targets are built.
  if command -v clang++ >/dev/null; then
    [ -f build-fuzz/build.ninja ] || CC=clang CXX=clang++ meson setup build-fuzz -Dfuzzing=true \
      -Db_sanitize=address,undefined -Db_lundef=false -Dintegration_tests=false
    mapfile -t fuzz_exes < <(meson introspect --targets build-fuzz | python3 -c '
import json, os, sys
for t in json.load(sys.stdin):
    if t["type"] == "executable" and t["name"].startswith("fuzz-"):
        print(os.path.relpath(t["filename"][0], os.path.abspath("build-fuzz")))')
    ninja -C build-fuzz "${fuzz_exes[@]}"
  fi
fi

# The patched QEMU (qemu-patches/) that integ-qemu_patched runs: Debian's
# QEMU 7.2 source with our patch, built once into build-qemu/ and reused
# while the source, the patch and the configuration stay the same.
read -r -a only_tests <<<"${VTPM_TESTS:-}"
if [ ${#only_tests[@]} -eq 0 ] || [[ " ${only_tests[*]} " == *" integ-qemu_patched "* ]]; then
  qemu-patches/build.sh build-qemu
  export VTPM_PATCHED_QEMU=$PWD/build-qemu/qemu-system-x86_64
fi

# A fingerprint of the system paths: existence, mtime, and every file below
# with its size and mtime.
SYSTEM_PATHS=(/var/lib/libvtpm /etc/libvtpm /etc/libvirt /var/lib/swtpm-localca)
system_fingerprint() {
  local p
  for p in "${SYSTEM_PATHS[@]}"; do
    if [ -e "$p" ]; then
      stat -c '%n %F %s %Y' "$p"
      find "$p" -mindepth 1 -printf '%p %y %s %T@\n' 2>/dev/null | sort
    else
      echo "$p absent"
    fi
  done
}
fp_before=$(mktemp)
fp_after=$(mktemp)
trap 'rm -f "$fp_before" "$fp_after"' EXIT
system_fingerprint >"$fp_before"

read -r -a only <<<"${VTPM_TESTS:-}"
# The fuzz replays mutate with this seed; a failure is reproduced with it.
export VTPM_FUZZ_SEED=${VTPM_FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "fuzz replay seed: VTPM_FUZZ_SEED=$VTPM_FUZZ_SEED"
status=0
summary=()
run_suite() {
  local dir=$1; shift
  local log
  if meson test -C "$dir" --print-errorlogs "$@" "${only[@]}"; then :; else status=1; fi
  log="$dir/meson-logs/testlog.json"
  if [ -f "$log" ]; then
    summary+=("$(python3 - "$log" "$dir" "${VTPM_EXPECT_SKIP:-}" <<'PY'
import json, re, sys
log, build, expected = sys.argv[1], sys.argv[2], set(sys.argv[3].split())
ok = fail = skip = 0
for line in open(log):
    r = json.loads(line)
    res = r["result"]
    name = r["name"].split(" / ")[-1]  # "project:suites / name" -> name
    out = (r.get("stdout") or "") + (r.get("stderr") or "")
    m = re.findall(r"^# (\d+) checks passed", out, re.M)
    reason = re.findall(r"^# SKIP: (.*)$", out, re.M)
    counts = f"{m[-1]} checks" if m else "-"
    if res in ("OK", "EXPECTEDFAIL"):
        ok += 1
    elif res == "SKIP":
        if name in expected:
            skip += 1
        else:
            fail += 1
            res = "UNEXPECTED SKIP"
    else:
        fail += 1
    extra = f"  ({reason[-1]})" if reason else ""
    print(f"  {build:<11} {name:<28} {res:<16} {counts}{extra}", file=sys.stderr)
print(ok, fail, skip)
PY
)")
  fi
}

run_suite build
if [ "${VTPM_NO_ASAN:-0}" != 1 ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export VTPM_TIMEOUT_SCALE=${VTPM_TIMEOUT_SCALE:-4}
  run_suite build-asan --suite unit --suite fuzz --suite sanitizer
  if [ ${#only[@]} -eq 0 ]; then
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 run_suite build-tsan --no-rebuild unit-page-hasher
    if [ -f build-fuzz/build.ninja ]; then
      echo "libFuzzer: ${VTPM_FUZZ_SECONDS:-20} s per target"
      run_suite build-fuzz --no-rebuild --suite fuzz
    fi
  fi
fi

passed=0; failed=0; skipped=0
for s in "${summary[@]}"; do
  read -r o f k <<<"$s"
  passed=$((passed + o)); failed=$((failed + f)); skipped=$((skipped + k))
done
[ "$failed" -eq 0 ] || status=1

system_fingerprint >"$fp_after"
if ! diff -u "$fp_before" "$fp_after" >&2; then
  echo "FAIL: the run changed ${SYSTEM_PATHS[*]} (diff above)" >&2
  status=1
fi

echo "${passed} passed, ${failed} failed (unexpected skips count as failures), ${skipped} skipped as expected"
exit $status
