#!/usr/bin/env python3
"""The main job: root a vTPM in the host TPM, boot a VM on it, attest it,
save and restore it.
- the host: provision the host AK and the PCR-bound AuthKey, enroll them with
  a privacy CA (credential activation against the EK certificate's roots).
  /dev/tpmrm0 if the machine has a TPM, else Debian's swtpm stands in;
- manufacture the vTPM with vtpm-setup, its EK certificates signed by the
  host's AuthKey; issue the VM's vAIK identity for a tenant's nonce;
- boot the guest under QEMU (TCG): SeaBIOS measures the boot, the guest
  reads its EK certificate and quotes with its vAIK from inside (firmware
  event log included); the tenant's verifier checks the chain down to the
  host TPM, the quote, the event log and a reference value;
- save the VM to a file: the bridge hashes guest RAM (a shared memory
  backend) and sends a snapshot record signed by the host TPM inside the
  vTPM state; a copy of the image with one guest byte changed is refused,
  naming the page; the real image restores into a fresh bridge and QEMU,
  guest RAM verified before the vPCRs are given back."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import harness as h  # noqa: E402


BIN = os.path.dirname(os.path.realpath(h.server_cmd()[0]))
UUID = "00000000-0000-4000-8000-000000000001"
ENV = dict(os.environ, TSS2_LOG="all+none")


def tool(name, *args):
    return h.run([os.path.join(BIN, name)] + list(args), env=ENV)


def demo(work, stack):
    state = os.path.join(work, "vtpm-state")
    os.mkdir(state)
    ctrl = os.path.join(work, "vtpm.sock")
    host = os.path.join(work, "host")
    if os.path.exists("/dev/tpmrm0"):
        tcti, roots = "device:/dev/tpmrm0", os.environ.get("VTPM_EK_ROOTS", "")
        print("== host TPM: /dev/tpmrm0")
    else:
        _, _, tcti, roots = h.stand_in_hw_tpm(stack, work, "hwtpm")
        print(f"== no hardware TPM here: Debian's swtpm stands in for it ({tcti})")
    print(tool("vtpm-host", "provision", "--tcti", tcti, "--dir", host, "--owner-key", h.owner_key(work)).stdout.rstrip())
    print(tool("vtpm-host", "enroll", "--tcti", tcti, "--dir", host, "--ca", os.path.join(work, "privacy-ca"),
               "--ek-roots", roots).stdout.rstrip())
    ak_cert, chain = os.path.join(host, "ak-cert.pem"), os.path.join(host, "ca-chain.pem")
    _, sock = h.host_daemon(stack, work, host, tcti)
    print(f"== vtpm-hostd holds the host TPM and the AuthKey's unsealed auth value; the others ask it on {sock}")
    setup = os.path.join(BIN, "vtpm-setup")
    conf = os.path.join(work, "vtpm-setup.conf")
    with open(conf, "w") as f:
        f.write(f"certificate_issuer = hosttpm\nhost_socket = {sock}\n")
    print("== manufacturing the vTPM as libvirt does (vtpm-setup: EKs, EK and platform certificates signed by "
          "the host TPM's AuthKey, NV lock)")
    h.run([setup, "--tpm2", "--tpm-state", state, "--vmid", "demo:00000000-0000-4000-8000-000000000001",
           "--createek", "--create-ek-cert", "--create-platform-cert", "--lock-nvram", "--not-overwrite",
           "--config", conf])
    user = os.path.join(work, "tenant.pem")
    h.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", os.path.join(work, "tenant.key"), "-out", user, "-subj", "/CN=tenant", "-days", "30"])
    nonce = os.urandom(20).hex()
    print(f"== the tenant asks for attestation with nonce {nonce}; the host issues the VM's identity")
    print("   " + tool("vtpm-attest", "issue", "--hostd", sock, "--state-dir", state, "--vm-uuid", UUID,
                      "--user-cert", user, "--nonce", nonce, "--out", os.path.join(work, "identity")).stdout.rstrip())
    print(f"== starting {' '.join(h.server_cmd())} on {state}, guest RAM in a shared memory file")
    mem = f"/dev/shm/vtpm-demo-{os.getpid()}.ram"
    stack.callback(lambda: os.path.exists(mem) and os.unlink(mem))
    snap = ["--vm-memory", f"path={mem}", "--vm-uuid", UUID, "--vtpm-host", f"socket={sock}"]

    def bridge(name, memfile):
        log = os.path.join(work, f"{name}.log")
        srv = h.libvirt_style_server(stack, state, ctrl, log, extra=[a.replace(mem, memfile) for a in snap])
        return srv, log
    srv1, _ = bridge("bridge-1", mem)
    vm = h.Qemu(stack, work, "vm1", ctrl, device="tpm-crb", append=f"vtpm.nonce={nonce}", mem_path=mem)
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
    v = h.run(["openssl", "verify", "-CAfile", chain, "-untrusted", os.path.join(host, "authkey-cert.pem"),
               os.path.join(work, "guest-ek.pem")], check_rc=False)
    h.check(v.returncode == 0, f"the guest read its EK certificate ({len(der)} bytes) from NV 0x01c00002; "
            f"it chains through the host TPM's AuthKey to the privacy CA")
    h.check(all(boot[i] != "0" * 64 for i in range(8)), "firmware measured PCRs 0-7")
    h.check(ext[9] != boot[9], "guest's own extend reached the vTPM")
    evidence = os.path.join(work, "evidence.bin")
    with open(evidence, "wb") as f:
        f.write(bytes.fromhex("".join(re.findall(r"^EVIDENCE ([0-9a-f]+)\s*$", vm.output(), re.M))))
    ref = os.path.join(work, "reference.txt")
    with open(ref, "w") as f:
        f.write(f"sha256:9 {ext[9]}\n")
    owner_pub = os.path.join(work, "owner.pub.pem")   # the host owner publishes its policy key
    h.run(["openssl", "pkey", "-in", h.owner_key(work), "-pubout", "-out", owner_pub])
    print(f"== the guest quoted with its vAIK from inside ({os.path.getsize(evidence)} bytes of evidence); "
          "the tenant verifies:")
    r = h.run([os.path.join(BIN, "vtpm-attest"), "verify", "--host-ak-cert", ak_cert, "--ca", chain,
               "--user-cert", user, "--nonce", nonce, "--evidence", evidence, "--vm-uuid", UUID,
               "--reference", ref, "--host-record", os.path.join(host, "vms", UUID + ".record"),
               "--owner-key", owner_pub], check_rc=False, env=ENV)
    print("   " + r.stdout.rstrip().replace("\n", "\n   "))
    h.check(r.returncode == 0, "vAIK attestation rooted in the host TPM verified")

    image = os.path.join(work, "vm.state")
    print("== saving the VM (QMP stop + migrate to a file; the bridge hashes guest RAM and signs a record)")
    vm.wait_output(r"TICK 1 ", timeout=30)
    vm.qmp.cmd("stop")
    vm.qmp.cmd("migrate", uri=f"exec:cat > {image}")
    vm.qmp.wait_migration()
    vm.kill()
    srv1.wait(10)
    with open(os.path.join(work, "bridge-1.log")) as f:
        rec = re.search(r"snapshot record: (.*)", f.read())
    h.check(rec is not None, "snapshot record made at save: " + (rec.group(1) if rec else "none"))
    print(f"   saved {os.path.getsize(image)} bytes; QEMU and the bridge are gone")

    def restore(name, img):
        memfile = os.path.join("/dev/shm", f"vtpm-demo-{os.getpid()}-{name}.ram")
        stack.callback(lambda: os.path.exists(memfile) and os.unlink(memfile))
        srv, log = bridge(name, memfile)
        v = h.Qemu(stack, work, name, ctrl, device="tpm-crb", incoming="defer", append=f"vtpm.nonce={nonce}",
                   mem_path=memfile)
        v.qmp.cmd("migrate-incoming", uri=f"exec:cat {img}")
        return v, srv, log

    print("== an image edited on disk: one byte of the guest's RAM changed")
    with open(image, "rb") as f:
        data = bytearray(f.read())
    at = data.find(b"SNAPPAT-00000042-") + 17
    data[at] ^= 1
    bad = os.path.join(work, "vm-edited.state")
    with open(bad, "wb") as f:
        f.write(data)
    before = h.dir_digest(state)
    vm_bad, srv_bad, log_bad = restore("vm-edited", bad)
    h.wait_for(lambda: vm_bad.proc.poll() is not None, 60, "the edited image's QEMU to give up")
    srv_bad.wait(10)
    with open(log_bad) as f:
        why = re.search(r"restore refused: (.*)", f.read())
    h.check(why is not None, "restore refused by the bridge: " + (why.group(1) if why else "?"))
    h.check_eq(h.dir_digest(state), before, "the vTPM state on disk is untouched")

    print("== restoring the real image into a fresh bridge and QEMU")
    vm2, _, log2 = restore("vm2", image)
    h.wait_for(lambda: vm2.qmp.cmd("query-status")["status"] == "paused", 60, "restored VM")
    with open(log2) as f:
        ok = re.search(r"snapshot record verified: (.*)", f.read())
    h.check(ok is not None, "guest RAM verified before the vPCRs were given back: " + (ok.group(1) if ok else "?"))
    vm2.qmp.cmd("cont")
    m = vm2.wait_output(r"^TICK (\d+) ([0-9a-f]+) ([0-9A-Fa-f]+)\s*$", timeout=60)
    print(f"   restored guest carries on: tick {m.group(1)}, TPM2_GetRandom response {m.group(2)}")
    h.check_eq(m.group(3).lower(), ext[9], "PCR 9 after restore equals PCR 9 before save")
    h.check_eq(m.group(2)[12:20], "00000000", "the restored vTPM answers the guest")
    vm2.quit()
    print("== done: measured boot, vAIK attestation rooted in the host TPM, save and restore verified against "
          "guest memory")


if __name__ == "__main__":
    h.main(demo)
