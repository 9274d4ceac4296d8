"""Real libvirt 9.0 daemons (started here, see libvirt_env.py) drive our
bridge and vtpm-setup as `swtpm` and `swtpm_setup`, unchanged:
define/start (manufacturing with EK certificate the guest reads from NV),
virsh save/restore, managedsave, encrypted state with a vtpm secret (and a
wrong secret that loses nothing), <active_pcr_banks>, persistent_state,
live migration between two daemons both ways, and a domain moved between
Debian's swtpm and ours in both directions with its PCRs and EK."""
import os
import shutil
import subprocess
import uuid

import harness as h
import libvirt_daemon as lv

BRIDGE = os.path.realpath(h.server_cmd()[0])
SETUP = os.environ.get("VTPM_SETUP", os.path.join(os.path.dirname(BRIDGE), "vtpm-setup"))


def openssl_verify(work, der, ca_dir):
    pem = os.path.join(work, "guest-ek.pem")
    with open(pem + ".der", "wb") as f:
        f.write(der)
    h.run(["openssl", "x509", "-inform", "der", "-in", pem + ".der", "-out", pem])
    return h.run(["openssl", "verify", "-CAfile", os.path.join(ca_dir, "root-cert.pem"),
                  "-untrusted", os.path.join(ca_dir, "issuer-cert.pem"), pem], check_rc=False)


def start_domain(d, work, name, **kw):
    dom_uuid = str(uuid.uuid4())
    serial = lv.Serial(os.path.join(work, f"{name}.serial"))
    xml = os.path.join(work, f"{name}.xml")
    with open(xml, "w") as f:
        f.write(lv.domain_xml(name, dom_uuid, serial.path, **kw))
    d.domains[name] = dom_uuid
    d.virsh("define", xml)
    d.virsh("start", name)
    serial.wait(r"^VTPM-GUEST ready")
    serial.wait(r"^TICK 1 ")
    return dom_uuid, serial


def extended_pcr9(serial):
    ext = serial.pcrs("extended")
    return ext[9]


def save_restore(d, work, name, serial, pcr9, how):
    if how == "save":
        image = os.path.join(work, f"{name}.save")
        d.virsh("save", name, image)
        lv.wait_gone(d, name)
        last, mark = serial.last_tick(), serial.mark()
        d.virsh("restore", image)
    else:
        d.virsh("managedsave", name)
        lv.wait_gone(d, name)
        last, mark = serial.last_tick(), serial.mark()
        d.virsh("start", name)
    tick, rc, pcr = serial.tick_after(mark)
    h.check_resumed(serial.text()[mark:], last, f"{name}: {how} restored the running guest")
    h.check_eq(rc, "00000000", f"{name}: TPM answers after {how}")
    h.check_eq(pcr, pcr9, f"{name}: PCR 9 survived virsh {how}")


def test(work, stack):
    os.chmod(work, 0o755)  # swtpm_setup and swtpm run as tss and need the tool dir
    ours = lv.tool_dir(work, "tools-ours", BRIDGE, SETUP)
    debian = lv.tool_dir(work, "tools-debian", "/usr/bin/swtpm", "/usr/bin/swtpm_setup")
    a = lv.LibvirtDaemon(stack, work, "a", ours)

    # 1. define + start: libvirt runs our swtpm_setup and swtpm.
    u1, s1 = start_domain(a, work, "vm1")
    exes = lv.process_exe_for(u1)
    h.check(exes and all(e == BRIDGE for e in exes), f"libvirt started our bridge ({exes})")
    setup_log = a.path("/var/log/swtpm/libvirt/qemu/vm1-swtpm.log")
    with open(setup_log, errors="replace") as f:
        text = f.read()
    h.check("Successfully authored TPM state." in text and "secp256r1 EK" in text,
            "libvirt ran our swtpm_setup (its log lines are in the domain's swtpm log)")
    boot = s1.pcrs("boot")
    h.check(all(len(boot.get(i, "")) == 64 and boot[i] != "0" * 64 for i in range(8)),
            f"guest sees measured-boot PCRs 0-7 ({boot.get(0)})")
    der = s1.ek_cert()
    h.check(der is not None and len(der) > 300, "guest read the EK certificate from NV 0x01c00002: " +
            " ".join(l[:60] for l in s1.text().splitlines() if l.startswith("EKCERT")))
    v = openssl_verify(work, der, a.path("/var/lib/libvtpm/localca"))
    h.check(v.returncode == 0, f"the guest's EK certificate chains to the host's local CA: {v.stdout.strip()}")
    state1 = a.swtpm_state(u1)
    st = os.stat(os.path.join(state1, "tpm2-00.permall"))
    h.check(st.st_uid == lv._tss_uid(), "state files belong to the swtpm user (tss)")
    pcr9 = extended_pcr9(s1)

    # 2. virsh save / restore and managedsave / start.
    save_restore(a, work, "vm1", s1, pcr9, "save")
    save_restore(a, work, "vm1", s1, pcr9, "managedsave")

    # 3. Encrypted state with a vtpm secret; a wrong secret on restore loses nothing.
    secret = b"correct horse battery staple"
    sec = lv.define_secret(a, work, secret)
    u2, s2 = start_domain(a, work, "vm2", encryption_secret=sec)
    state2 = a.swtpm_state(u2)
    with open(os.path.join(state2, "tpm2-00.permall"), "rb") as f:
        h.check(b"swtpm" not in f.read(), "encrypted state does not show libtpms' plain text")
    pcr9b = extended_pcr9(s2)
    save_restore(a, work, "vm2", s2, pcr9b, "save")
    image = os.path.join(work, "vm2-neg.save")
    a.virsh("save", "vm2", image)
    lv.wait_gone(a, "vm2")
    before = (h.sha256_file(image), h.dir_digest(state2))
    lv.set_secret(a, work, sec, b"wrong secret")
    bad = a.virsh("restore", image, check_rc=False)
    h.check(bad.returncode != 0, f"restore with the wrong secret fails: {bad.stderr.strip()[:200]}")
    h.check_eq((h.sha256_file(image), h.dir_digest(state2)), before, "saved image and state dir unchanged")
    lv.set_secret(a, work, sec, secret)
    last, mark = s2.last_tick(), s2.mark()
    a.virsh("restore", image)
    tick, rc, pcr = s2.tick_after(mark)
    h.check_resumed(s2.text()[mark:], last, "vm2: the retry restored the running guest")
    h.check_eq(pcr, pcr9b, "retry with the right secret restores the VM and its PCRs")

    # 4. <active_pcr_banks> (swtpm_setup --reconfigure) and persistent_state on a transient domain.
    u3 = str(uuid.uuid4())
    s3 = lv.Serial(os.path.join(work, "vm3.serial"))
    xml = os.path.join(work, "vm3.xml")
    with open(xml, "w") as f:
        f.write(lv.domain_xml("vm3", u3, s3.path, persistent_state="yes", banks=["sha1", "sha256"]))
    a.domains["vm3"] = u3
    a.virsh("create", xml)
    m = s3.wait(r"^BANKS (.*)$")
    h.check_eq(sorted(m.group(1).split()), ["sha1", "sha256"], "active_pcr_banks: guest sees sha1 and sha256")
    a.virsh("destroy", "vm3")
    h.check(os.path.exists(os.path.join(a.swtpm_state(u3), "tpm2-00.permall")),
            "persistent_state='yes' keeps a transient domain's state")

    # 5. Live migration to a second daemon and back.
    b = lv.LibvirtDaemon(stack, work, "b", ours)
    port = h.free_port()
    for src, dst in ((a, b), (b, a)):
        last, mark = s1.last_tick(), s1.mark()
        src.virsh("migrate", "--live", "--persistent", "--undefinesource", "vm1", dst.uri,
                  f"tcp://127.0.0.1:{port}", "--listen-address", "127.0.0.1", timeout=300)
        dst.domains["vm1"] = u1
        src.domains.pop("vm1", None)
        tick, rc, pcr = s1.tick_after(s1.mark())
        h.check_resumed(s1.text()[mark:], last, f"live migration {src.name} -> {dst.name}: the guest carried on")
        h.check_eq(pcr, pcr9, f"live migration {src.name} -> {dst.name}: PCR 9 carried over")
        h.check_eq(rc, "00000000", f"live migration {src.name} -> {dst.name}: TPM answers")
        exes = lv.process_exe_for(u1)
        h.check(exes and all(e == BRIDGE for e in exes), f"on {dst.name} the bridge is ours")

    # 6. Interop: a domain made under Debian's swtpm is saved, restored under ours, and back.
    deb = lv.LibvirtDaemon(stack, work, "deb", debian)
    u4, s4 = start_domain(deb, work, "vm4")
    exes = lv.process_exe_for(u4)
    h.check(exes and all(e == "/usr/bin/swtpm" for e in exes), "the Debian daemon runs Debian's swtpm")
    ek_debian = s4.ek_cert()
    pcr9d = extended_pcr9(s4)
    image = os.path.join(work, "vm4.save")
    deb.virsh("save", "vm4", image)
    lv.wait_gone(deb, "vm4")
    last4 = s4.last_tick()
    xml = os.path.join(work, "vm4.xml")
    # Defined on both sides: a transient domain's TPM state is deleted when it is saved.
    for dst, src in ((a, deb), (deb, a)):
        dst.virsh("define", xml)
        dst_state = dst.swtpm_state(u4)
        if os.path.exists(os.path.dirname(dst_state)):
            shutil.rmtree(os.path.dirname(dst_state))
        shutil.copytree(os.path.dirname(src.swtpm_state(u4)), os.path.dirname(dst_state), symlinks=True)
        mark = s4.mark()
        dst.domains["vm4"] = u4
        dst.virsh("restore", image)
        tick, rc, pcr = s4.tick_after(mark)
        h.check_resumed(s4.text()[mark:], last4, f"vm4 restored under {dst.name}: the running guest came back")
        h.check_eq(pcr, pcr9d, f"vm4 restored under {dst.name}: PCR 9 from the other implementation")
        exes = lv.process_exe_for(u4)
        want = BRIDGE if dst is a else "/usr/bin/swtpm"
        h.check(exes and all(e == want for e in exes), f"vm4 runs on {os.path.basename(want)} now")
        image = os.path.join(work, f"vm4-{dst.name}.save")
        dst.virsh("save", "vm4", image)
        lv.wait_gone(dst, "vm4")
        last4 = s4.last_tick()
    # After the round trip the EK is unchanged: boot fresh under ours and read it.
    shutil.rmtree(os.path.dirname(a.swtpm_state(u4)))
    shutil.copytree(os.path.dirname(deb.swtpm_state(u4)), os.path.dirname(a.swtpm_state(u4)), symlinks=True)
    mark = s4.mark()
    a.virsh("start", "vm4")
    s4.wait(r"^EKCERT end", after=mark)
    h.check(ek_debian is not None and s4.ek_cert(after=mark) == ek_debian,
            "Debian-made EK certificate is read unchanged from NV under our bridge")

    # The example domain XMLs of examples/libvirt are accepted by libvirt 9.0 (TCG instead of KVM here).
    examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "libvirt")
    a.virsh("secret-define", os.path.join(examples, "vtpm-secret.xml"))
    for name in ("domain-vtpm.xml", "domain-vtpm-encrypted.xml"):
        with open(os.path.join(examples, name)) as f:
            xml = f.read().replace("type='kvm'", "type='qemu'")
        path = os.path.join(work, name)
        with open(path, "w") as f:
            f.write(xml)
        out = a.virsh("define", path, check_rc=False)
        h.check(out.returncode == 0, f"examples/libvirt/{name} defines: {out.stderr.strip()}")


if __name__ == "__main__":
    h.main(test, min_checks=56)
