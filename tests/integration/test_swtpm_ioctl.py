#!/usr/bin/env python3
"""Debian's swtpm_ioctl drives the server under test with every command it
has, over --unix and over --tcp. The same sequence runs against Debian's
swtpm in the same test, and every output line and exit code must match
(except the capability mask, where we also advertise CMD_LOCK_STORAGE).
State saved with --save is loaded back with --load and the TPM keeps working."""
import os
import socket

import harness as h


# What swtpm_ioctl prints for each step of sequence() (exit status, output),
# as Debian's swtpm 0.7.1 answers; "-c" is compared separately.
EXPECTED = [
    ('-c', 0, 'ptm capability is 0xffff'),
    ('-g', 0, 'ptm configuration flags: 0x0'),
    ('--info', 0, '{"TPMSpecification":{"family":"2.0","level":0,"revision":164}}'),
    ('--info', 0, '{"TPMAttributes":{"manufacturer":"id:00001014","version":"id:20191023","model":"swtpm"}}'),
    ('--info', 0, '{"TPMSpecification":{"family":"2.0","level":0,"revision":164},"TPMAttributes":{"manufacturer":"id:00001014","version":"id:20191023","model":"swtpm"}}'),
    ('--info', 0, '{"TPMFeatures":{"RSAKeySizes":[1024,2048,3072],"CamelliaKeySizes":[128,256]}}'),
    ('-e', 0, 'tpmEstablished is 0'),
    ('-l', 0, ''),
    ('-l', 0, ''),
    ('-l', 1, 'Locality outside valid range of [0..4].'),
    ('-l', 0, ''),
    ('-C', 0, ''),
    ('-v', 0, ''),
    ('-h', 0, ''),
    ('-e', 0, 'tpmEstablished is 1'),
    ('-r', 0, ''),
    ('-r', 1, 'TPM result from PTM_RESET_TPMESTABLISHED: 0x3d'),
    ('-e', 0, 'tpmEstablished is 0'),
    ('--save permanent', 0, ''),
    ('--save volatile', 0, ''),
    ('--save savestate', 0, ''),
    ('-b', 1, 'TPM result from PTM_SET_BUFFERSIZE: 0xa'),
    ('--stop', 0, ''),
    ('-e', 1, 'TPM result from PTM_GET_TPMESTABLISHED: 0xa'),
    ('--save permanent', 1, 'TPM result from PTM_GET_STATEBLOB: 0xa'),
    ('-b', 0, 'TPM buffersize: 4096\nminimum size  : 2808\nmaximum size  : 4096'),
    ('-b', 0, 'TPM buffersize: 3968\nminimum size  : 2808\nmaximum size  : 4096'),
    ('-b', 0, 'TPM buffersize: 4096\nminimum size  : 2808\nmaximum size  : 4096'),
    ('-b', 0, 'TPM buffersize: 2808\nminimum size  : 2808\nmaximum size  : 4096'),
    ('--load', 0, ''),
    ('--load', 0, ''),
    ('-i', 0, ''),
    ('-e', 0, 'tpmEstablished is 0'),
    ('-g', 0, 'ptm configuration flags: 0x0'),
    ('getrandom-after-load', 0, 20),
    ('-s', 0, ''),
]


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
    h.check_eq(srv.wait(10), 0, f"{tag}/{transport}: -s stops the server, exit status 0")
    return out, sizes


def test(work, stack):
    for transport in ("unix", "tcp"):
        ours, our_sizes = sequence(work, stack, None, transport, "ours")
        ref, ref_sizes = sequence(work, stack, [h.SWTPM], transport, "swtpm")
        h.check_eq(len(ours), len(ref), f"{transport}: same number of steps")
        for i, ((step, rc, text), (_, rrc, rtext)) in enumerate(zip(ours, ref)):
            if step == "-c" and h.is_ours():
                h.check_eq(text, "ptm capability is 0x1ffff", f"{transport}: -c capability mask")
                h.check_eq(rtext, "ptm capability is 0xffff", f"{transport}: swtpm 0.7.1's mask for reference")
                continue
            h.check_eq((rc, text), (rrc, rtext), f"{transport}: swtpm_ioctl {step} behaves as with swtpm")
            h.check_eq((step, rc, text), EXPECTED[i], f"{transport}: swtpm_ioctl {step} gives the expected result")
        h.check(our_sizes["permanent"] and our_sizes["volatile"], f"{transport}: --save wrote the blobs")
        h.check_eq((our_sizes["savestate"], ref_sizes["savestate"]), (0, 0),
                   f"{transport}: --save savestate of a TPM 2 writes an empty file, as with swtpm")


if __name__ == "__main__":
    h.main(test, min_checks=154, min_checks_swtpm=154)
