#!/usr/bin/env python3
"""vPCR save/restore with guest-memory verification (issue 5), end to end on
real QEMU 7.2 (TCG) with guest RAM in a shared memory-backend-file, Debian's
swtpm standing in for the host TPM whose AuthKey signs the snapshot records.

The guest extends PCR 9 and writes a pattern into its RAM. Saves to a file
(with RAM in the stream, and with x-ignore-shared where RAM stays in the
shared file) are restored into fresh bridges and QEMUs: verified, vPCRs
back. Then each failure is refused with its own message and loses nothing:
a byte flipped in the saved stream and in the memory file (the error names
the page), a tampered record, a record of another VM, an older generation,
a blob without a record when verification is required; a retry with the
right image succeeds. With policy taint the guest resumes but its quote no
longer verifies. Live migration between two QEMUs on loopback verifies, and
the downtime with and without verification is reported."""
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import uuid

import harness as h
from snapshot_lab import (ATTEST, BIN, ENV, EXTENDED9, HOST, PATTERN, UUID, UUID_OTHER, Lab, fingerprint, ignore_shared,
                          last_tick, log_of, restore, running_on, save)


def flip_in(path, needle, at=17):
    """Flip one byte of the first `needle` in a file; returns its offset."""
    with open(path, "r+b") as f:
        data = f.read()
        off = data.find(needle)
        h.check(off >= 0, f"the guest's RAM pattern is in {os.path.basename(path)}")
        f.seek(off + at)
        f.write(bytes([data[off + at] ^ 0x01]))
    return off + at


def copy_with_flip(src, dst, needle, at):
    with open(src, "rb") as f:
        data = bytearray(f.read())
    off = data.find(needle)
    h.check(off >= 0, f"{needle[:8]!r} found in the saved stream")
    data[off + at] ^= 0x01
    with open(dst, "wb") as f:
        f.write(data)
    return off + at


def expect_refused(lab, name, image, mem_path, want, shared=False, uuid=UUID, required=False, bridge_mem=None):
    before = fingerprint(lab, image)
    h.check(before["state"] and before["ledger"], f"{name}: state and ledger directories are there to compare")
    srv, vm, ok = restore(lab, name, image, mem_path, shared=shared, uuid=uuid, required=required,
                          bridge_mem=bridge_mem)
    h.check(not ok, f"{name}: restore refused")
    log = log_of(srv)
    m = re.search(r"restore refused: (.*)", log) or re.search(r"verification required but impossible: (.*)", log)
    h.check(m is not None and re.search(want, m.group(1)) is not None,
            f"{name}: the bridge says why: {m.group(1) if m else log[-300:]}")
    h.check("stateblob" in vm.qemu_log().lower(), f"{name}: QEMU reports the failed SET_STATEBLOB")
    after = fingerprint(lab, image)
    for k in ("state", "ledger", "image"):
        h.check_eq(after[k], before[k], f"{name}: the {k} is byte-identical after the refusal")
    return m.group(1)


def verify(lab, evidence, extra=()):
    r = h.run([ATTEST, "verify", "--host-ak-cert", os.path.join(lab.host, "ak-cert.pem"),
               "--ca", os.path.join(lab.host, "ca-chain.pem"), "--user-cert", lab.user, "--nonce", lab.nonce,
               "--evidence", evidence, "--vm-uuid", UUID, "--owner-key", lab.owner, "--json"] + list(extra),
              check_rc=False, env=ENV)
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else {}


def evidence(lab, vm, tag, name):
    out = vm.output()
    path = os.path.join(lab.work, name)
    with open(path, "wb") as f:
        f.write(bytes.fromhex("".join(re.findall(rf"^{tag} ([0-9a-f]+)\s*$", out, re.M))))
    return path


def timings(srv):
    log = log_of(srv)
    save_ms = [float(x) for x in re.findall(r"snapshot record: .*\(hashed in ([\d.]+) ms", log)]
    total_ms = [float(x) for x in re.findall(r"snapshot record: .*total ([\d.]+) ms\)", log)]
    check_ms = [float(x) for x in re.findall(r"snapshot record verified: .*\(([\d.]+) ms\)", log)]
    return save_ms, total_ms, check_ms


def record_fields(data, off):
    """Offsets of the variable fields of the snapshot record at data[off:]
    (lib/snapshot/record.hpp): {name: (start of u16 length, end)}."""
    p = off + 8 + 2 + 2 + 16 + 8 + 8 + 1 + 4 + 8 + 32
    p += 4
    n_blocks = struct.unpack_from(">I", data, p)[0]
    p += 4 + 32 * n_blocks + 32 + 32
    n_banks = struct.unpack_from(">H", data, p)[0]
    p += 2
    sizes = {0x0004: 20, 0x000B: 32, 0x000C: 48, 0x000D: 64, 0x0012: 32}
    for _ in range(n_banks):
        alg, n = struct.unpack_from(">HB", data, p)
        p += 3 + n * sizes[alg]
    out = {}
    for name in ("host_key_name", "vaik_public", "quote_attest", "quote_signature", "host_signature"):
        n = struct.unpack_from(">H", data, p)[0]
        out[name] = (p, p + 2 + n)
        p += 2 + n
    return out


def authkey_without_secret(lab):
    """A process with the TPM device (as the bridges' user would have) tries
    TPM2_Sign with the AuthKey (0x81000010) through its PCR policy, with
    tpm2-tools: without the auth value only vtpm-hostd holds, the TPM
    refuses, whether the policy leaves PolicyAuthValue out or includes it
    with a guessed (empty) value."""
    d = os.path.join(lab.work, "attack-authkey")
    os.makedirs(d, exist_ok=True)
    env = dict(os.environ, TPM2TOOLS_TCTI=lab.tcti)
    t = lambda *a, **kw: h.run(["tpm2_" + a[0]] + list(a[1:]), env=env, **kw)  # noqa: E731
    pcrs = "sha256:0,1,2,3,4,5,6,7"
    with open(f"{d}/digest", "wb") as f:
        f.write(hashlib.sha256(b"any digest an attacker likes").digest())
    for with_auth in (False, True):
        pols = []
        for cc in ("Sign", "Certify"):
            t("startauthsession", "-S", f"{d}/trial.ctx")
            t("policypcr", "-S", f"{d}/trial.ctx", "-l", pcrs)
            t("policycommandcode", "-S", f"{d}/trial.ctx", "-L", f"{d}/{cc}.pol", f"TPM2_CC_{cc}")
            if with_auth:
                t("policyauthvalue", "-S", f"{d}/trial.ctx", "-L", f"{d}/{cc}.pol")
            t("flushcontext", f"{d}/trial.ctx")
            pols.append(f"{d}/{cc}.pol")
        t("startauthsession", "--policy-session", "-S", f"{d}/s.ctx")
        t("policypcr", "-S", f"{d}/s.ctx", "-l", pcrs)
        t("policycommandcode", "-S", f"{d}/s.ctx", "TPM2_CC_Sign")
        if with_auth:
            t("policyauthvalue", "-S", f"{d}/s.ctx")
        t("policyor", "-S", f"{d}/s.ctx", "-l", "sha256:" + ",".join(pols))
        r = t("sign", "-c", "0x81000010", "-p", f"session:{d}/s.ctx", "-g", "sha256", "-d", "-o", f"{d}/sig",
              f"{d}/digest", check_rc=False)
        t("flushcontext", f"{d}/s.ctx", check_rc=False)
        how = "PolicyPCR+CommandCode+AuthValue, empty auth" if with_auth else "PolicyPCR+CommandCode (old policy)"
        h.check(r.returncode != 0 and not os.path.exists(f"{d}/sig"),
                f"TPM2_Sign with the AuthKey via {how} without the daemon's secret fails: {r.stderr.strip()[-120:]}")
    mode = os.stat(os.path.join(lab.host, "authkey-auth.sealed")).st_mode & 0o777
    h.check_eq(oct(mode), oct(0o600), "the sealed auth value is readable by the daemon's user only")


def hostd_resign(lab, data, off, hs):
    """The host daemon signs the record at data[off:hs] (without its
    signature) as the VM's next generation, which the test writes into the
    record first: the daemon signs every generation once. Returns the
    marshalled signature."""
    status, f = h.hostd_call(lab.sock, "LedgerLatest", [uuid.UUID(UUID).bytes])
    latest = struct.unpack(">Q", f[1])[0] if status == 0 and f[0] == b"\1" else 0
    struct.pack_into(">Q", data, off + 28, latest + 1)  # magic, version, flags, UUID, then the generation
    status, fields = h.hostd_call(lab.sock, "SignSnapshotRecord", [bytes(data[off:hs]) + b"\0\0"])
    h.check_eq(status, 0, f"vtpm-hostd signs the edited record as generation {latest + 1}: {fields}")
    return fields[0]


def resign_with_bad_quote(lab, src, dst):
    """Copy a saved image with one bit of the record's vAIK quote signature
    flipped and the record re-signed by the host AuthKey: the host signature
    is valid, only the quote is wrong."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    off = data.find(b"VTPMSNAP")
    h.check(off >= 0, "the record is in the saved image")
    fields = record_fields(data, off)
    qs, qe = fields["quote_signature"]
    h.check(qe - qs > 10, f"the record carries a vAIK quote signature ({qe - qs - 2} bytes)")
    data[qe - 1] ^= 0x01
    hs, he = fields["host_signature"]
    for _ in range(10):  # an ECDSA signature can come out shorter: same length keeps the stream's framing
        sig = hostd_resign(lab, data, off, hs)
        if len(sig) == he - hs - 2:
            break
    h.check_eq(len(sig), he - hs - 2, "re-signed record: host signature of the same length")
    data[hs + 2:he] = sig
    with open(dst, "wb") as f:
        f.write(data)


def ledger_rollback(lab, img_old, ledger_old):
    """HOSTDIR/ledger put back to an older copy (generation 1 while the
    latest save is generation 2), and edited. While the daemon runs it holds
    the ledger in memory; at its next start the host TPM's ledger counter
    gives the old copy away, and the file's MAC the edited one."""
    path = lab.ledger_file()
    with open(path, "rb") as f:
        current = f.read()
    h.check(re.search(rb"(?m)^vm = " + UUID.encode() + rb" 2 ", current) is not None,
            "the host ledger holds generation 2")
    hostd = [os.path.join(BIN, "vtpm-hostd"), "--dir", lab.host, "--tcti", lab.tcti, "--socket", lab.sock]
    try:
        with open(path, "wb") as f:
            f.write(ledger_old)
        expect_refused(lab, "ledger-copy-while-running", img_old, lab.mem(),
                       r"replayed record: generation 1 is older than the latest save \(2\)")
        lab.hostd.stop()
        r = h.run(hostd, check_rc=False, timeout=30, env=ENV)
        h.check(r.returncode != 0 and "HOSTDIR was rolled back" in r.stderr and "host TPM's counter is at" in r.stderr,
                f"HOSTDIR/ledger put back: vtpm-hostd refuses to start: {r.stderr.strip()[-200:]}")
        h.check(not os.path.exists(lab.sock), "and it listens nowhere")
        edited = re.sub(rb"(?m)^(vm = " + UUID.encode() + rb") 2 ", rb"\1 1 ", current)
        with open(path, "wb") as f:
            f.write(edited)
        r = h.run(hostd, check_rc=False, timeout=30, env=ENV)
        h.check(r.returncode != 0 and "the MAC does not verify" in r.stderr,
                f"HOSTDIR/ledger edited (generation 2 -> 1): vtpm-hostd refuses to start: {r.stderr.strip()[-160:]}")
    finally:
        with open(path, "wb") as f:
            f.write(current)
        lab.hostd, lab.sock = h.host_daemon(lab.stack, lab.work, lab.host, lab.tcti,
                                            ek_ca=os.path.join(lab.work, "localca"))


def interrupted_commit(lab):
    """vtpm-hostd stopped between writing HOSTDIR/ledger and moving the host
    TPM's counter (a crash, a power cut): the ledger is one commit ahead of
    the counter. The stand-in TPM's state put back to a copy taken before
    the last commit gives exactly that. At its next start the daemon moves
    the counter once and says so; the ledger then works on. (Further ahead,
    or behind, is refused: ledger_rollback.)"""
    def counter_of(path):
        with open(path, "rb") as f:
            m = re.search(rb"(?m)^counter = (\d+)$", f.read())
        return int(m.group(1)) if m else None
    lab.hostd.stop()
    saved_tpm = os.path.join(lab.work, "hwtpm-before-commit")
    lab.hw.stop()
    shutil.copytree(lab.hw_dir, saved_tpm)
    lab.restart_hw()
    lab.hostd, lab.sock = h.host_daemon(lab.stack, lab.work, lab.host, lab.tcti, ek_ca=os.path.join(lab.work, "localca"))
    before = counter_of(lab.ledger_file())
    with open(lab.ledger_file(), "rb") as f:
        gens = [int(g) for g in re.findall(rb"(?m)^(?:vm|old) = " + UUID.encode() + rb" (\d+) ", f.read())]
    older = sorted(set(gens))[-2]
    h.run([HOST, "revert", "--vm", UUID, "--generation", str(older), "--hostd", lab.sock], env=ENV)
    h.check_eq(counter_of(lab.ledger_file()), before + 1, "a revert is one ledger commit")
    lab.hostd.stop()
    lab.hw.stop()
    shutil.rmtree(lab.hw_dir)
    shutil.copytree(saved_tpm, lab.hw_dir)
    lab.restart_hw()
    lab.hostd, lab.sock = h.host_daemon(lab.stack, lab.work, lab.host, lab.tcti, ek_ca=os.path.join(lab.work, "localca"))
    h.check(f"ledger at host TPM counter {before + 1} (an interrupted commit completed)" in lab.hostd.output(),
            "the ledger one commit ahead of the host TPM's counter: the daemon finishes the commit at start")
    h.run([HOST, "revert", "--vm", UUID, "--generation", str(older), "--hostd", lab.sock], env=ENV)
    h.check_eq(counter_of(lab.ledger_file()), before + 2, "and the ledger goes on from there")


def peer_discovery(lab):
    """memory-backend-memfd: nothing to name, the bridge finds QEMU's RAM
    through the control socket's peer (SO_PEERCRED -> /proc/PID/maps)."""
    srv, ctrl = lab.bridge("memfd-boot", "memfd")
    vm = lab.qemu("memfd-boot", ctrl, "memfd")
    vm.wait_output(r"TICK 1 ", timeout=180)
    img = os.path.join(lab.work, "memfd.vmstate")
    save(vm, img)
    last = last_tick(vm)
    m = re.search(rf"snapshot record: VM {UUID} generation (\d+), 65536 pages of /proc/{vm.proc.pid}/\S+ \(/memfd:memory-backend-memfd",
                  log_of(srv))
    h.check(m is not None, "peer: the bridge found QEMU's memfd RAM through the control socket's peer")
    gen = int(m.group(1))
    vm.kill()
    srv.wait(10)
    srv2, vm2, ok = restore(lab, "memfd-restore", img, "memfd")
    h.check(ok and re.search(rf"snapshot record verified: .* of /proc/{vm2.proc.pid}/", log_of(srv2)) is not None,
            "peer: restore verified against the new QEMU's memfd")
    h.check_eq(running_on(vm2, "memfd restore", last), EXTENDED9, "PCR 9 restored (memfd)")
    h.check(f"snapshot generation {gen} of VM {UUID} restored: the host ledger will not take it again" in log_of(srv2),
            "the restore that ran is consumed in the host ledger")
    vm2.kill()
    srv2.wait(10)

    # The same image again: its vTPM ran since (NV counters, lockout): refused.
    expect_refused(lab, "restored-twice", img, "memfd", rf"generation {gen} of VM {UUID} was restored already")
    # Only root's explicit revert lets it restore, once more.
    os.chmod(lab.work, 0o711)  # let another user reach the daemon at all
    os.chmod(lab.sock, 0o666)
    try:
        r = h.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", HOST, "revert", "--vm", UUID,
                   "--generation", str(gen), "--hostd", lab.sock], check_rc=False)
    finally:
        os.chmod(lab.sock, 0o660)
        os.chmod(lab.work, 0o700)
    h.check(r.returncode == 1 and "only root may revert" in r.stderr,
            f"a non-root peer of the daemon cannot revert: {r.stderr.strip()[-100:]}")
    r = h.run([HOST, "revert", "--vm", UUID, "--generation", str(gen), "--hostd", lab.sock], check_rc=False)
    h.check(r.returncode == 0 and f"generation {gen} restores once more" in r.stdout,
            f"vtpm-host revert: {r.stdout.strip()} {r.stderr.strip()}")
    h.check(f"RevertGeneration VM {UUID} generation {gen}" in lab.hostd.output(), "vtpm-hostd logs the revert")
    # Restored, then QEMU quits before the guest's TPM got a command: the
    # bridge's power-off at exit puts the restore to use all the same (else
    # the image would restore again and again while it never runs).
    srv_q, vm_q, ok = restore(lab, "memfd-quit", img, "memfd", resume=False)
    h.check(ok, "after the revert the image restores (left paused)")
    vm_q.kill()
    srv_q.wait(10)
    h.check(f"snapshot generation {gen} of VM {UUID} restored: the host ledger will not take it again" in
            log_of(srv_q), f"a restore whose bridge exits before the guest ran is consumed: {log_of(srv_q)[-300:]}")
    r = h.run([HOST, "revert", "--vm", UUID, "--generation", str(gen), "--hostd", lab.sock], check_rc=False)
    h.check(r.returncode == 0, f"vtpm-host revert, again: {r.stdout.strip()} {r.stderr.strip()}")
    srv3, vm3, ok = restore(lab, "memfd-reverted", img, "memfd")
    h.check(ok, "after the revert the image restores")
    h.check_eq(running_on(vm3, "memfd restore after revert", last), EXTENDED9, "PCR 9 restored after the revert")
    vm3.kill()
    srv3.wait(10)


def unhashed_ram_block(lab):
    """A second RAM backend (a DIMM) that --vm-memory path= does not name
    would travel in the stream unhashed: the save makes no record, and with
    `required` the save fails."""
    main, dimm = lab.mem(), lab.mem()
    lab.stack.callback(lambda: os.path.exists(dimm) and os.unlink(dimm))  # QEMU makes it; it does not remove it
    srv, ctrl = lab.bridge("dimm", main, required=True)
    vm = lab.qemu("dimm", ctrl, main, extra=[
        "-m", "slots=1,maxmem=1G",
        "-object", f"memory-backend-file,id=dimm0,size=64M,mem-path={dimm},share=on",
        "-device", "pc-dimm,id=d0,memdev=dimm0"])
    vm.wait_output(r"TICK 1 ", timeout=180)
    vm.qmp.cmd("stop")
    vm.qmp.cmd("migrate", uri=f"exec:cat > {os.path.join(lab.work, 'dimm.vmstate')}")
    st = h.wait_for(lambda: (vm.qmp.cmd("query-migrate").get("status") or "") in ("failed", "completed") and
                    vm.qmp.cmd("query-migrate")["status"], 60, "dimm: the save to end")
    h.check_eq(st, "failed", "a save that would leave a RAM block unhashed fails (required)")
    h.check(re.search(rf"save refused: .*also maps shared RAM {re.escape(dimm)} \(64 MiB\)", log_of(srv)) is not None,
            f"the bridge names the unhashed DIMM backend: {log_of(srv)[-300:]}")
    vm.kill()
    srv.wait(10)


def qemu_digest(lab):
    """A patched QEMU (qemu-patches/) hands its RAM digest over with
    CMD_VTPM_RAM_DIGEST: played here byte for byte on the control channel."""
    state = os.path.join(lab.work, "vm-digest")
    os.mkdir(state)
    port = h.free_port(2)
    srv = h.Server(lab.stack, ["--tpm2", "--tpmstate", f"dir={state}", "--server", f"type=tcp,port={port}",
                               "--ctrl", f"type=tcp,port={port + 1}", "--flags", "not-need-init",
                               "--vtpm-vendor-ctrl", "--vm-uuid", UUID,
                               "--vtpm-host", f"socket={lab.sock}",
                               "--log", f"file={lab.work}/digest.log,level=20"], wait_port=port + 1)
    srv.log_path = os.path.join(lab.work, "digest.log")
    c = h.Ctrl(port=port + 1)
    caps = h.u32(c.cmd(1, rsp_len=8), 4)
    h.check(caps & (1 << 30) and caps & (1 << 31), f"capability bits 30 and 31 with --vtpm-vendor-ctrl ({caps:#x})")
    h.check_eq(h.u32(c.cmd(2, b"\0\0\0\0")), 0, "CMD_INIT")
    data = socket.create_connection(("127.0.0.1", port))
    h.transact(data, h.tpm2_startup())

    def digest(phase, root):
        body = struct.pack(">IIIQ", phase, 0x000B, 4096, 65536) + root
        return h.u32(c.cmd(0x76540002, body))
    root = hashlib.sha256(b"QEMU's RAM").digest()
    h.check_eq(digest(1, root), 0, "CMD_VTPM_RAM_DIGEST phase 1 (save) accepted")
    h.check_eq(digest(4, root), 3, "CMD_VTPM_RAM_DIGEST with an unknown phase: TPM_BAD_PARAMETER")

    def get_blob(t):
        rsp = c.cmd(0x0c, struct.pack(">III", 1, t, 0), rsp_len=16)
        n = h.u32(rsp, 12)
        return h.u32(rsp, 4), c.recv(n) if n else b""
    perm, vol = get_blob(1)[1], get_blob(2)[1]
    h.check(b"VTPMSNAP" in vol and "pages of QEMU's RAM digest" in log_of(srv),
            "the record binds QEMU's digest when the bridge has no mapping")
    h.check_eq(h.u32(c.cmd(0x0e)), 0, "CMD_STOP")

    def set_blob(t, b):
        return h.u32(c.cmd(0x0d, struct.pack(">III", 0, t, len(b)) + b))
    h.check_eq(digest(2, hashlib.sha256(b"other RAM").digest()), 0, "phase 2 (restore) with another digest")
    h.check_eq(set_blob(1, perm), 0, "SET_STATEBLOB permanent")
    h.check_eq(set_blob(2, vol), 9, "SET_STATEBLOB volatile refused: QEMU's digest differs")
    h.check("QEMU's RAM digest differs" in log_of(srv), "the bridge says QEMU's digest differs")
    h.check_eq(digest(2, root), 0, "phase 2 with the saved digest")
    h.check_eq(set_blob(1, perm), 0, "SET_STATEBLOB permanent again")
    h.check_eq(set_blob(2, vol), 0, "SET_STATEBLOB volatile accepted")
    h.check_eq(h.u32(c.cmd(2, b"\0\0\0\1")), 0, "CMD_INIT after the restore")
    # CMD_VTPM_SNAPSHOT: a record now, for a tool that paused the VM itself.
    h.check(caps & (1 << 29), "capability bit 29: CMD_VTPM_SNAPSHOT")
    h.check_eq(digest(1, root), 0, "QEMU's digest for the on-demand record")
    rsp = c.cmd(0x76540003, rsp_len=8)
    h.check_eq(h.u32(rsp), 0, "CMD_VTPM_SNAPSHOT answered")
    rec = c.recv(h.u32(rsp, 4))
    h.check(rec.startswith(b"VTPMSNAP"), f"CMD_VTPM_SNAPSHOT returned a record ({len(rec)} bytes)")
    h.check_eq(h.u32(c.cmd(0x76540003, rsp_len=4)), 9, "without a digest from QEMU again: no record, TPM_FAIL")
    data.close()
    c.close()
    srv.stop()

    # Debian's swtpm takes the same blobs, record and all (it looks its TLVs up by tag).
    dstate = os.path.join(lab.work, "vm-debian")
    os.mkdir(dstate)
    dport = h.free_port(2)
    h.Server(lab.stack, ["--tpm2", "--tpmstate", f"dir={dstate}", "--server", f"type=tcp,port={dport}",
                         "--ctrl", f"type=tcp,port={dport + 1}"], cmd=[h.SWTPM], wait_port=dport + 1)
    dc = h.Ctrl(port=dport + 1)
    h.check_eq(h.u32(dc.cmd(0x0e)), 0, "Debian swtpm: CMD_STOP")
    for t, b in ((1, perm), (2, vol)):
        h.check_eq(h.u32(dc.cmd(0x0d, struct.pack(">III", 0, t, len(b)) + b)), 0,
                   f"Debian swtpm accepts our blob type {t}" + (" with the snapshot record" if t == 2 else ""))
    h.check_eq(h.u32(dc.cmd(2, b"\0\0\0\1")), 0, "Debian swtpm: CMD_INIT on our restored state")
    dc.close()


def postcopy(lab):
    """Post-copy: the destination gets the vTPM state before guest RAM has
    arrived. The check sees zero pages where the image had data and the policy
    (refuse) fails the switch-over; it is never accepted silently."""
    m1 = lab.mem()
    srv1, c1 = lab.bridge("postcopy-src", m1)
    vm1 = lab.qemu("postcopy-src", c1, m1)
    vm1.wait_output(r"TICK 1 ", timeout=180)
    dst = os.path.join(lab.work, "vm-postcopy")
    os.mkdir(dst)
    m2 = lab.mem()
    srv2, c2 = lab.bridge("postcopy-dst", m2, state=dst)
    port = h.free_port()
    vm2 = lab.qemu("postcopy-dst", c2, m2, incoming=f"tcp:127.0.0.1:{port}")
    for vm in (vm1, vm2):
        vm.qmp.cmd("migrate-set-capabilities", capabilities=[{"capability": "postcopy-ram", "state": True}])
    vm1.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 8 << 20})  # still copying when post-copy starts
    vm1.qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    h.wait_for(lambda: vm1.qmp.cmd("query-migrate").get("status") == "active", 10, "precopy running")
    vm1.qmp.cmd("migrate-start-postcopy")
    h.wait_for(lambda: "restore refused" in log_of(srv2), 30, "the destination's check")
    why = re.search(r"restore refused: (.*)", log_of(srv2)).group(1)
    h.check("RAM not there yet: a post-copy migration?" in why, f"post-copy: refused, the bridge says why: {why}")
    h.wait_for(lambda: vm1.qmp.cmd("query-migrate").get("status") in ("postcopy-paused", "failed"), 30,
               "the source to stop the migration")
    st = vm1.qmp.cmd("query-migrate").get("status")
    h.check(st in ("postcopy-paused", "failed"), f"post-copy: the source's migration stopped ({st})")
    # QEMU 7.2's destination may abort (an assertion after the failed
    # post-copy load) at any moment, also while answering.
    try:
        dst_state = vm2.qmp.cmd("query-status")["status"] if vm2.proc.poll() is None else "exited"
    except (ConnectionError, OSError, ValueError, EOFError):
        dst_state = "exited"
    h.check(dst_state != "running", f"post-copy: the destination did not start ({dst_state})")
    vm1.kill()
    vm2.kill()
    srv1.wait(10)
    srv2.wait(10)


def internal_snapshots(lab):
    """QEMU's internal snapshots (HMP savevm / loadvm on a qcow2 disk, what
    `virsh snapshot-create-as` and `snapshot-revert` do) on one running
    bridge: savevm signs a record, the first loadvm is verified and put to
    use, a second loadvm of the same snapshot is refused (its vTPM ran
    since), and root's revert lets it load once more."""
    mem = lab.mem()
    srv, ctrl = lab.bridge("savevm", mem)
    disk = os.path.join(lab.work, "savevm.qcow2")
    h.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "16M"])
    vm = lab.qemu("savevm", ctrl, mem, extra=["-drive", f"file={disk},if=none,id=disk0,format=qcow2"])
    vm.wait_output(r"(?m)^TICK 2 ", timeout=180)
    h.check_eq(vm.hmp("savevm s1"), "", "savevm with snapshot verification")
    m = re.search(rf"snapshot record: VM {UUID} generation (\d+), 65536 pages of {mem} ", log_of(srv))
    h.check(m is not None, "savevm: the bridge signed a record over the guest's RAM")
    gen = m.group(1)
    consumed = f"snapshot generation {gen} of VM {UUID} restored: the host ledger will not take it again"
    h.check_eq(vm.hmp("loadvm s1"), "", "loadvm: the snapshot's vTPM state is verified and loaded")
    h.check_eq(running_on(vm, "after loadvm"), EXTENDED9, "PCR 9 after loadvm")
    h.wait_for(lambda: consumed in log_of(srv), 30, "the loaded generation consumed")
    # (The state directory is not compared: loadvm resets the machine first,
    # and the vTPM's reset is CMD_INIT then CMD_STOP, which writes its
    # orderly shutdown. That a refused blob never reaches the disk is checked
    # on fresh bridges above.)
    out = vm.hmp("loadvm s1")
    h.check("Setting the stateblob (type 2) failed" in out and
            f"generation {gen} of VM {UUID} was restored already" in log_of(srv),
            f"the same snapshot again is refused: its vTPM ran since: {out[:90]}")
    r = h.run([HOST, "revert", "--vm", UUID, "--generation", gen, "--hostd", lab.sock], check_rc=False)
    h.check(r.returncode == 0, f"root's revert: {r.stdout.strip()} {r.stderr.strip()}")
    h.check_eq(vm.hmp("loadvm s1"), "", "after the revert the snapshot loads")
    vm.qmp.cmd("cont")  # the refused load left the VM stopped
    h.check_eq(running_on(vm, "after the reverted loadvm"), EXTENDED9, "PCR 9 after the reverted loadvm")
    vm.quit()
    h.check_eq(srv.wait(10), 0, "the bridge exits 0 after QEMU quits")


def replaced_host_dir(lab):
    """A HOSTDIR whose authkey.pub is not the AuthKey in the host TPM (here the
    host AK's public key put in its place): the host daemon must not start,
    or a replaced directory would let anyone sign records with a key of their
    own. And a bridge whose daemon is not there, or given the old option
    that had it open the TPM itself, does not start either."""
    fake = os.path.join(lab.work, "host-replaced")
    shutil.copytree(lab.host, fake)
    shutil.copyfile(os.path.join(lab.host, "ak.pub"), os.path.join(fake, "authkey.pub"))
    state = os.path.join(lab.work, "vm-replaced-host")
    os.mkdir(state)
    sock = os.path.join(state, "ctrl.sock")
    hostd = os.path.join(BIN, "vtpm-hostd")
    fake_sock = os.path.join(lab.work, "hostd-replaced.sock")
    r = h.run([hostd, "--dir", fake, "--tcti", lab.tcti, "--socket", fake_sock], check_rc=False, timeout=30, env=ENV)
    h.check(r.returncode != 0 and "is not the AuthKey in the host TPM" in r.stderr,
            f"a replaced HOSTDIR/authkey.pub: vtpm-hostd refuses to start ({r.returncode}: {r.stderr.strip()[-160:]})")
    h.check(not os.path.exists(fake_sock), "and it listens nowhere")
    os.unlink(os.path.join(fake, "authkey.pub"))
    shutil.copyfile(os.path.join(lab.host, "authkey.pub"), os.path.join(fake, "authkey.pub"))
    os.unlink(os.path.join(fake, "authkey-auth.sealed"))
    r = h.run([hostd, "--dir", fake, "--tcti", lab.tcti, "--socket", fake_sock], check_rc=False, timeout=30, env=ENV)
    h.check(r.returncode != 0 and "authkey-auth.sealed" in r.stderr,
            f"no sealed auth value: vtpm-hostd refuses to start ({r.stderr.strip()[-160:]})")
    for how, opt, want in (("no daemon", f"socket={lab.work}/nobody.sock", "is vtpm-hostd running?"),
                           ("the old dir=/tcti= form", f"dir={lab.host},tcti={lab.tcti}",
                            "no longer opens the host TPM")):
        r = h.run([h.server_cmd()[0], "socket", "--tpm2", "--tpmstate", f"dir={state}",
                   "--ctrl", f"type=unixio,path={sock}", "--vm-memory", f"path={lab.mem()},policy=refuse",
                   "--vm-uuid", UUID, "--vtpm-host", opt], check_rc=False, timeout=30)
        h.check(r.returncode != 0 and want in r.stderr,
                f"{how}: the bridge refuses to start ({r.returncode}: {r.stderr.strip()[-160:]})")
        h.check(not os.path.exists(sock) and os.listdir(state) == [], "and it touched nothing in the state directory")


def volatile_on_disk(lab):
    """vPCRs stored with CMD_STORE_VOLATILE (swtpm_ioctl -v) come back at the
    next CMD_INIT, a VM's reset included, checked by no record: for a VM this
    host has saved, the bridge does not resume from them, and leaves the file
    for the operator."""
    state = os.path.join(lab.work, "vm-volatile")
    os.mkdir(state)
    srv, ctrl = lab.bridge("volatile-on-disk", lab.mem(), state=state)
    h.ioctl("--unix", ctrl, "-i")
    h.ioctl("--unix", ctrl, "-v")
    vol = os.path.join(state, "tpm2-00.volatilestate")
    h.check(os.path.exists(vol), "swtpm_ioctl -v stored the TPM's volatile state")
    with open(vol, "rb") as f:
        stored = f.read()
    h.ioctl("--unix", ctrl, "--stop")
    r = h.ioctl("--unix", ctrl, "-i", check_rc=False)
    h.check(r.returncode != 0, f"CMD_INIT over a stored volatile state is refused ({(r.stdout + r.stderr).strip()})")
    h.check("the state holds a volatile state (tpm2-00.volatilestate" in log_of(srv) and
            "this host signed generation" in log_of(srv), "the bridge says why")
    with open(vol, "rb") as f:
        h.check(f.read() == stored, "and leaves the file as it was")
    os.unlink(vol)
    r = h.ioctl("--unix", ctrl, "-i", check_rc=False)
    h.check(r.returncode == 0, "without it the TPM starts from its permanent state")
    srv.stop()


def attacks_on_the_device(lab):
    """Attacks that need the TPM device itself, before the daemon holds it."""
    authkey_without_secret(lab)
    replaced_host_dir(lab)


def test(work, stack):
    lab = Lab(work, stack, before_daemon=attacks_on_the_device)
    ref = os.path.join(work, "reference")
    with open(ref, "w") as f:
        f.write(f"sha256:9 {EXTENDED9}\n")

    # --- boot, save with RAM in the stream.
    m1 = lab.mem()
    srv1, ctrl1 = lab.bridge("boot", m1)
    vm1 = lab.qemu("boot", ctrl1, m1)
    vm1.wait_output(r"VTPM-GUEST ready", timeout=180)
    h.check_eq(vm1.pcrs("extended")[9], EXTENDED9, "the guest extended PCR 9")
    rc, rep = verify(lab, evidence(lab, vm1, "EVIDENCE", "boot.evidence"), ("--reference", ref))
    h.check(rc == 0, f"the guest's boot quote verifies ({rep.get('failed_step')})")
    vm1.wait_output(r"TICK 1 ", timeout=30)
    img_a = os.path.join(work, "a.vmstate")
    save(vm1, img_a)
    h.check(re.search(rf"snapshot record: VM {UUID} generation 1, 65536 pages of {m1} .*quoted by the vAIK",
                      log_of(srv1)) is not None, "save: record over 65536 pages, generation 1, quoted by the vAIK")
    with open(img_a, "rb") as f:
        h.check(b"VTPMSNAP" in f.read(), "the record travels inside QEMU's migration stream")
    last_a = last_tick(vm1)
    with open(lab.ledger_file(), "rb") as f:
        ledger_gen1 = f.read()
    h.check(re.search(rb"(?m)^vm = " + UUID.encode() + rb" 1 ", ledger_gen1) is not None,
            "the host ledger holds generation 1")
    vm1.kill()
    srv1.wait(10)

    # --- each failure, refused with its own message; nothing lost.
    img_t = os.path.join(work, "a-tampered-ram.vmstate")
    copy_with_flip(img_a, img_t, PATTERN, 17)
    mt = lab.mem()
    why = expect_refused(lab, "tampered-stream", img_t, mt, r"differs from the saved image: first differing pages")
    with open(mt, "rb") as f:
        data = f.read()
    tampered = bytearray(PATTERN)
    tampered[17] ^= 0x01
    page = data.find(bytes(tampered)) // 4096
    h.check(f" {page} (0x{page * 4096:x})" in why, f"the error names the tampered page {page}")
    os.unlink(mt)

    img_r = os.path.join(work, "a-tampered-record.vmstate")
    copy_with_flip(img_a, img_r, b"VTPMSNAP", 40)
    expect_refused(lab, "tampered-record", img_r, lab.mem(), r"tampered or foreign record")
    expect_refused(lab, "other-vm", img_a, lab.mem(), rf"belongs to VM {UUID}, not to this VM {UUID_OTHER}",
                   uuid=UUID_OTHER)

    # The bridge pointed at a file QEMU does not run on (here a 128 MiB one;
    # a copy of the saved RAM would be the attack): path= must be QEMU's RAM.
    small = lab.mem()
    with open(small, "wb") as f:
        f.truncate(128 << 20)
    expect_refused(lab, "not-qemus-ram", img_a, lab.mem(), r"is not mapped shared by the control socket's peer",
                   bridge_mem=small)
    os.unlink(small)

    # --- retry with the right image: verified, vPCRs back.
    m2 = lab.mem()
    srv2, vm2, ok = restore(lab, "restore", img_a, m2)
    h.check(ok, "restore of the right image accepted")
    h.check(re.search(rf"snapshot record verified: VM {UUID} generation 1, 65536 pages .*vAIK quote checked",
                      log_of(srv2)) is not None, "the bridge verified record, vAIK quote and guest RAM")
    h.check_eq(running_on(vm2, "restored", last_a), EXTENDED9, "PCR 9 restored")

    # --- x-ignore-shared: RAM stays in the shared file, only devices in the stream.
    img_b = os.path.join(work, "b.vmstate")
    save(vm2, img_b, shared=True)
    h.check(os.path.getsize(img_b) < os.path.getsize(img_a) // 10, "x-ignore-shared: RAM not in the stream")
    last_b = last_tick(vm2)
    vm2.kill()
    srv2.wait(10)
    expect_refused(lab, "older-generation", img_a, lab.mem(), r"replayed record: generation 1 is older than the latest save \(2\)")
    ledger_rollback(lab, img_a, ledger_gen1)
    srv3, vm3, ok = restore(lab, "restore-shared", img_b, m2, shared=True)
    h.check(ok, "x-ignore-shared restore from the same memory file accepted")
    h.check("snapshot record verified" in log_of(srv3), "verified against the shared memory file")
    h.check_eq(running_on(vm3, "restored (x-ignore-shared)", last_b), EXTENDED9, "PCR 9 restored (x-ignore-shared)")
    img_c = os.path.join(work, "c.vmstate")
    save(vm3, img_c, shared=True)
    last_c = last_tick(vm3)
    vm3.kill()
    srv3.wait(10)

    # A byte flipped in the memory file between save and restore.
    off = flip_in(m2, PATTERN)
    why = expect_refused(lab, "tampered-memory", img_c, m2, r"first differing pages", shared=True)
    h.check(f" {off // 4096} (0x{off // 4096 * 4096:x})" in why, f"the error names page {off // 4096} of the memory file")
    flip_in(m2, bytes(tampered))  # put it back
    srv4, vm4, ok = restore(lab, "retry-shared", img_c, m2, shared=True)
    h.check(ok and "snapshot record verified" in log_of(srv4), "retry with the memory put back: verified")
    h.check_eq(running_on(vm4, "retry", last_c), EXTENDED9, "PCR 9 restored on the retry")

    # --- live migration on loopback, verification on the destination.
    port = h.free_port()
    m5 = lab.mem()
    # The destination has a state directory of its own (the source holds the
    # lock on the first until it exits); the state arrives in the stream.
    dst = os.path.join(work, "vm-migrated")
    os.mkdir(dst)
    srv5, ctrl5 = lab.bridge("migrated", m5, state=dst)
    vm5 = lab.qemu("migrated", ctrl5, m5, incoming=f"tcp:127.0.0.1:{port}")
    ignore_shared(vm4, False)  # another memory file on the destination: RAM goes in the stream
    vm4.qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    vm4.qmp.wait_migration()
    down_verified = vm4.qmp.cmd("query-migrate").get("downtime")
    last_4 = last_tick(vm4)
    h.wait_for(lambda: "snapshot record verified" in log_of(srv5) or "refused" in log_of(srv5), 30, "destination check")
    h.check("snapshot record verified" in log_of(srv5), "live migration: destination verified guest RAM: " +
            "; ".join(re.findall(r".*(?:refused|verified|failed).*", log_of(srv5)))[-400:])
    h.check_eq(running_on(vm5, "migrated", last_4), EXTENDED9, "PCR 9 after live migration")
    save_ms, total_ms, _ = timings(srv4)
    _, _, check_ms = timings(srv5)
    vm4.quit()
    srv4.wait(10)
    vm5.kill()
    srv5.wait(10)

    # --- policy taint: the guest resumes, its vPCRs no longer attest.
    m8 = lab.mem()
    srv8, ctrl8 = lab.bridge("taint-boot", m8)
    vm8 = lab.qemu("taint-boot", ctrl8, m8)
    vm8.wait_output(r"VTPM-GUEST ready", timeout=180)
    vm8.wait_output(r"TICK 1 ", timeout=30)
    img_d = os.path.join(work, "d.vmstate")
    save(vm8, img_d, shared=True)
    last_d = last_tick(vm8)
    vm8.kill()
    srv8.wait(10)
    flip_in(m8, PATTERN)
    srv9, vm9, ok = restore(lab, "tainted", img_d, m8, shared=True, policy="taint")
    h.check(ok, "policy taint: the restore goes on")
    h.check("vPCRs will be tainted" in log_of(srv9) and "extended with the snapshot-failure event" in log_of(srv9),
            "policy taint: the failure and the taint are logged")
    vm9.wait_output(r"EVIDENCE2 (end|failed)", timeout=120)
    h.check("EVIDENCE2 end" in vm9.output(), "the tainted guest produced its evidence (EVIDENCE2 end, not failed)")
    h.check(re.search(r"^PCR9-CHANGED [0-9A-Fa-f]+", vm9.output(), re.M) is not None and
            running_on(vm9, "tainted", last_d) != EXTENDED9,
            "the guest resumed and its PCR 9 is no longer the extended value")
    ev_t = evidence(lab, vm9, "EVIDENCE2", "tainted.evidence")
    h.check(os.path.getsize(ev_t) > 100, f"the tainted evidence is not empty ({os.path.getsize(ev_t)} bytes)")
    rc, rep = verify(lab, ev_t, ("--reference", ref))
    h.check(rep.get("steps"), "the verifier parsed the tainted evidence (its report lists the steps)")
    h.check_eq((rc, rep.get("failed_step")), (3, "event-log"),
               "a quote over the tainted vPCRs fails verification at the event log")
    vm9.kill()
    srv9.wait(10)

    # --- bridges without verification: the baseline downtime, and a blob
    # without a record (swtpm's behaviour, or refused when required).
    m10 = lab.mem()
    srv10, ctrl10 = lab.bridge("plain-boot", m10, policy=None)
    vm10 = lab.qemu("plain-boot", ctrl10, m10)
    vm10.wait_output(r"TICK 1 ", timeout=180)
    port = h.free_port()
    m6 = lab.mem()
    dst2 = os.path.join(work, "vm-plain-migrated")
    os.mkdir(dst2)
    srv6, ctrl6 = lab.bridge("plain-migrated", m6, policy=None, state=dst2)
    vm6 = lab.qemu("plain-migrated", ctrl6, m6, incoming=f"tcp:127.0.0.1:{port}")
    vm10.qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    vm10.qmp.wait_migration()
    down_plain = vm10.qmp.cmd("query-migrate").get("downtime")
    h.check_eq(running_on(vm6, "migrated without verification", last_tick(vm10)), EXTENDED9,
               "PCR 9 after live migration without verification")
    vm10.quit()
    srv10.wait(10)
    print(f"# live migration downtime, 256 MiB guest: {down_verified} ms with verification "
          f"(source: hash {save_ms[-1] if save_ms else '?'} ms, whole record {total_ms[-1] if total_ms else '?'} ms; "
          f"destination check {check_ms[-1] if check_ms else '?'} ms), {down_plain} ms without", flush=True)
    img_e = os.path.join(work, "e.vmstate")
    save(vm6, img_e)
    last_e = last_tick(vm6)
    vm6.kill()
    srv6.wait(10)
    expect_refused(lab, "required", img_e, lab.mem(), r"carries no snapshot record", required=True)
    # This host has signed snapshots of the VM: a state without a record is a
    # stripped one, refused even when verification is not required.
    expect_refused(lab, "stripped", img_e, lab.mem(),
                   r"carries no snapshot record, but this host signed generation \d+ of VM " + UUID)
    # A VM the host never saved: swtpm's behaviour, and the skip is logged.
    srv11, vm11, ok = restore(lab, "unverified", img_e, lab.mem(), uuid=UUID_OTHER)
    h.check(ok and "snapshot verification skipped: the volatile state carries no snapshot record" in log_of(srv11),
            "a VM this host never saved: without a record the restore goes on as with swtpm, the skip logged")
    h.check_eq(running_on(vm11, "unverified restore", last_e), EXTENDED9, "PCR 9 after the unverified restore")
    vm11.kill()
    srv11.wait(10)

    peer_discovery(lab)
    unhashed_ram_block(lab)
    qemu_digest(lab)
    postcopy(lab)
    internal_snapshots(lab)
    volatile_on_disk(lab)

    # Last, since the daemon signs it as the VM's newest generation: a record
    # whose vAIK quote does not verify, re-signed with the host's AuthKey so
    # that only the quote is wrong.
    img_q = os.path.join(work, "a-bad-quote.vmstate")
    resign_with_bad_quote(lab, img_a, img_q)
    expect_refused(lab, "bad-vaik-quote", img_q, lab.mem(), r"the vAIK quote signature does not verify")

    # NV wear: the host TPM's ledger counter moved exactly once per save, per
    # restore put to use, per revert, per identity issued or confirmed and
    # per EK key bound (the daemon since its restart in ledger_rollback),
    # never per guest NV write or refused restore.
    steps = []
    for kind, c in re.findall(r"(SignSnapshotRecord|ConsumeGeneration|RevertGeneration|IssueVaik|ConfirmVaik|"
                              r"IssueTcgCert) (?:EK certificate for )?VM \S+ (?:generation \d+ |\(EK key bound\) )?"
                              r"\(ledger counter (\d+)\)", lab.hostd.output()):
        if not steps or steps[-1][1] != c:  # a revert is logged twice (as a warning too)
            steps.append((kind, c))
    counters = [int(c) for _, c in steps]
    h.check(len(steps) >= 10 and counters == list(range(counters[0], counters[0] + len(counters))),
            f"one ledger counter increment per save/restore/revert: {len(steps)} events, counter "
            f"{counters[0] if counters else '?'}..{counters[-1] if counters else '?'}")
    kinds = {k: sum(1 for s in steps if s[0] == k)
             for k in ("SignSnapshotRecord", "ConsumeGeneration", "RevertGeneration", "IssueVaik", "ConfirmVaik",
                       "IssueTcgCert")}
    print(f"# host TPM NV counter increments since the daemon's restart: {kinds}", flush=True)
    interrupted_commit(lab)


if __name__ == "__main__":
    h.main(test, min_checks=191)
