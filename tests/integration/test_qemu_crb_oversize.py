#!/usr/bin/env python3
"""A hostile guest against real QEMU 7.2 (TCG) with tpm-crb: past its
kernel's driver, through the CRB registers, it starts a command whose header
announces 4000 bytes. QEMU sends what its 3968-byte buffer holds and waits for
the answer; a server that waited for the other 32 bytes would hang the TPM and
every QEMU operation that waits for it (reset, save, migration). Debian's
swtpm answers TPM_RC_COMMAND_SIZE at once; so must the server under test, and
the guest's TPM must go on working."""
import os
import re

import harness as h


def test(work, stack):
    state = os.path.join(work, "state")
    os.mkdir(state)
    ctrl = os.path.join(work, "crb.sock")
    srv = h.libvirt_style_server(stack, state, ctrl, os.path.join(work, "server.log"))
    vm = h.Qemu(stack, work, "crb", ctrl, append="iomem=relaxed vtpm.crb_oversize")
    m = vm.wait_output(r"(?m)^CRB-OVERSIZE (.*)$", timeout=120)
    words = m.group(1).split()
    h.check(words != ["hung"], "the oversized command was answered (CTRL_START cleared)")
    # Little-endian words of 80 01 00 00 | 00 0a 00 00 | 01 42: TPM_RC_COMMAND_SIZE.
    h.check_eq(words, ["0x00000180", "0x00000A00", "0x00004201"],
               "answered with TPM_RC_COMMAND_SIZE, as swtpm answers")
    vm.wait_output(r"VTPM-GUEST ready", timeout=60)
    tick = vm.wait_output(r"(?m)^TICK 2 ([0-9a-f]+) ", timeout=60)
    h.check_eq(tick.group(1)[12:20], "00000000", "the guest's kernel driver still gets random bytes from the TPM")
    # QEMU waits for the TPM before saving the VM: it must not hang.
    image = os.path.join(work, "vmstate")
    vm.qmp.cmd("stop")
    vm.qmp.cmd("migrate", uri=f"exec:cat > {image}")
    vm.qmp.wait_migration()
    h.check(os.path.getsize(image) > 0, "the VM can still be saved")
    vm.quit()
    h.check_eq(srv.wait(10), 0, "server exits 0 after QEMU quits")
    h.check("CRB-OVERSIZE" in vm.output() and not re.search(r"tpm.*error", vm.qemu_log(), re.I),
            "QEMU logged no TPM error")


if __name__ == "__main__":
    h.main(test, min_checks=6)
