#!/usr/bin/env python3
"""The main job: manufacture a vTPM with vtpm-setup, boot a VM under QEMU
(TCG) with libvtpm's bridge as its TPM, show the measured-boot PCRs and the
EK certificate the guest reads from NV (verified against the CA), save the VM to a file, restore it into a fresh
bridge and QEMU, and verify the guest's PCRs and TPM survived."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import harness as h  # noqa: E402


def demo(work, stack):
    state = os.path.join(work, "vtpm-state")
    os.mkdir(state)
    ctrl = os.path.join(work, "vtpm.sock")
    setup = os.path.join(os.path.dirname(h.server_cmd()[0]), "vtpm-setup")
    ca = os.path.join(work, "localca")
    conf = os.path.join(work, "vtpm-setup.conf")
    with open(conf, "w") as f:
        f.write(f"localca_dir = {ca}\n")
    print("== manufacturing the vTPM as libvirt does (vtpm-setup: EKs, EK and platform certificates, NV lock)")
    h.run([setup, "--tpm2", "--tpm-state", state, "--vmid", "demo:00000000-0000-4000-8000-000000000001",
           "--createek", "--create-ek-cert", "--create-platform-cert", "--lock-nvram", "--not-overwrite",
           "--config", conf])
    print(f"== starting {' '.join(h.server_cmd())} on {state}")
    h.libvirt_style_server(stack, state, ctrl, os.path.join(work, "bridge-1.log"))
    vm = h.Qemu(stack, work, "vm1", ctrl, device="tpm-crb")
    print("== booting the guest (SeaBIOS measures the boot into the vTPM)")
    vm.wait_output(r"VTPM-GUEST ready", timeout=120)
    boot, ext = vm.pcrs("boot"), vm.pcrs("extended")
    print("   measured boot, sha256 bank, as the guest reads it from /sys/class/tpm/tpm0:")
    for i in range(10):
        print(f"   PCR {i:2d}  {boot[i]}")
    print(f"   guest extended PCR 9 via /dev/tpm0 -> {ext[9]}")
    chunks = re.findall(r"^EKCERT (\d+) ([0-9a-f]+)\s*$", vm.output(), re.M)
    der = bytes.fromhex("".join(c[1] for c in chunks))
    with open(os.path.join(work, "guest-ek.der"), "wb") as f:
        f.write(der)
    h.run(["openssl", "x509", "-inform", "der", "-in", os.path.join(work, "guest-ek.der"),
           "-out", os.path.join(work, "guest-ek.pem")])
    v = h.run(["openssl", "verify", "-CAfile", os.path.join(ca, "root-cert.pem"), "-untrusted",
               os.path.join(ca, "issuer-cert.pem"), os.path.join(work, "guest-ek.pem")], check_rc=False)
    h.check(v.returncode == 0, f"the guest read its EK certificate ({len(der)} bytes) from NV 0x01c00002 "
            f"and it chains to the local CA")
    h.check(all(boot[i] != "0" * 64 for i in range(8)), "firmware measured PCRs 0-7")
    h.check(ext[9] != boot[9], "guest's own extend reached the vTPM")

    image = os.path.join(work, "vm.state")
    print("== saving the VM (QMP stop + migrate to a file; the bridge hands over its state blobs)")
    vm.wait_output(r"TICK 1 ", timeout=30)
    vm.qmp.cmd("stop")
    vm.qmp.cmd("migrate", uri=f"exec:cat > {image}")
    vm.qmp.wait_migration()
    vm.kill()
    print(f"   saved {os.path.getsize(image)} bytes; QEMU and the bridge are gone")

    print("== restoring into a fresh bridge and QEMU")
    h.libvirt_style_server(stack, state, ctrl, os.path.join(work, "bridge-2.log"))
    vm2 = h.Qemu(stack, work, "vm2", ctrl, device="tpm-crb", incoming="defer")
    vm2.qmp.cmd("migrate-incoming", uri=f"exec:cat {image}")
    h.wait_for(lambda: vm2.qmp.cmd("query-status")["status"] == "paused", 60, "restored VM")
    vm2.qmp.cmd("cont")
    m = vm2.wait_output(r"^TICK (\d+) ([0-9a-f]+) ([0-9A-Fa-f]+)\s*$", timeout=60)
    print(f"   restored guest carries on: tick {m.group(1)}, TPM2_GetRandom response {m.group(2)}")
    h.check_eq(m.group(3).lower(), ext[9], "PCR 9 after restore equals PCR 9 before save")
    h.check_eq(m.group(2)[12:20], "00000000", "the restored vTPM answers the guest")
    vm2.quit()
    print("== done: measured boot, save and restore verified")
    print("   (vAIK attestation rooted in the host TPM is not built yet: issue 4)")


if __name__ == "__main__":
    h.main(demo)
