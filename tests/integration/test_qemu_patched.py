#!/usr/bin/env python3
"""The patched QEMU path, end to end: Debian 12's QEMU 7.2 built with
qemu-patches/qemu-7.2-vtpm-ram-digest.patch (qemu-patches/build.sh; the
binary comes in VTPM_PATCHED_QEMU), our bridge, vtpm-hostd on a stand-in
host TPM (Debian's swtpm).

(a) Guest RAM only in QEMU (no shared backend): the bridge sees it only
    through QEMU's digest (CMD_VTPM_RAM_DIGEST). A save binds QEMU's digest
    into the signed record; the unedited stream restores, verified at load
    and again when the stream is complete (phase 3), and the guest runs on
    with its PCR 9.
(b) The edited stream (one more `ram` section after the tpm-emulator
    section, migration_stream.py): the check at load passes, the final one
    refuses, QEMU fails the incoming migration and exits before any vCPU
    runs; state directory, host ledger and image are unchanged.
(c) The same attack with guest RAM in a shared file the bridge maps: QEMU's
    phase 3 makes the bridge hash the file again, and it refuses naming the
    page.
(d) Debian's swtpm behind the patched QEMU: it sets no capability bit, so
    QEMU sends it nothing new, and save and restore work as before."""
import os
import re

import harness as h
from snapshot_lab import EXTENDED9, HOST, UUID, Lab, fingerprint, last_tick, log_of, restore, running_on, save
from test_verify_before_run import edit

QEMU = os.environ.get("VTPM_PATCHED_QEMU", "")
VENDOR = ["--vtpm-vendor-ctrl"]  # the capability bits a patched QEMU looks for


def patched():
    return {"binary": QEMU}


def refused_at_phase3(lab, name, image, mem_path):
    """Restore `image` with the patched QEMU; it must be refused by the final
    verification. Returns the bridge's reason."""
    before = fingerprint(lab, image)
    srv, vm, ok = restore(lab, name, image, mem_path, extra=VENDOR, qemu=patched())
    h.check(not ok, f"{name}: the restore is refused")
    vm.proc.wait(30)
    h.check(vm.proc.returncode not in (0, None), f"{name}: QEMU exits with failure ({vm.proc.returncode})")
    h.check("the backend refused the restored TPM state: guest RAM changed after it was loaded" in vm.qemu_log(),
            f"{name}: QEMU reports the final verification's refusal: {vm.qemu_log().strip()[-200:]}")
    srv.wait(15)
    log = log_of(srv)
    h.check(re.search(r"snapshot record verified: VM " + UUID, log) is not None,
            f"{name}: the check at load (phase 2) passed: the edit came after the TPM section")
    m = re.search(r"snapshot record not verified before run, TPM refused: (.*)", log)
    h.check(m is not None, f"{name}: the bridge refuses at the final verification (phase 3)")
    h.check("TICK" not in vm.output(), f"{name}: no vCPU ran (the guest printed nothing)")
    after = fingerprint(lab, image)
    for k in ("state", "ledger", "image"):
        h.check_eq(after[k], before[k], f"{name}: the {k} is byte-identical after the refusal")
    return m.group(1)


def digest_only(lab, work):
    # (a) RAM in QEMU only; the record binds QEMU's digest.
    srv, ctrl = lab.bridge("digest-boot", None, extra=VENDOR)
    vm = lab.qemu("digest-boot", ctrl, None, **patched())
    vm.wait_output(r"VTPM-GUEST ready", timeout=180)
    vm.wait_output(r"TICK 1 ", timeout=60)
    img = os.path.join(work, "digest.vmstate")
    save(vm, img)
    m = re.search(rf"snapshot record: VM {UUID} generation (\d+), (\d+) pages of QEMU's RAM digest", log_of(srv))
    h.check(m is not None, "(a) save: the signed record binds QEMU's digest")
    gen = m.group(1)
    # Every migratable RAM block: the 256 MiB of RAM and the firmware's.
    pages = int(m.group(2))
    h.check(pages > 65536, f"(a) QEMU's digest covers guest RAM and the ROM blocks too ({pages} pages)")
    h.check(f"CMD_VTPM_RAM_DIGEST: QEMU's digest of {pages} pages for the next save" in log_of(srv),
            "(a) the patched QEMU sent its digest before the state blobs")
    last = last_tick(vm)
    vm.kill()
    srv.wait(10)

    srv, vm, ok = restore(lab, "digest-restore", img, None, extra=VENDOR, qemu=patched(), resume=False)
    h.check(ok, "(a) the unedited stream loads")
    log = log_of(srv)
    h.check("snapshot record verified: VM " + UUID in log, "(a) verified at load (phase 2)")
    h.check("snapshot record verified before run" in log, "(a) verified again once the stream was complete (phase 3)")
    vm.qmp.cmd("cont")
    h.check_eq(running_on(vm, "(a) restored", last), EXTENDED9, "(a) PCR 9 restored, the guest's TPM answers")
    h.check("verified at load, not before run" not in log_of(srv), "(a) no 'not before run' warning")
    vm.kill()
    srv.wait(10)
    # That save ran and is consumed; the attack below replays it, which the
    # operator's revert allows again (so that the final check is what refuses).
    h.run([HOST, "revert", "--vm", UUID, "--generation", gen, "--hostd", lab.sock])

    # (b) The edited stream.
    edited = os.path.join(work, "digest-edited.vmstate")
    edit(img, edited)
    why = refused_at_phase3(lab, "digest-edited", edited, None)
    h.check("QEMU's final RAM digest differs" in why, f"(b) the bridge says why: {why}")


def shared_file(lab, work):
    # (c) Guest RAM in a shared file the bridge maps itself.
    m1 = lab.mem()
    srv, ctrl = lab.bridge("file-boot", m1, extra=VENDOR)
    vm = lab.qemu("file-boot", ctrl, m1, **patched())
    vm.wait_output(r"TICK 1 ", timeout=180)
    img = os.path.join(work, "file.vmstate")
    save(vm, img)
    h.check(re.search(rf"snapshot record: VM {UUID} generation \d+, 65536 pages of {m1}", log_of(srv)) is not None,
            "(c) save: the record is over the bridge's own hash of the memory file")
    vm.kill()
    srv.wait(10)
    edited = os.path.join(work, "file-edited.vmstate")
    page_no, _ = edit(img, edited)
    why = refused_at_phase3(lab, "file-edited", edited, lab.mem())
    h.check(f"first differing pages: {page_no} (0x{page_no * 4096:x})" in why,
            f"(c) the bridge names page {page_no}: {why}")


def with_swtpm(stack, work):
    # (d) Debian's swtpm: no capability bit, no new command, nothing changes.
    state = os.path.join(work, "swtpm-state")
    os.mkdir(state)

    def swtpm(name):
        ctrl = os.path.join(work, f"{name}.sock")
        args = ["--tpm2", "--tpmstate", f"dir={state}", "--ctrl", f"type=unixio,path={ctrl}", "--terminate",
                "--log", f"file={work}/{name}.log,level=20"]
        return h.Server(stack, args, wait_path=ctrl, cmd=[h.SWTPM]), ctrl
    srv, ctrl = swtpm("swtpm-boot")
    vm = h.Qemu(stack, work, "swtpm-boot", ctrl, binary=QEMU)
    vm.wait_output(r"TICK 1 ", timeout=180)
    img = os.path.join(work, "swtpm.vmstate")
    save(vm, img)
    last = last_tick(vm)
    vm.kill()
    srv.wait(10)
    srv, ctrl = swtpm("swtpm-restore")
    vm = h.Qemu(stack, work, "swtpm-restore", ctrl, binary=QEMU, incoming=f"exec:cat {img}")
    h.wait_for(lambda: vm.qmp.cmd("query-status")["status"] == "paused", 120, "(d) the stream to load")
    vm.qmp.cmd("cont")
    m = vm.wait_output(r"(?m)^TICK (\d+) ([0-9a-f]+) ", timeout=60, after=len(vm.output()))
    h.check_eq(m.group(2)[12:20], "00000000", "(d) Debian's swtpm behind the patched QEMU: restored, the TPM answers")
    h.check_resumed(vm.output(), last, "(d) restored from the save, not booted afresh")
    vm.kill()
    srv.wait(10)


def test(work, stack):
    if not QEMU or not os.access(QEMU, os.X_OK):
        h.skip("no patched QEMU: set VTPM_PATCHED_QEMU to qemu-patches/build.sh's output (scripts/test.sh does)")
    lab = Lab(work, stack)
    digest_only(lab, work)
    shared_file(lab, work)
    with_swtpm(stack, work)


if __name__ == "__main__":
    h.main(test, min_checks=40)
