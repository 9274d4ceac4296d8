#!/usr/bin/env bash
# Set everything up and run every test: the README's test command.
#   unit tests (Catch2), fuzz replays, integration tests against real QEMU,
#   swtpm_ioctl, tpm2-tools and Debian's swtpm; then the unit, fuzz and
#   swtpm_ioctl tests again in an ASan+UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

# Regular build.
[ -f build/build.ninja ] || meson setup build
ninja -C build
# Sanitizer build.
[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
ninja -C build-asan

status=0
summary=()
run_suite() {
  local dir=$1; shift
  local log
  if meson test -C "$dir" --print-errorlogs "$@"; then :; else status=1; fi
  log="$dir/meson-logs/testlog.json"
  if [ -f "$log" ]; then
    summary+=("$(python3 - "$log" <<'PY'
import json, sys
ok = fail = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["result"] in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r["result"] == "SKIP": skip += 1
    else: fail += 1
print(ok, fail, skip)
PY
)")
  fi
}

run_suite build
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-asan --suite unit --suite fuzz --suite sanitizer

passed=0; failed=0; skipped=0
for s in "${summary[@]}"; do
  read -r o f k <<<"$s"
  passed=$((passed + o)); failed=$((failed + f)); skipped=$((skipped + k))
done
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit $status
