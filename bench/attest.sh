#!/usr/bin/env bash
# Identity costs (issue 4): a Debian swtpm stands in for the hardware TPM;
# provision + enroll a host, manufacture a VM state, issue, quote through our
# bridge, then vtpm-attest-bench times issuance, the raw host-TPM operations
# it uses, and verification throughput on one core.
#   bench/attest.sh [ROUNDS]     (BUILD_DIR defaults to build)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
bin="$build/swtpm-bridge"
rounds="${1:-20}"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
export TSS2_LOG=all+none
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir "$work/hw" "$work/vm"
# Debian's swtpm_setup with a private swtpm-localca (never the shared /var/lib/swtpm-localca).
ca="$work/swtpm-localca"
mkdir "$ca"
printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
    "$ca" "$ca" "$ca" "$ca" > "$work/swtpm-localca.conf"
printf -- '--platform-manufacturer Fedora\n--platform-version 2.1\n--platform-model QEMU\n' > "$work/swtpm-localca.options"
printf 'create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\n' \
    "$work/swtpm-localca.conf" "$work/swtpm-localca.options" > "$work/swtpm_setup.conf"
swtpm_setup --tpm2 --tpm-state "$work/hw" --createek --create-ek-cert --pcr-banks sha1,sha256 \
    --config "$work/swtpm_setup.conf" >/dev/null
swtpm socket --tpm2 --tpmstate dir="$work/hw" --server type=tcp,port="$port" --ctrl type=tcp,port=$((port + 1)) \
    --flags not-need-init,startup-clear --pid file="$work/hw.pid" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/hw.pid" ] && break; sleep 0.05; done
tcti="swtpm:host=127.0.0.1,port=$port"
cat "$ca/issuercert.pem" "$ca/swtpm-localca-rootca-cert.pem" > "$work/roots.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/owner.pem"
"$bin/vtpm-host" provision --tcti "$tcti" --dir "$work/host" --owner-key "$work/owner.pem" >/dev/null
"$bin/vtpm-host" enroll --tcti "$tcti" --dir "$work/host" --ca "$work/ca" --ek-roots "$work/roots.pem" >/dev/null
echo "localca_dir = $work/localca" > "$work/setup.conf"
"$bin/vtpm-setup" --tpm2 --tpm-state "$work/vm" --createek --create-ek-cert --config "$work/setup.conf" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/u.key" -out "$work/user.pem" \
    -subj /CN=tenant -days 3 2>/dev/null
nonce=$(openssl rand -hex 20)
"$bin/vtpm-hostd" --dir "$work/host" --tcti "$tcti" --socket "$work/hostd.sock" --ek-ca "$work/localca" --log level=0 &
hostd=$!
for _ in $(seq 100); do [ -S "$work/hostd.sock" ] && break; sleep 0.05; done
"$bin/vtpm-attest" issue --hostd "$work/hostd.sock" --state-dir "$work/vm" \
    --vm-uuid 6c1f8e22-4b6f-4d0e-9a51-0d6c3f1b2a77 --user-cert "$work/user.pem" --nonce "$nonce" --out "$work/out" \
    >/dev/null
kill "$hostd"; wait "$hostd" 2>/dev/null || true
vport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin/vtpm-bridge" socket --tpm2 --tpmstate dir="$work/vm" --server type=tcp,port="$vport" \
    --ctrl type=tcp,port=$((vport + 1)) --flags not-need-init,startup-clear --pid file="$work/vm.pid" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/vm.pid" ] && break; sleep 0.05; done
t0=$(date +%s%N)
"$bin/vtpm-attest" quote --tcti "swtpm:host=127.0.0.1,port=$vport" --nonce "$nonce" --out "$work/ev" >/dev/null
echo "vtpm-attest quote (CLI, incl. process start): $(( ($(date +%s%N) - t0) / 1000 )) µs"
kill "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true
cat "$work/ca/issuer-cert.pem" "$work/ca/root-cert.pem" > "$work/ca.pem"
"$build/bench/vtpm-attest-bench" "$tcti" "$work/host" "$work/vm" "$work/user.pem" "$work/host/ak-cert.pem" \
    "$work/ca.pem" "$work/ev" "$nonce" "$rounds" "$bin/vtpm-hostd"
