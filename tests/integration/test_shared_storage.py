#!/usr/bin/env python3
"""The state-directory lock: the same fcntl lock on `.lock` as swtpm, so our
server and Debian's swtpm exclude each other; and the shared-storage
migration handoff: with --migration release-lock-outgoing the source drops
the lock once QEMU has fetched the savestate blob, the destination takes it
at INIT, the source refuses TPM commands until CMD_LOCK_STORAGE gets the lock
back (after the destination is gone, as QEMU does on a failed migration)."""
import os
import struct

import harness as h

INIT = struct.pack(">I", 0)


def server(stack, work, name, state, cmd=None, extra=()):
    sock = os.path.join(work, f"{name}.sock")
    port = h.free_port()
    srv = h.Server(stack, ["--tpm2", "--tpmstate", f"dir={state}", "--ctrl", f"type=unixio,path={sock}",
                           "--server", f"type=tcp,port={port}"] + list(extra), cmd=cmd, wait_path=sock)
    return srv, h.Ctrl(path=sock), port


def data_cmd(port, command):
    import socket
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(5)
        return h.transact(s, command)


def test(work, stack):
    state = os.path.join(work, "shared")
    os.mkdir(state)
    if not h.is_ours():
        print("# swtpm 0.7.1 has no --migration option: only the lock exclusion applies")
    src, c_src, p_src = server(stack, work, "src", state,
                               extra=["--migration", "release-lock-outgoing"] if h.is_ours() else [])
    h.check_eq(c_src.cmd(0x02, INIT), b"\0\0\0\0", "source INIT takes the lock")
    h.check_eq(h.tpm_rc(data_cmd(p_src, h.tpm2_startup(0))), 0, "source TPM started")

    other, c_other, _ = server(stack, work, "swtpm", state, cmd=[h.SWTPM])
    h.check_eq(c_other.cmd(0x02, INIT).hex(), "00000009", "Debian swtpm cannot INIT while we hold the lock")
    other.stop()

    if not h.is_ours():
        return
    blobs = {}
    for t in (1, 2, 3):
        hdr = c_src.cmd(0x0c, struct.pack(">III", 1, t, 0), 16)
        blobs[t] = c_src.recv(h.u32(hdr, 8))
    h.check(len(blobs[1]) > 0 and len(blobs[3]) == 0, "QEMU-style fetch of permanent, volatile, savestate")

    dst, c_dst, p_dst = server(stack, work, "dst", state,
                               extra=["--migration", "release-lock-outgoing,incoming"])
    for t in (1, 2):
        r = c_dst.cmd(0x0d, struct.pack(">III", 0, t, len(blobs[t])) + blobs[t])
        h.check_eq(r, b"\0\0\0\0", f"destination accepts blob type {t}")
    h.check_eq(c_dst.cmd(0x02, struct.pack(">I", 1)), b"\0\0\0\0", "destination INIT takes the released lock")
    h.check_eq(h.tpm_rc(data_cmd(p_dst, h.tpm2_getrandom(8))), 0, "destination TPM runs on the shared state")

    h.check_eq(h.tpm_rc(data_cmd(p_src, h.tpm2_getrandom(8))), 0x101,
               "source refuses TPM commands without the lock")
    h.check_eq(c_src.cmd(0x13, struct.pack(">I", 5)).hex(), "00000009",
               "CMD_LOCK_STORAGE fails while the destination holds the lock")
    dst.stop()
    h.check_eq(c_src.cmd(0x13, struct.pack(">I", 300)), b"\0\0\0\0",
               "CMD_LOCK_STORAGE (QEMU's 300 retries) re-takes the lock after the destination left")
    h.check_eq(h.tpm_rc(data_cmd(p_src, h.tpm2_getrandom(8))), 0, "source TPM works again")

    # A successful handoff: the source quits (QEMU sends CMD_SHUTDOWN) after the
    # destination took over; it must not write the state the destination owns.
    for t in (1, 2, 3):
        hdr = c_src.cmd(0x0c, struct.pack(">III", 1, t, 0), 16)
        blobs[t] = c_src.recv(h.u32(hdr, 8))
    dst2, c_dst2, p_dst2 = server(stack, work, "dst2", state, extra=["--migration", "release-lock-outgoing,incoming"])
    for t in (1, 2):
        c_dst2.cmd(0x0d, struct.pack(">III", 0, t, len(blobs[t])) + blobs[t])
    h.check_eq(c_dst2.cmd(0x02, struct.pack(">I", 1)), b"\0\0\0\0", "second destination takes over")
    before = h.dir_digest(state)
    h.check_eq(c_src.cmd(0x03), b"\0\0\0\0", "source answers CMD_SHUTDOWN")
    h.check(src.wait(5) is not None, "source exits")
    h.check_eq(h.dir_digest(state), before, "the source's shutdown left the destination's state alone")
    h.check_eq(h.tpm_rc(data_cmd(p_dst2, h.tpm2_getrandom(8))), 0, "destination keeps running")


if __name__ == "__main__":
    h.main(test, min_checks=17)
