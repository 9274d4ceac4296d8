#!/usr/bin/env bash
# Regenerate the golden state fixtures with Debian's swtpm 0.7.1 (run once;
# the outputs are committed so every later version proves it reads them).
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)/swtpm-0.7.1
rm -rf "$out"; mkdir -p "$out"
work=$(mktemp -d); trap 'rm -rf "$work"; kill $(jobs -p) 2>/dev/null || true' EXIT
printf '%s' 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff > "$out/key.hex"
printf '%s' 'secretpass' > "$out/passphrase"
printf '%s' ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100 > "$out/migkey.hex"

make() {   # name, tpm2flag, extra swtpm options...
  local name=$1 t=$2; shift 2
  local d=$work/$name; mkdir -p "$d"
  swtpm socket $t --tpmstate dir="$d" --ctrl type=unixio,path="$d/ctrl" \
      --flags not-need-init,startup-clear "$@" &
  local pid=$!
  for _ in $(seq 100); do [ -S "$d/ctrl" ] && break; sleep 0.02; done
  swtpm_ioctl --unix "$d/ctrl" -v
  swtpm_ioctl --unix "$d/ctrl" --save permanent "$out/$name.permanent.blob"
  swtpm_ioctl --unix "$d/ctrl" -s
  wait $pid || true
  cp "$d"/tpm*-00.* "$out/" 2>/dev/null || true
  for f in "$d"/tpm*-00.*; do mv "$out/$(basename "$f")" "$out/$name.$(basename "$f")"; done
}
make plain --tpm2
make keyfile --tpm2 --key file="$out/key.hex",mode=aes-256-cbc
make pwdfile --tpm2 --key pwdfile="$out/passphrase",mode=aes-256-cbc
make migkey --tpm2 --migration-key file="$out/migkey.hex",mode=aes-256-cbc
make tpm12 ""
ls -la "$out"
