#!/usr/bin/env python3
"""Debian's swtpm_ioctl drives the server under test with every command it
has, over --unix and over --tcp. The same sequence runs against Debian's
swtpm in the same test, and every output line and exit code must match
(except the capability mask, where we also advertise CMD_LOCK_STORAGE).
State saved with --save is loaded back with --load and the TPM keeps working."""
import os
import socket

import harness as h


def sequence(work, stack, cmd, transport, tag):
    state = os.path.join(work, f"{tag}-{transport}")
    os.mkdir(state)
    port = h.free_port(2)
    args = ["--tpm2", "--tpmstate", f"dir={state}", "--server", f"type=tcp,port={port}",
            "--flags", "not-need-init,startup-clear"]
    if transport == "unix":
        path = os.path.join(state, "ctrl.sock")
        args += ["--ctrl", f"type=unixio,path={path}"]
        srv = h.Server(stack, args, cmd=cmd, wait_path=path)
        where = ["--unix", path]
    else:
        args += ["--ctrl", f"type=tcp,port={port + 1}"]
        srv = h.Server(stack, args, cmd=cmd, wait_port=port + 1)
        where = ["--tcp", f"127.0.0.1:{port + 1}"]
    blob = {t: os.path.join(state, f"blob.{t}") for t in ("permanent", "volatile", "savestate")}
    steps = [
        ["-c"], ["-g"], ["--info", "1"], ["--info", "2"], ["--info", "3"], ["--info", "4"],
        ["-e"], ["-l", "3"], ["-l", "4"], ["-l", "5"], ["-l", "0"],
        ["-C"], ["-v"],
        ["-h", "measured by the host"], ["-e"],
        ["-r", "3"], ["-r", "1"], ["-e"],
        ["--save", "permanent", blob["permanent"]], ["--save", "volatile", blob["volatile"]],
        ["--save", "savestate", blob["savestate"]],
        ["-b", "3000"],  # refused while running
        ["--stop"], ["-e"], ["--save", "permanent", os.path.join(state, "x")],
        ["-b", "0"], ["-b", "3968"], ["-b", "100000"], ["-b", "1"],
        ["--load", "permanent", blob["permanent"]], ["--load", "volatile", blob["volatile"]],
        ["-i"], ["-e"], ["-g"],
    ]
    out = []
    for s in steps:
        p = h.ioctl(*(s + where), check_rc=False)
        text = p.stdout + p.stderr
        text = text.replace(state, "<STATE>")
        out.append((s[0] if not s[0].startswith("--save") else " ".join(s[:2]), p.returncode, text.strip()))
    # The loaded state is live: a TPM command on the data channel works.
    with socket.create_connection(("127.0.0.1", port)) as d:
        rsp = h.transact(d, h.tpm2_getrandom(8))
    out.append(("getrandom-after-load", h.tpm_rc(rsp), len(rsp)))
    sizes = {t: os.path.getsize(p) if os.path.exists(p) else None for t, p in blob.items()}
    p = h.ioctl("-s", *where, check_rc=False)
    out.append(("-s", p.returncode, (p.stdout + p.stderr).strip()))
    h.check(srv.wait(10) is not None, f"{tag}/{transport}: -s stops the server")
    return out, sizes


def test(work, stack):
    for transport in ("unix", "tcp"):
        ours, our_sizes = sequence(work, stack, None, transport, "ours")
        ref, ref_sizes = sequence(work, stack, [h.SWTPM], transport, "swtpm")
        h.check_eq(len(ours), len(ref), f"{transport}: same number of steps")
        for (step, rc, text), (_, rrc, rtext) in zip(ours, ref):
            if step == "-c" and h.is_ours():
                h.check_eq(text, "ptm capability is 0x1ffff", f"{transport}: -c capability mask")
                h.check_eq(rtext, "ptm capability is 0xffff", f"{transport}: swtpm 0.7.1's mask for reference")
                continue
            h.check_eq((rc, text), (rrc, rtext), f"{transport}: swtpm_ioctl {step} behaves as with swtpm")
        h.check(our_sizes["permanent"] and our_sizes["volatile"], f"{transport}: --save wrote the blobs")
        h.check_eq(our_sizes["savestate"] is None or our_sizes["savestate"] == 0,
                   ref_sizes["savestate"] is None or ref_sizes["savestate"] == 0,
                   f"{transport}: empty savestate handled like swtpm")


if __name__ == "__main__":
    h.main(test)
