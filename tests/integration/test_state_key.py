#!/usr/bin/env python3
"""state_key = sealed: a VM's state encrypted at rest with its own key,
which vtpm-hostd makes and keeps sealed to the (stand-in) host TPM; no
libvirt secret, no passphrase.

A state made by Debian's swtpm_setup without a key is adopted at the
bridge's first start (rewritten encrypted); an NV index written through
tpm2-tools is then in no state file in the clear, and the state opens again
with the same key after a restart. Attacks: the plaintext state put back
(refused, nothing changed), no vtpm-hostd, --key beside the sealed key (the
bridge does not start). `vtpm-host export-key` hands root the key (a
non-root peer of the daemon is refused), and Debian's swtpm opens the state
with it (--key file=K,format=hex,mode=aes-256-cbc)."""
import os
import stat

import harness as h

BIN = os.path.dirname(os.path.realpath(h.server_cmd()[0]))
HOST = os.path.join(BIN, "vtpm-host")
ENV = dict(os.environ, TSS2_LOG="all+none")
UUID = "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d"
CANARY = b"SEALED-STATE-CANARY-0123456789AB"  # 32 bytes, written to an NV index
NV = "0x1500016"


def files_of(state):
    return {n: open(os.path.join(state, n), "rb").read() for n in sorted(os.listdir(state))
            if n.startswith("tpm2-00.")}


def nvread(port, work):
    out = os.path.join(work, "nv.out")
    h.tpm2(port, "nvread", NV, "-C", "o", "-o", out)
    with open(out, "rb") as f:
        return f.read()


def test(work, stack):
    if not h.is_ours():
        h.skip("a libvtpm feature (vtpm-hostd and state_key = sealed)")
    hw, _, tcti, _ = h.stand_in_hw_tpm(stack, work, "hwtpm")
    host = os.path.join(work, "host")
    h.run([HOST, "provision", "--tcti", tcti, "--dir", host, "--owner-key", h.owner_key(work)], env=ENV)
    hostd, sock = h.host_daemon(stack, work, host, tcti)
    # A state where libvirt keeps it (the UUID in the path), made by Debian's
    # swtpm_setup without any key, as libvirt does for a VM without <encryption>.
    state = os.path.join(work, UUID, "tpm2")
    os.makedirs(state)
    h.swtpm_setup(work, "--tpm2", "--tpm-state", state, "--createek", "--create-ek-cert")
    plain = files_of(state)
    h.check(b"swtpm-localca" in plain["tpm2-00.permall"],
            "swtpm_setup's state is plaintext (the EK certificate's issuer is readable)")
    sealed = ["--vtpm-host", f"socket={sock}", "--vtpm-state-key", "sealed", "--vm-memory", "policy=skip",
              "--log", f"file={work}/bridge.log,level=20"]

    # Fail closed at start: no daemon; --key beside the sealed key.
    nobody = ["--vtpm-host", f"socket={work}/absent.sock", "--vtpm-state-key", "sealed", "--vm-memory", "policy=skip"]
    for what, extra, want in (
            ("no vtpm-hostd", nobody, "is vtpm-hostd running?"),
            ("--key as well", sealed[:6] + ["--key", f"file={work}/k,format=hex"], "state_key = sealed and --key")):
        r = h.run([h.server_cmd()[0], "socket", "--tpm2", "--tpmstate", f"dir={state}", "--server", "type=tcp,port=1",
                   "--flags", "not-need-init"] + extra, check_rc=False, timeout=30)
        h.check(r.returncode != 0 and want in r.stderr, f"{what}: the bridge does not start: {r.stderr.strip()[-140:]}")
    h.check_eq(files_of(state), plain, "the refused starts changed no state file")
    key_file = os.path.join(host, "vms", UUID + ".statekey")
    h.check(not os.path.exists(key_file), "and made no key")

    # First start: the key is made and the plaintext state adopted.
    srv, port = h.tcp_server(stack, state, extra=sealed)
    with open(os.path.join(work, "bridge.log")) as f:
        log = f.read()
    h.check("new sealed key from vtpm-hostd; 2 plaintext state file(s) adopted" in log or
            "new sealed key from vtpm-hostd; 1 plaintext state file(s) adopted" in log,
            f"first start: a new key, the plaintext state adopted: {log.strip()[-200:]}")
    canary = os.path.join(work, "canary")
    with open(canary, "wb") as f:
        f.write(CANARY)
    h.tpm2(port, "nvdefine", NV, "-C", "o", "-s", str(len(CANARY)), "-a", "ownerread|ownerwrite")
    h.tpm2(port, "nvwrite", NV, "-C", "o", "-i", canary)
    h.check_eq(nvread(port, work), CANARY, "the guest's NV index reads back")
    h.tpm2(port, "shutdown")
    srv.stop()
    enc = files_of(state)
    h.check(enc and all(b"SEALED-STATE-CANARY" not in v for v in enc.values()),
            "the NV contents are in no state file in the clear")
    h.check(all(b"swtpm-localca" not in v for v in enc.values()),
            "the EK certificate is in no state file in the clear")
    h.check_eq(stat.S_IMODE(os.stat(key_file).st_mode), 0o600, "the sealed key file is mode 0600")

    # Second start: the same key, the NV index is there.
    srv, port = h.tcp_server(stack, state, extra=sealed)
    h.check("encrypted with VM " + UUID + "'s sealed key" in open(os.path.join(work, "bridge.log")).read(),
            "restart: the state opens with the key from vtpm-hostd")
    h.check_eq(nvread(port, work), CANARY, "restart: the NV index is back")
    h.tpm2(port, "shutdown")
    srv.stop()
    enc = files_of(state)

    # The plaintext state put back: refused, nothing changed.
    with open(os.path.join(state, "tpm2-00.permall"), "wb") as f:
        f.write(plain["tpm2-00.permall"])
    planted = files_of(state)
    r = h.run([h.server_cmd()[0], "socket", "--tpm2", "--tpmstate", f"dir={state}", "--server", "type=tcp,port=1",
               "--flags", "not-need-init"] + sealed[:6], check_rc=False, timeout=30)
    h.check(r.returncode != 0 and "not encrypted but a state key is configured" in r.stderr,
            f"a plaintext state put back is refused: {r.stderr.strip()[-160:]}")
    h.check_eq(files_of(state), planted, "the refused start changed no state file")
    with open(os.path.join(state, "tpm2-00.permall"), "wb") as f:
        f.write(enc["tpm2-00.permall"])

    # The VM's key file lost: refused naming it, and no new key is made (it
    # could never open this state; the old file put back still does).
    moved = key_file + ".moved"
    os.rename(key_file, moved)
    r = h.run([h.server_cmd()[0], "socket", "--tpm2", "--tpmstate", f"dir={state}", "--server", "type=tcp,port=1",
               "--flags", "not-need-init"] + sealed[:6], check_rc=False, timeout=30)
    h.check(r.returncode != 0 and "no sealed key for VM " + UUID in r.stderr and ".statekey lost" in r.stderr,
            f"a lost key file is named: {r.stderr.strip()[-200:]}")
    h.check(not os.path.exists(key_file), "no new key was made for a state that needs the old one")
    h.check_eq(files_of(state), enc, "the refused start changed no state file")
    os.rename(moved, key_file)

    # export-key: root only, written to a new 0600 file.
    key_out = os.path.join(work, "vm.key")
    r = h.run([HOST, "export-key", "--vm", UUID, "--hostd", sock, "--out", key_out], check_rc=False)
    h.check(r.returncode == 0, f"root exports the key: {r.stderr.strip()}")
    h.check_eq(stat.S_IMODE(os.stat(key_out).st_mode), 0o600, "the exported key file is mode 0600")
    with open(key_out) as f:
        hexkey = f.read().strip()
    h.check(len(hexkey) == 64 and all(c in "0123456789abcdef" for c in hexkey), "64 hex digits (AES-256)")
    again = h.run([HOST, "export-key", "--vm", UUID, "--hostd", sock, "--out", key_out], check_rc=False)
    h.check(again.returncode == 1 and "cannot create" in again.stderr, "an existing file is never overwritten")
    # Let another user reach the daemon at all (the work directory is 0700).
    os.chmod(work, 0o711)
    os.chmod(sock, 0o666)
    try:
        r = h.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", HOST, "export-key", "--vm", UUID,
                   "--hostd", sock], check_rc=False)
    finally:
        os.chmod(sock, 0o660)
        os.chmod(work, 0o700)
    h.check(r.returncode == 1 and "only root may export a state key" in r.stderr and not r.stdout,
            f"a non-root peer gets no key: {r.stderr.strip()[-120:]}")
    hostd_log = hostd.output()
    h.check("ExportStateKey VM " + UUID in hostd_log and "exported" in hostd_log and "refused" in hostd_log,
            "vtpm-hostd logs every export and refusal")
    h.check(hexkey not in hostd_log and hexkey not in open(os.path.join(work, "bridge.log")).read(),
            "the key is in no log")

    # Debian's swtpm opens the state with the exported key.
    srv, port = h.tcp_server(stack, state, cmd=[h.SWTPM],
                             extra=["--key", f"file={key_out},format=hex,mode=aes-256-cbc"])
    h.check_eq(nvread(port, work), CANARY, "Debian's swtpm with the exported key reads the NV index")
    srv.stop()
    hw.stop()


if __name__ == "__main__":
    h.main(test, min_checks=25)
