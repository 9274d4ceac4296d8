#!/usr/bin/env python3
"""Real QEMU 7.2 (TCG) boots the test guest on the server under test with
tpm-crb and with tpm-tis: SeaBIOS measures into PCRs 0-7, the guest extends
PCR 9 through /dev/tpm0. The VM is saved to a file (QMP stop + migrate to
exec:cat), QEMU and the server are killed, a fresh server and QEMU restore it
(-incoming defer), and the guest sees the same PCRs and keeps using its TPM.
Then QEMU's internal snapshots (HMP savevm / loadvm on a qcow2 disk, what
`virsh snapshot-create-as` and `snapshot-revert` do): the running server is
given the saved vTPM state back at each loadvm."""
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


def xticks(text):
    """The guest's XTICK lines in `text`: [(tick, response code, PCR 11)]."""
    return [(int(m.group(1)), m.group(2), m.group(3).lower())
            for m in re.finditer(r"^XTICK (\d+) ([0-9a-f]{8}) ([0-9A-Fa-f]{64})\s*$", text, re.M)]


def internal_snapshots(work, stack):
    """savevm, then loadvm twice, on a server that keeps running: QEMU sends
    STOP, SET_STATEBLOB and INIT to a live server. The guest extends PCR 11
    every tick, so after a loadvm tick N must show the PCR 11 that tick N
    showed after the save: a server that kept its own state would be ahead."""
    state = os.path.join(work, "state-savevm")
    os.mkdir(state)
    ctrl = os.path.join(work, "savevm.sock")
    disk = os.path.join(work, "savevm.qcow2")
    h.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "16M"])
    srv = h.libvirt_style_server(stack, state, ctrl, os.path.join(work, "savevm.log"))
    vm = h.Qemu(stack, work, "savevm", ctrl, append="vtpm.tick_extend",
                extra=["-drive", f"file={disk},if=none,id=disk0,format=qcow2"])
    vm.wait_output(r"(?m)^XTICK 2 ", timeout=120)
    h.check_eq(vm.hmp("savevm snap1"), "", "savevm: QEMU saves the VM and its vTPM state in the qcow2 disk")
    h.check("snap1" in vm.hmp("info snapshots"), "the internal snapshot is listed")
    for n in (1, 2):
        # Let the guest run on (its PCR 11 moves on), then go back.
        last = xticks(vm.output())[-1][0]
        vm.wait_output(rf"(?m)^XTICK {last + 3} ", timeout=60)
        before = {t: pcr for t, _, pcr in xticks(vm.output())}
        mark = len(vm.output())
        h.check_eq(vm.hmp("loadvm snap1"), "", f"loadvm #{n}: accepted")
        vm.wait_output(r"(?m)^XTICK \d+ ", timeout=60, after=mark)
        tick, rc, pcr = xticks(vm.output()[mark:])[0]
        h.check(tick < last + 3, f"loadvm #{n}: the guest went back to tick {tick} (it was at {last + 3})")
        h.check_eq(rc, "00000000", f"loadvm #{n}: the guest's PCR_Extend works after the load")
        h.check_eq(pcr, before.get(tick), f"loadvm #{n}: PCR 11 at tick {tick} is the one the saved vTPM state "
                                          "gave (the server's later state is gone)")
    m = vm.wait_output(r"(?m)^TICK (\d+) ([0-9a-f]+) ", timeout=60, after=mark)
    h.check_eq(m.group(2)[12:20], "00000000", "TPM2_GetRandom works after the loads")
    vm.quit()
    h.check_eq(srv.wait(10), 0, "server exits 0 after QEMU quits")


def test(work, stack):
    for device in ("tpm-crb", "tpm-tis"):
        boot_save_restore(work, stack, device)
    internal_snapshots(work, stack)


if __name__ == "__main__":
    h.main(test, min_checks=38)
