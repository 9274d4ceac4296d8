#!/usr/bin/env python3
"""The final verification of a restore, before any vCPU runs, on real QEMU
7.2 (TCG) with guest RAM in a shared memory-backend-file and Debian's swtpm
standing in for the host TPM.

QEMU loads a stream section by section; the bridge checks the snapshot
record against guest RAM when the tpm-emulator section arrives. An edited
stream (migration_stream.py) carries one more `ram` section after it, which
rewrites a verified page. Shown here: (a) without a final verification the
load passes and the guest runs on the changed page ("verified at load, not
before run"); (b) with QEMU paused after the load, CMD_VTPM_VERIFY_RAM on
the bridge's admin socket refuses naming the page, the guest is not resumed,
the vTPM refuses commands, and the state directory and host ledger are
unchanged; (c) the unedited stream verifies before run and the resumed
guest's TPM answers; (d) with verify=before-run an unverified restore gets
no TPM command and cannot be saved (a record would sign unchecked RAM);
(e) `vtpm-host restore` of a libvirt save image: the edited image is
refused and the domain destroyed, the unedited one resumes."""
import os
import re
import socket
import struct
import uuid

import harness as h
import libvirt_daemon as lv
import migration_stream as ms
from snapshot_lab import BIN, EXTENDED9, PATTERN, SETUP, UUID, Lab, fingerprint, last_tick, log_of, restore, \
    running_on, save

HOST = os.path.join(BIN, "vtpm-host")
VERIFY = struct.pack(">I", 0x76540004)  # CMD_VTPM_VERIFY_RAM
TPM_FAILURE = "00000101"


def edit(src, dst):
    """dst: `src` with one extra ram section after the tpm-emulator section
    that flips a byte of the guest's pattern. Returns (page index, the
    changed page)."""
    with open(src, "rb") as f:
        s = ms.Stream(f.read())
    h.check(s.section("tpm-emulator").end < len(s.data), "the stream parses up to its end (EOF and vmdesc)")
    block, addr, page = s.find_page(PATTERN)
    at = page.find(PATTERN) + 17
    changed = bytearray(page)
    changed[at] ^= 0x01
    with open(dst, "wb") as f:
        f.write(s.with_ram_section_after("tpm-emulator", block, addr, bytes(changed)))
    with open(dst, "rb") as f:
        again = ms.Stream(f.read())
    h.check_eq(len(again.sections), len(s.sections) + 1, "the edited stream parses, one section more")
    names = [x.idstr for x in again.sections]
    i = names.index("tpm-emulator")
    h.check_eq(names[i + 1], "ram",
               f"the extra ram section follows the tpm-emulator section ({block} page {addr // ms.PAGE})")
    return addr // ms.PAGE, bytes(changed)


def admin_verify(path):
    """CMD_VTPM_VERIFY_RAM on the admin socket: (result, text)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(120)
        c.connect(path)
        c.sendall(VERIFY)
        head = b""
        while len(head) < 8:
            b = c.recv(8 - len(head))
            if not b:
                raise RuntimeError("the admin socket closed without an answer")
            head += b
        result, n = struct.unpack(">II", head)
        text = b""
        while len(text) < n:
            b = c.recv(n - len(text))
            if not b:
                break
            text += b
    return result, text.decode(errors="replace")


def page_in_file(path, page_no):
    with open(path, "rb") as f:
        f.seek(page_no * ms.PAGE)
        return f.read(ms.PAGE)


def tick_rc(vm, what):
    """The TPM response code of the guest's next tick."""
    m = vm.wait_output(r"(?m)^TICK (\d+) ([0-9a-f]+) ", timeout=60, after=len(vm.output()))
    rc = m.group(2)[12:20]
    print(f"# {what}: the guest's TPM answered {rc}", flush=True)
    return rc


def plain_qemu(lab, work):
    # --- boot and save with RAM in the stream.
    m1 = lab.mem()
    srv1, ctrl1 = lab.bridge("boot", m1)
    vm1 = lab.qemu("boot", ctrl1, m1)
    vm1.wait_output(r"VTPM-GUEST ready", timeout=180)
    vm1.wait_output(r"TICK 1 ", timeout=60)
    img = os.path.join(work, "a.vmstate")
    save(vm1, img)
    m = re.search(rf"snapshot record: VM {UUID} generation (\d+),", log_of(srv1))
    h.check(m is not None, "save: a signed record")
    gen = m.group(1)
    last = last_tick(vm1)
    vm1.kill()
    srv1.wait(10)
    edited = os.path.join(work, "a-edited.vmstate")
    page_no, changed = edit(img, edited)

    # (a) The attack is real: without a final verification the load passes
    # and the guest runs on the changed page.
    ma = lab.mem()
    srv, vm, ok = restore(lab, "attack", edited, ma, resume=False)
    h.check(ok, "(a) QEMU loads the edited stream")
    h.check("snapshot record verified: VM " + UUID in log_of(srv), "(a) the check at SET_STATEBLOB passed")
    h.check_eq(page_in_file(ma, page_no), changed, f"(a) page {page_no} of guest RAM is the edited one after the load")
    vm.qmp.cmd("cont")
    h.check_eq(tick_rc(vm, "(a)"), "00000000", "(a) the guest runs and its TPM answers")
    h.wait_for(lambda: "verified at load, not before run" in log_of(srv), 30, "the bridge's warning")
    h.check("snapshot record verified at load, not before run" in log_of(srv),
            "(a) the bridge logs that the restore was verified at load, not before run")
    vm.kill()
    srv.wait(10)
    # The restored state ran: the save is consumed, and restores again only
    # after the operator's explicit revert.
    r = h.run([HOST, "revert", "--vm", UUID, "--generation", gen, "--hostd", lab.sock], check_rc=False)
    h.check(r.returncode == 0, f"vtpm-host revert after (a): {r.stdout.strip()} {r.stderr.strip()}")

    # (b) Paused after the load, the final verification over the admin
    # socket refuses, naming the page; nothing resumes, nothing changes.
    before = fingerprint(lab, edited)
    mb = lab.mem()
    admin = os.path.join(work, "b.admin")
    srv, vm, ok = restore(lab, "refused", edited, mb, resume=False, extra=["--vtpm-admin-socket", admin])
    h.check(ok, "(b) QEMU loads the edited stream, paused")
    h.check_eq(os.stat(admin).st_mode & 0o777, 0o600, "(b) the admin socket is mode 0600")
    result, why = admin_verify(admin)
    h.check(result != 0, f"(b) the final verification refuses (result {result})")
    h.check(f"first differing pages: {page_no} (0x{page_no * 4096:x})" in why and
            "changed after the TPM state was loaded" in why, f"(b) the bridge names the page: {why}")
    h.check("snapshot record not verified before run, TPM refused" in log_of(srv), "(b) the bridge logs the refusal")
    h.check_eq(vm.qmp.cmd("query-status")["status"], "paused", "(b) the guest was not resumed")
    h.check(admin_verify(admin)[0] != 0, "(b) asking again does not lift the refusal")
    # Resumed anyway (by a careless driver): the TPM answers TPM_FAILURE.
    vm.qmp.cmd("cont")
    h.check_eq(tick_rc(vm, "(b)"), TPM_FAILURE, "(b) a refused vTPM answers every command with TPM_FAILURE")
    vm.kill()
    srv.wait(10)
    after = fingerprint(lab, edited)
    for k in ("state", "ledger", "image"):
        h.check_eq(after[k], before[k], f"(b) the {k} is byte-identical after the refusal")

    # (c) The unedited stream: verified before run, resumed, the TPM answers.
    mc = lab.mem()
    admin_c = os.path.join(work, "c.admin")
    srv, vm, ok = restore(lab, "verified", img, mc, resume=False, extra=["--vtpm-admin-socket", admin_c])
    h.check(ok, "(c) QEMU loads the unedited stream, paused")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(30)
        c.connect(admin_c)
        c.sendall(struct.pack(">I", 0x76540003))  # CMD_VTPM_SNAPSHOT: not served there
        h.check_eq((c.recv(8), c.recv(8)), (struct.pack(">I", 10), b""),
                   "(c) the admin socket answers any other command TPM_BAD_ORDINAL and closes")
    h.check_eq(admin_verify(admin_c), (0, ""), "(c) the final verification passes")
    h.check("snapshot record verified before run: VM " + UUID in log_of(srv), "(c) the bridge logs it")
    vm.qmp.cmd("cont")
    h.check_eq(running_on(vm, "(c) verified before run", last), EXTENDED9,
               "(c) PCR 9 restored, the guest's TPM answers")
    h.check("verified at load, not before run" not in log_of(srv), "(c) no 'not before run' warning")
    img2 = os.path.join(work, "c.vmstate")
    save(vm, img2)
    vm.kill()
    srv.wait(10)

    # (d) verify=before-run: without the final verification the TPM refuses.
    md = lab.mem()
    admin_d = os.path.join(work, "d.admin")
    srv, vm, ok = restore(lab, "before-run", img2, md, resume=False, extra=["--vtpm-admin-socket", admin_d],
                          mem_opts=",verify=before-run")
    h.check(ok, "(d) QEMU loads the stream, paused")
    # A save before the final verification would sign guest RAM nobody
    # checked (a later section may have changed it): refused.
    try:
        save(vm, os.path.join(work, "d.vmstate"))
        saved = True
    except RuntimeError:
        saved = False
    h.check(not saved, "(d) a save before the final verification fails")
    h.check("no snapshot record, save refused: the restore of VM " + UUID in log_of(srv) and
            "awaits its final verification (verify=before-run)" in log_of(srv), "(d) the bridge says why")
    vm.qmp.cmd("cont")
    h.check_eq(tick_rc(vm, "(d)"), TPM_FAILURE, "(d) verify=before-run: no TPM command before the final verification")
    h.check("TPM commands refused until the final verification (verify=before-run)" in log_of(srv),
            "(d) the bridge says why")
    vm.kill()
    srv.wait(10)


def libvirt(work, stack, lab):
    os.chmod(work, 0o755)
    tools = lv.tool_dir(work, "tools-ours", os.path.realpath(h.server_cmd()[0]), SETUP)
    # The lab's host daemon signs for libvirt's bridges too (one client of the stand-in TPM).
    conf = ("vm_memory = peer\npolicy = refuse\nlog_level = 3\nadmin_socket = /var/lib/libvtpm/{uuid}.admin\n"
            f"host_socket = {lab.sock}\n")
    d = lv.LibvirtDaemon(stack, work, "vbr", tools, qemu_conf='swtpm_user = "root"\nswtpm_group = "root"\n',
                         bridge_conf=conf)
    name, dom = "vbrvm", str(uuid.uuid4())
    serial = lv.Serial(os.path.join(work, f"{name}.serial"))
    xml = os.path.join(work, f"{name}.xml")
    with open(xml, "w") as f:
        f.write(lv.domain_xml(name, dom, serial.path, shared_memory=True))
    d.domains[name] = dom
    d.virsh("define", xml)
    d.virsh("start", name)
    serial.wait(r"^VTPM-GUEST ready")
    serial.wait(r"^TICK 1 ")
    log = d.path(f"/var/log/swtpm/libvirt/qemu/{name}-swtpm.log")

    def bridge_log():
        with open(log, errors="replace") as f:
            return f.read()
    image = os.path.join(work, f"{name}.save")
    d.virsh("save", name, image)
    lv.wait_gone(d, name)
    last = serial.last_tick()
    edited = os.path.join(work, f"{name}-edited.save")
    page_no, _ = edit(image, edited)
    state, ledger = d.swtpm_state(dom), lab.ledger()
    before = (h.tree_digest(state), h.tree_digest(ledger))
    admin = d.path(f"/var/lib/libvtpm/{dom}.admin")
    bconf = d.path("/etc/libvtpm/bridge.conf")
    r = h.run([HOST, "restore", edited, "--connect", d.uri, "--bridge-config", bconf, "--admin-socket", admin],
              check_rc=False, timeout=300)
    h.check(r.returncode == 1, f"(e) vtpm-host restore of the edited image fails ({r.returncode})")
    h.check(f"first differing pages: {page_no} " in r.stderr and "destroyed, never resumed" in r.stderr,
            f"(e) it prints the bridge's reason: {r.stderr.strip()[-300:]}")
    st = d.virsh("domstate", name, check_rc=False).stdout.strip()
    h.check(st == "shut off", f"(e) the domain is not running ({st})")
    h.check_eq((h.tree_digest(state), h.tree_digest(ledger)), before, "(e) vTPM state and ledger unchanged")
    h.check("snapshot record not verified before run, TPM refused" in bridge_log(), "(e) the bridge logged the refusal")

    mark = serial.mark()
    r = h.run([HOST, "restore", image, "--connect", d.uri, "--bridge-config", bconf, "--admin-socket", admin],
              check_rc=False, timeout=300)
    h.check(r.returncode == 0 and "verified before run, resumed" in r.stdout,
            f"(e) vtpm-host restore of the saved image: {r.stdout.strip()} {r.stderr.strip()[-300:]}")
    tick, rc, _ = serial.tick_after(mark)
    h.check_resumed(serial.text()[mark:], last, "(e) the restored domain runs on")
    h.check_eq(rc, "00000000", "(e) its TPM answers")
    h.check("verified at load, not before run" not in bridge_log()[-4000:], "(e) no 'not before run' warning")
    d.virsh("destroy", name, check_rc=False)


def test(work, stack):
    lab = Lab(work, stack)
    plain_qemu(lab, work)
    libvirt(work, stack, lab)


if __name__ == "__main__":
    h.main(test, min_checks=42)
