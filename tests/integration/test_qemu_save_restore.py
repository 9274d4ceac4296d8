#!/usr/bin/env python3
"""Real QEMU 7.2 (TCG) boots the test guest on the server under test with
tpm-crb and with tpm-tis: SeaBIOS measures into PCRs 0-7, the guest extends
PCR 9 through /dev/tpm0. The VM is saved to a file (QMP stop + migrate to
exec:cat), QEMU and the server are killed, a fresh server and QEMU restore it
(-incoming defer), and the guest sees the same PCRs and keeps using its TPM."""
import os
import re

import harness as h

ZERO = "0" * 64


def boot_save_restore(work, stack, device):
    state = os.path.join(work, f"state-{device}")
    os.mkdir(state)
    ctrl = os.path.join(work, f"{device}.sock")
    srv = h.libvirt_style_server(stack, state, ctrl, os.path.join(work, f"{device}-1.log"))
    vm = h.Qemu(stack, work, f"{device}-1", ctrl, device=device)
    vm.wait_output(r"VTPM-GUEST ready", timeout=120)
    boot = vm.pcrs("boot")
    h.check(len(boot) == 10, f"{device}: guest reads 10 sha256 PCRs")
    h.check(all(boot[i] != ZERO for i in range(8)), f"{device}: SeaBIOS measured into PCRs 0-7")
    ext = re.search(r"^EXTEND ([0-9a-f]+)", vm.output(), re.M).group(1)
    h.check_eq(ext[12:20], "00000000", f"{device}: guest's PCR_Extend through /dev/tpm0 succeeded")
    extended = vm.pcrs("extended")
    h.check(extended[9] != boot[9], f"{device}: PCR 9 changed by the extend")
    vm.wait_output(r"TICK 1 ", timeout=30)

    image = os.path.join(work, f"{device}.vmstate")
    vm.qmp.cmd("stop")
    vm.qmp.cmd("migrate", uri=f"exec:cat > {image}")
    vm.qmp.wait_migration()
    h.check(os.path.getsize(image) > 0, f"{device}: VM saved to a file")
    before = vm.output()
    last_tick = max(h.ticks(before))
    vm.kill()
    h.check_eq(srv.wait(10), 0, f"{device}: server exits 0 when QEMU goes away (--terminate)")
    h.check(not os.path.exists(ctrl), f"{device}: control socket removed at exit")

    srv2 = h.libvirt_style_server(stack, state, ctrl, os.path.join(work, f"{device}-2.log"))
    vm2 = h.Qemu(stack, work, f"{device}-2", ctrl, device=device, incoming="defer")
    vm2.qmp.cmd("migrate-incoming", uri=f"exec:cat {image}")
    h.wait_for(lambda: vm2.qmp.cmd("query-status")["status"] in ("paused", "running"), 60, "incoming state")
    h.wait_for(lambda: vm2.qmp.cmd("query-migrate").get("status") in (None, "completed")
               or vm2.qmp.cmd("query-status")["status"] == "paused", 60, "incoming done")
    vm2.qmp.cmd("cont")
    # The restored guest keeps printing ticks: its TPM answers and PCR 9 is the extended value.
    m = vm2.wait_output(r"^TICK (\d+) ([0-9a-f]+) ([0-9A-Fa-f]+)\s*$", timeout=60)
    tick, rsp, pcr9 = int(m.group(1)), m.group(2), m.group(3).lower()
    h.check_resumed(vm2.output(), last_tick, f"{device}: restored guest continues where it was saved")
    h.check_eq(rsp[12:20], "00000000", f"{device}: TPM2_GetRandom works after restore")
    h.check_eq(pcr9, extended[9], f"{device}: PCR 9 survived save/restore")
    vm2.quit()
    h.check_eq(srv2.wait(10), 0, f"{device}: server exits 0 after QEMU quits (CMD_SHUTDOWN)")


def test(work, stack):
    for device in ("tpm-crb", "tpm-tis"):
        boot_save_restore(work, stack, device)


if __name__ == "__main__":
    h.main(test, min_checks=26)
