#!/usr/bin/env bash
# Snapshot verification costs (issue 5):
#  1. guest-RAM hash throughput against `openssl speed -evp sha256 -multi N`
#     in the same run (build/bench/vtpm-snapshot-bench);
#  2. the time a save and a restore gain per GiB of guest RAM, our bridge
#     with verification against our bridge without and Debian's swtpm, with
#     Debian swtpm standing in for the host TPM that signs the records.
#   bench/snapshot.sh [MiB ...]     (default 256 1024 4096; BUILD_DIR defaults to build)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
bin="$build/swtpm-bridge"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(256 1024 4096)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
export TSS2_LOG=all+none

echo "== guest-RAM hashing"
"$build/bench/vtpm-snapshot-bench" "${sizes[@]}"

echo "== time added to save and restore"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir "$work/hw" "$work/vm"
swtpm_setup --tpm2 --tpm-state "$work/hw" --createek --pcr-banks sha1,sha256 >/dev/null
swtpm socket --tpm2 --tpmstate dir="$work/hw" --server type=tcp,port="$port" --ctrl type=tcp,port=$((port + 1)) \
    --flags not-need-init,startup-clear --pid file="$work/hw.pid" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/hw.pid" ] && break; sleep 0.05; done
tcti="swtpm:host=127.0.0.1,port=$port"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/owner.pem"
"$bin/vtpm-host" provision --tcti "$tcti" --dir "$work/host" --owner-key "$work/owner.pem" >/dev/null
"$bin/vtpm-hostd" --dir "$work/host" --tcti "$tcti" --socket "$work/hostd.sock" --log level=0 &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/hostd.sock" ] && break; sleep 0.05; done
"$bin/vtpm-setup" --tpm2 --tpm-state "$work/vm" --createek --config /dev/null >/dev/null
python3 "$root/bench/snapshot_restore.py" "$bin/vtpm-bridge" "$work/hostd.sock" "$work/vm" "${sizes[@]}"
