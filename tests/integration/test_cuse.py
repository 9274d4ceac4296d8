#!/usr/bin/env python3
"""`swtpm cuse`: the command line as swtpm's (options of the other front
ends refused, -n required), and where the kernel has CUSE (/dev/cuse) the
device itself driven by Debian's swtpm_ioctl: CMD_INIT, the data channel,
--save/--load of the state in 3072-byte ioctls, CMD_SHUTDOWN. This machine
has no /dev/cuse (the kernel lacks CUSE): the device part skips, saying so;
tests/unit/bridge/cuse_test.cpp drives the same ioctls through the core."""
import os
import subprocess
import time

import harness as h

SERVER = h.server_cmd()


def test(work, stack):
    def run(*args):
        p = h.run(SERVER + ["cuse"] + list(args), check_rc=False, timeout=20)
        return p.returncode, (p.stdout + p.stderr).strip()
    for opt in (["--port", "2321"], ["--server", "type=tcp,port=2321"], ["--ctrl", "type=unixio,path=/x"],
                ["--fd", "7"]):
        rc, msg = run("-n", "vtpm-x", "--tpm2", "--tpmstate", f"dir={work}", *opt)
        h.check(rc != 0 and "unrecognized option" in msg, f"cuse refuses {opt[0]}: {msg[:90]}")
    rc, msg = run("--tpm2", "--tpmstate", f"dir={work}")
    h.check(rc != 0 and "-n <name>" in msg, f"cuse without a device name: {msg[:90]}")
    if not os.path.exists("/dev/cuse"):
        rc, msg = run("-n", "vtpm-x", "--tpm2", "--tpmstate", f"dir={work}")
        h.check(rc != 0 and "/dev/cuse" in msg, f"without the kernel's CUSE: a message naming /dev/cuse ({msg[:90]})")
        h.check(not os.listdir(work) or "tpm2-00.permall" not in os.listdir(work), "and nothing was written")
        h.skip("no /dev/cuse here (the kernel lacks CUSE): the device itself is tested through the core only")
    name = f"vtpm-it-{os.getpid()}"
    dev = f"/dev/{name}"
    state = os.path.join(work, "state")
    os.mkdir(state)
    p = subprocess.run(SERVER + ["cuse", "-n", name, "--tpm2", "--tpmstate", f"dir={state}"],
                       capture_output=True, text=True, timeout=30)
    h.check(p.returncode == 0, f"cuse -n {name} starts and detaches: {p.stderr.strip()[:120]}")
    h.wait_for(lambda: os.path.exists(dev), 10, dev)
    stack.callback(lambda: os.path.exists(dev) and subprocess.run(["swtpm_ioctl", "-s", dev], capture_output=True))
    h.check(h.ioctl("-i", dev).returncode == 0, "swtpm_ioctl -i (CMD_INIT) on the device")
    with open(dev, "r+b", buffering=0) as f:
        f.write(h.tpm2_startup(0))
        h.check_eq(f.read(4096)[:10].hex(), "80010000000a00000000", "TPM2_Startup over write()/read()")
    caps = h.ioctl("-c", dev).stdout.strip()
    h.check_eq(caps, "ptm capability is 0x6fff", "swtpm cuse's capability mask")
    save = os.path.join(work, "volatile.bin")
    h.check(h.ioctl("--save", "volatile", save, dev).returncode == 0 and os.path.getsize(save) > 3072,
            "swtpm_ioctl --save volatile: the blob in 3072-byte ioctls")
    h.check(h.ioctl("--stop", dev).returncode == 0, "CMD_STOP")
    h.check(h.ioctl("--load", "volatile", save, dev).returncode == 0, "swtpm_ioctl --load volatile")
    h.check(h.ioctl("-i", dev).returncode == 0, "CMD_INIT after the load")
    h.check(h.ioctl("-s", dev).returncode == 0, "CMD_SHUTDOWN")
    h.wait_for(lambda: not os.path.exists(dev), 10, f"{dev} to go away")


if __name__ == "__main__":
    h.main(test, min_checks=6)
