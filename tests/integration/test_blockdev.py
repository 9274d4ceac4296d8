#!/usr/bin/env python3
"""`--tpmstate backend-uri=file:///dev/loopN`: a linear store on a block
device (shared-storage setups), as swtpm supports. Debian's swtpm_setup
manufactures through the server under test onto a loop device, Debian's
swtpm opens the result, and ours opens what swtpm wrote. A write to the
device is crash-safe: an interrupted one (a valid journal at the device's
end) is finished at the next open, a torn one (journal not valid) leaves
the old image. The loop device is detached at the end; without loop
devices the test skips, saying so."""
import hashlib
import os
import struct
import subprocess

import harness as h

SERVER = os.path.realpath(h.server_cmd()[0])
SECTOR = 512


def loop_device(stack, image):
    p = subprocess.run(["losetup", "-f", "--show", image], capture_output=True, text=True)
    if p.returncode != 0:
        return None, p.stderr.strip()
    dev = p.stdout.strip()
    stack.callback(lambda: subprocess.run(["losetup", "-d", dev], capture_output=True))
    return dev, ""


def print_states(cmd, dev):
    return h.run(cmd + ["socket", "--tpm2", "--print-states", "--tpmstate", f"backend-uri=file://{dev}"]).stdout


def test(work, stack):
    if os.getuid() != 0 or not os.path.exists("/dev/loop-control"):
        h.skip("no loop devices here (needs root and /dev/loop-control)")
    image = os.path.join(work, "disk.img")
    with open(image, "wb") as f:
        f.truncate(1 << 20)
    dev, why = loop_device(stack, image)
    if not dev:
        h.skip(f"losetup failed: {why}")
    conf = os.path.join(work, "empty.conf")
    open(conf, "w").close()
    r = h.run(["swtpm_setup", "--tpm2", "--tpm-state", f"file://{dev}", "--tpm", f"{SERVER} socket", "--createek",
               "--config", conf], check_rc=False, timeout=120)
    h.check(r.returncode == 0, f"Debian's swtpm_setup manufactures onto {dev} through the server under test")
    h.check('"permall"' in print_states([h.SWTPM], dev), "Debian's swtpm finds the permanent state on the device")
    port = h.free_port(2)
    srv = h.Server(stack, ["--tpm2", "--tpmstate", f"backend-uri=file://{dev}", "--server",
                           f"type=tcp,port={port}", "--ctrl", f"type=tcp,port={port + 1}",
                           "--flags", "not-need-init,startup-clear"], cmd=[h.SWTPM], wait_port=port + 1)
    r = h.tpm2(port, "readpublic", "-c", "0x81010001", check_rc=False)
    h.check(r.returncode == 0, "Debian's swtpm runs on the device: the EK made through ours is there")
    srv.stop()
    h.check(not os.path.exists(dev + ".lock"), f"no lock file made beside the device in /dev")

    # The server under test on what swtpm last wrote.
    port = h.free_port(2)
    srv = h.Server(stack, ["--tpm2", "--tpmstate", f"backend-uri=file://{dev}", "--server",
                           f"type=tcp,port={port}", "--ctrl", f"type=tcp,port={port + 1}",
                           "--flags", "not-need-init,startup-clear"], wait_port=port + 1)
    r = h.tpm2(port, "readpublic", "-c", "0x81010001", check_rc=False)
    h.check(r.returncode == 0, "the server under test runs on the device swtpm wrote")
    h.tpm2(port, "nvdefine", "0x01500000", "-C", "o", "-s", "8", "-a", "ownerwrite|ownerread")
    srv.stop()

    if not h.is_ours():
        return
    with open(dev, "rb") as f:
        disk = f.read()
    size = len(disk)
    # An interrupted write: the image of another state staged at the end with
    # a valid journal. Opening finishes it.
    other = os.path.join(work, "other.img")
    with open(other, "wb") as f:
        f.truncate(1 << 20)
    r = h.run(["swtpm_setup", "--tpm2", "--tpm-state", f"file://{other}", "--tpm", f"{SERVER} socket",
               "--config", conf], check_rc=False, timeout=120)
    with open(other, "rb") as f:
        new = f.read()
    hdr = new[:192]
    end = max([192] + [struct.unpack_from("<I", hdr, 12 + 12 * i)[0] + struct.unpack_from("<I", hdr, 20 + 12 * i)[0]
                       for i in range(15) if struct.unpack_from("<I", hdr, 12 + 12 * i)[0]])
    new = new[:end]
    off = size - SECTOR - (len(new) + SECTOR - 1) // SECTOR * SECTOR

    def stage(valid):
        journal = struct.pack("<QQQ", 0x4C4E524A4D505456, len(new), off) + hashlib.sha256(new).digest()
        journal += b"\0" * (SECTOR - len(journal))
        staged = new if valid else new[:-1] + bytes([new[-1] ^ 1])
        with open(dev, "r+b") as f:
            f.seek(off)
            f.write(staged)
            f.seek(size - SECTOR)
            f.write(journal)
            f.flush()
            os.fsync(f.fileno())

    before = print_states([h.SWTPM], dev)
    stage(valid=False)
    print_states(SERVER_CMD, dev)
    with open(dev, "rb") as f:
        after = f.read()
    h.check(after[:off] == disk[:off] and after[size - SECTOR:] == b"\0" * SECTOR,
            "a torn journal (its copy does not match) is dropped; the old image stays")
    stage(valid=True)
    print_states(SERVER_CMD, dev)
    with open(dev, "rb") as f:
        after = f.read()
    h.check(after[:len(new)] == new and after[size - SECTOR:] == b"\0" * SECTOR,
            "an interrupted write (valid journal) is finished when the device is next opened")
    h.check(print_states([h.SWTPM], dev) != before, "and swtpm sees the new state")


SERVER_CMD = h.server_cmd()

if __name__ == "__main__":
    h.main(test, min_checks=8, min_checks_swtpm=5)
