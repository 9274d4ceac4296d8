#!/usr/bin/env python3
"""libvirt 9.0 starts our bridge with its fixed command line; the bridge
config file (/etc/libvtpm/bridge.conf: vm_memory = peer) and the VM UUID in
libvirt's state path turn snapshot verification on. The domain has
<memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>;
the bridge finds QEMU's RAM through its control socket's peer; state_key =
sealed encrypts the state at rest with the VM's key from vtpm-hostd (the
domain has no <encryption>). virsh save
makes a signed record, virsh restore verifies it; an edited save image is
refused naming the page, and the untouched image restores afterwards. Then
a live migration to a second libvirt daemon on the same host (same
vtpm-hostd): the destination gets the sealed key and verifies the incoming
vPCRs; no state file on either side holds plaintext NV (the guest's EK
certificate, found in the save image as a control).
Debian's swtpm stands in for the host TPM. (Here QEMU and the bridge both run
as root — swtpm_user = "root" — since the bridge must read QEMU's mappings.)"""
import os
import re
import uuid

import harness as h
import libvirt_daemon as lv

BRIDGE = os.path.realpath(h.server_cmd()[0])
BIN = os.path.dirname(BRIDGE)
SETUP = os.environ.get("VTPM_SETUP", os.path.join(BIN, "vtpm-setup"))
ENV = dict(os.environ, TSS2_LOG="all+none")


def test(work, stack):
    os.chmod(work, 0o755)
    _, _, tcti, _ = h.stand_in_hw_tpm(stack, work, "hwtpm")
    conf = ("# bridges started by libvirt (which passes --log without a level)\nvm_memory = peer\npolicy = refuse\n"
            "log_level = 3\n"
            f"host_socket = {work}/hostd.sock\nstate_key = sealed\n")
    tools = lv.tool_dir(work, "tools-ours", BRIDGE, SETUP)
    d = lv.LibvirtDaemon(stack, work, "snap", tools, qemu_conf='swtpm_user = "root"\nswtpm_group = "root"\n',
                         bridge_conf=conf)
    h.run([os.path.join(BIN, "vtpm-host"), "provision", "--tcti", tcti, "--dir",
           d.path("/var/lib/libvtpm/host"), "--owner-key", h.owner_key(work)], env=ENV)
    # The host daemon: the only process with the stand-in TPM; bridges ask it.
    h.host_daemon(stack, work, d.path("/var/lib/libvtpm/host"), tcti)

    name, dom = "snapvm", str(uuid.uuid4())
    serial = lv.Serial(os.path.join(work, f"{name}.serial"))
    xml = os.path.join(work, f"{name}.xml")
    with open(xml, "w") as f:
        f.write(lv.domain_xml(name, dom, serial.path, shared_memory=True))
    d.domains[name] = dom
    d.virsh("define", xml)
    d.virsh("start", name)
    serial.wait(r"^VTPM-GUEST ready")
    serial.wait(r"^TICK 1 ")
    pcr9 = serial.pcrs("extended")[9]
    log = d.path(f"/var/log/swtpm/libvirt/qemu/{name}-swtpm.log")

    def bridge_log():
        with open(log, errors="replace") as f:
            return f.read()
    h.check(f"snapshot verification: memory from the control socket's peer, policy refuse, VM {dom}" in bridge_log(),
            "libvirt's bridge read bridge.conf and took the VM UUID from its state path")
    state = d.swtpm_state(dom)

    def encrypted_at_rest(what):
        # The state files and those the journal holds.
        images = h.state_file_images(state)
        files = list(images)
        flags = {f: int.from_bytes(b[4:6], "big") for f, b in images.items()}
        h.check(files and all(v & 1 for v in flags.values()), f"{what}: every state file is encrypted ({flags})")
    h.check(f"VM {dom}'s new sealed key from vtpm-hostd" in bridge_log() and "adopted" in bridge_log(),
            "state_key = sealed, no <encryption>: the first start adopted the state made by swtpm_setup")
    encrypted_at_rest("after the first start")

    image = os.path.join(work, f"{name}.save")
    d.virsh("save", name, image)
    lv.wait_gone(d, name)
    last = serial.last_tick()
    m = re.search(rf"snapshot record: VM {dom} generation 1, 65536 pages of /proc/\d+/\S+ \(/var/lib/libvirt/qemu/ram/",
                  bridge_log())
    h.check(m is not None, "virsh save: record over QEMU's file-backed RAM found through the peer")

    # An edited image: one byte of the guest's RAM pattern.
    with open(image, "rb") as f:
        data = bytearray(f.read())
    at = data.find(b"SNAPPAT-00000042-")
    h.check(at > 0, "the guest's RAM pattern is in the save image")
    data[at + 17] ^= 1
    edited = os.path.join(work, f"{name}-edited.save")
    with open(edited, "wb") as f:
        f.write(data)
    before = h.tree_digest(state)
    ledger = d.path("/var/lib/libvtpm/host/vms")
    ledger_before = h.tree_digest(ledger)
    h.check(ledger_before, "the host ledger directory is there to compare")
    image_before = h.sha256_file(image)
    mark = len(bridge_log())
    r = d.virsh("restore", edited, check_rc=False)
    h.check(r.returncode != 0, f"virsh restore of the edited image fails: {r.stderr.strip()[-160:]}")
    why = re.search(r"restore refused: (.*)", bridge_log()[mark:])
    h.check(why is not None and "first differing pages" in why.group(1), f"the bridge names the page: "
            f"{why.group(1) if why else bridge_log()[-300:]}")
    h.check_eq(h.tree_digest(state), before, "the vTPM state is unchanged after the refused restore")
    h.check_eq(h.tree_digest(ledger), ledger_before, "the host ledger is unchanged after the refused restore")
    h.check_eq(h.sha256_file(image), image_before, "the saved image is unchanged")

    mark = serial.mark()
    d.virsh("restore", image)
    tick, rc, pcr = serial.tick_after(mark)
    h.check_resumed(serial.text()[mark:], last, "virsh restore brought the running guest back")
    h.check("snapshot record verified: VM " + dom in bridge_log(), "virsh restore of the saved image: verified")
    h.check_eq(rc, "00000000", "the restored guest's TPM answers")
    h.check_eq(pcr, pcr9, "PCR 9 survived")
    h.check(f"encrypted with VM {dom}'s sealed key" in bridge_log(), "the restored bridge opened the sealed state")
    encrypted_at_rest("after save and restore")

    # No plaintext at rest: the guest's EK certificate (in the vTPM's NV) is
    # in the save image, where QEMU keeps the state blobs it took decrypted
    # (as with swtpm), and in no state file.
    ek = serial.ek_cert()
    with open(image, "rb") as f:
        h.check(ek is not None and ek in f.read(), "control: the EK certificate from NV is found in the save image")

    def no_plaintext(state_dir, what):
        for fn in os.listdir(state_dir):
            with open(os.path.join(state_dir, fn), "rb") as f:
                h.check(ek not in f.read(), f"{what}: {fn} holds no plaintext NV (EK certificate not found)")
    no_plaintext(state, "after save and restore")

    # Live migration within the host: a second libvirt daemon, the same vtpm-hostd.
    b = lv.LibvirtDaemon(stack, work, "snap-b", tools, qemu_conf='swtpm_user = "root"\nswtpm_group = "root"\n',
                         bridge_conf=conf)
    port = h.free_port()
    last, mark = serial.last_tick(), serial.mark()
    d.virsh("migrate", "--live", "--persistent", "--undefinesource", name, b.uri, f"tcp://127.0.0.1:{port}",
            "--listen-address", "127.0.0.1", timeout=300)
    b.domains[name] = dom
    d.domains.pop(name, None)
    tick, rc, pcr = serial.tick_after(serial.mark())
    h.check_resumed(serial.text()[mark:], last, "live migration to the second daemon: the guest carried on")
    h.check_eq(pcr, pcr9, "live migration: PCR 9 carried over")
    h.check_eq(rc, "00000000", "live migration: the guest's TPM answers")
    with open(b.path(f"/var/log/swtpm/libvirt/qemu/{name}-swtpm.log"), errors="replace") as f:
        blog = f.read()
    h.check(f"encrypted with VM {dom}'s sealed key" in blog,
            "the destination bridge took the VM's sealed key from the same vtpm-hostd (no libvirt secret)")
    h.check("snapshot record verified: VM " + dom in blog, "the destination verified the incoming vPCRs against "
            "the migrated RAM: " + (re.search(r"snapshot record verified: (.*)", blog) or re.search(r"(.*)$", blog)).group(1))
    state = b.swtpm_state(dom)
    encrypted_at_rest("after live migration, at the destination")
    no_plaintext(state, "after live migration, at the destination")


if __name__ == "__main__":
    h.main(test, min_checks=30)
