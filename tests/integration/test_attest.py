"""Hardware-rooted VM identity end to end (issue 4), with Debian's swtpm as
the stand-in hardware TPM (manufactured by Debian's swtpm_setup with an EK
certificate from swtpm-localca):

vtpm-host provision + enroll (privacy CA; MakeCredential/ActivateCredential
against the EK roots) -> vtpm-attest issue (offline on a state directory and
online through a running bridge) -> quote from inside a booted QEMU guest and
through a TCTI -> verify. Then every failure the verifier must name: wrong
nonce, replayed evidence, another VM or user, AuthKey policy over other PCRs,
host PCRs changed, tampered CertvAIK/CertAuthKey, a cuckoo quote from another
vTPM, an event log that does not replay, a cloned state directory."""
import hashlib
import json
import os
import pickle
import re
import shutil
import struct
import uuid as uuid_mod

import harness as h

BIN = os.path.dirname(os.path.realpath(h.server_cmd()[0]))
HOST = os.path.join(BIN, "vtpm-host")
ATTEST = os.path.join(BIN, "vtpm-attest")
SETUP = os.environ.get("VTPM_SETUP", os.path.join(BIN, "vtpm-setup"))
UUID1 = "6c1f8e22-4b6f-4d0e-9a51-0d6c3f1b2a77"
UUID2 = "0b6a3e7c-1d2f-4a5b-8c9d-0e1f2a3b4c5d"
ENV = dict(os.environ, TSS2_LOG="all+none")


def vm_state(work, name):
    """A manufactured vTPM; its local CA is in the work directory (with an
    empty --config, vtpm-setup run as root would make the system CA under
    /var/lib/libvtpm)."""
    d = os.path.join(work, name)
    os.mkdir(d)
    conf = os.path.join(work, "vm-setup.conf")
    with open(conf, "w") as f:
        f.write(f"localca_dir = {os.path.join(work, 'vm-localca')}\n")
    h.run([SETUP, "--tpm2", "--tpm-state", d, "--createek", "--create-ek-cert", "--config", conf])
    return d


def user_cert(work, name):
    key, pem = os.path.join(work, name + ".key"), os.path.join(work, name + ".pem")
    h.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", key, "-out", pem, "-subj", f"/CN={name}", "-days", "30"])
    return pem


def attest(*args, check_rc=True):
    return h.run([ATTEST] + list(args), check_rc=check_rc, env=ENV)


def verify(ctx, evidence, nonce, user=None, uuid=UUID1, extra=()):
    owner = ("--owner-key", ctx["owner"]) if ctx.get("owner") else ()
    r = attest("verify", "--host-ak-cert", ctx["ak_cert"], "--ca", ctx["ca"], "--user-cert", user or ctx["user"],
               "--nonce", nonce, "--evidence", evidence, "--vm-uuid", uuid, "--json", *owner, *extra, check_rc=False)
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else {}


def expect_fail(ctx, evidence, nonce, step, what, **kw):
    rc, rep = verify(ctx, evidence, nonce, **kw)
    detail = next((s["detail"] for s in rep.get("steps", []) if s["id"] == step), "")
    h.check(rc == 3 and rep.get("failed_step") == step, f"{what}: fails at '{step}' ({detail})")


# Evidence files: 8-byte magic, then (u16 tag, u32 length, value) records.
def records(data):
    out, off = [], 8
    while off < len(data):
        tag, n = struct.unpack(">HI", data[off:off + 6])
        out.append([tag, data[off + 6:off + 6 + n]])
        off += 6 + n
    return data[:8], out


def join(magic, recs):
    return magic + b"".join(struct.pack(">HI", t, len(v)) + v for t, v in recs)


def edit_evidence(src, dst, fn):
    with open(src, "rb") as f:
        magic, recs = records(f.read())
    fn(recs)
    with open(dst, "wb") as f:
        f.write(join(magic, recs))


def strip_record(container, tag):
    """The same TLV container without its records of `tag`."""
    magic, recs = records(container)
    return join(magic, [r for r in recs if r[0] != tag])


def flip(b, pos):
    b = bytearray(b)
    b[pos] ^= 0x01
    return bytes(b)


def event_log(events):
    """A TCG crypto-agile log (Spec ID Event03, sha256) with (pcr, digest) events."""
    spec = b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, 1) + struct.pack("<HH", 0x0b, 32) + b"\0"
    log = struct.pack("<II", 0, 3) + b"\0" * 20 + struct.pack("<I", len(spec)) + spec
    for pcr, digest in events:
        data = b"test event"
        log += struct.pack("<III", pcr, 0xd, 1) + struct.pack("<H", 0x0b) + digest + struct.pack("<I", len(data)) + data
    return log


def hostd_attacks(work, sock, out, vm_with_certs):
    """Whoever answers on a bridge's --ctrl (or talks to vtpm-hostd directly)
    gets no CertvAIK without proving the vAIK lives in a vTPM whose EK
    certificate the daemon trusts (TPM2_ActivateCredential)."""
    vaik_pub = open(os.path.join(out, "vaik.pub"), "rb").read()
    vm = uuid_mod.UUID(UUID2).bytes
    ek = open(os.path.join(vm_with_certs, "ek-rsa2048.crt"), "rb").read()

    def issue(challenge, activated):
        return h.hostd_call(sock, "IssueVaik", [challenge, activated, vm, b"user", os.urandom(20), vaik_pub,
                                                struct.pack(">Q", 0), b"\0", struct.pack(">I", 7), b"\0"])
    st, f = issue(os.urandom(16), os.urandom(32))
    h.check(st != 0 and b"no open vAIK challenge" in f[0], f"IssueVaik without a challenge is refused: {f[0][:90]}")
    st, f = h.hostd_call(sock, "VaikChallenge", [vm, vaik_pub, ek])
    h.check(st == 0, f"a challenge for a trusted EK certificate: {f[0][:120] if st else st}")
    st, f2 = issue(f[0], os.urandom(32))
    h.check(st != 0 and b"not opened" in f2[0], f"a guessed activation is refused: {f2[0][:90]}")
    st, f3 = issue(f[0], os.urandom(32))
    h.check(st != 0 and b"no open vAIK challenge" in f3[0], "a challenge is answered once")
    bogus = os.path.join(work, "bogus-ek")
    h.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", bogus + ".key", "-out",
           bogus + ".pem", "-subj", "/CN=fake EK", "-days", "3", "-outform", "DER"])
    st, f = h.hostd_call(sock, "VaikChallenge", [vm, vaik_pub, open(bogus + ".pem", "rb").read()])
    h.check(st != 0 and b"not trusted" in f[0], f"a self-made EK certificate gets no challenge: {f[0][:90]}")
    st, f = h.hostd_call(sock, "SignSnapshotRecord", [b"sign this digest please"])
    h.check(st != 0 and b"not a snapshot record" in f[0], f"hostd signs no arbitrary bytes: {f[0][:90]}")
    st, f = h.hostd_call(sock, None, [], raw=struct.pack(">I", 0xffffffff))
    h.check(st != 0, "an oversized frame is refused")
    st, f = h.hostd_call(sock, "HostInfo", [])
    h.check_eq(st, 0, "and the daemon still answers")


def as_nobody(work, sock, fn):
    """fn() in a child running as uid/gid 65534 (a peer of the daemon that is
    not root, as a compromised bridge would be); its return value."""
    modes = os.stat(work).st_mode & 0o777, os.stat(sock).st_mode & 0o777
    os.chmod(work, 0o711)  # let another user reach the daemon at all
    os.chmod(sock, 0o666)
    try:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                with os.fdopen(w, "wb") as out:
                    pickle.dump(fn(), out)
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as inp:
            data = inp.read()
        os.waitpid(pid, 0)
    finally:
        os.chmod(sock, modes[1])
        os.chmod(work, modes[0])
    return pickle.loads(data)


def spki(work, name, algo="rsa:2048"):
    """A key made in software: the DER SubjectPublicKeyInfo of work/name.key."""
    key, der = os.path.join(work, name + ".key"), os.path.join(work, name + ".spki")
    kind, _, param = algo.partition(":")
    opts = ["-pkeyopt", f"rsa_keygen_bits:{param}"] if kind == "rsa" else ["-pkeyopt", f"ec_paramgen_curve:{param}"]
    h.run(["openssl", "genpkey", "-algorithm", kind.upper(), *opts, "-out", key])
    h.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER", "-out", der])
    return open(der, "rb").read()


def tcg_cert(sock, key, cn, days=-1, kind=0):
    """IssueTcgCert as vtpm-setup sends it (certificate_issuer = hosttpm)."""
    return h.hostd_call(sock, "IssueTcgCert", [
        bytes([kind]), key, b"\1", b"\0", b"\1", cn.encode() if isinstance(cn, str) else cn, b"id:00001014",
        b"swtpm", b"id:20191023", b"2.0", struct.pack(">Q", 0), struct.pack(">Q", 164), b"libvtpm",
        b"libvtpm vTPM", b"0.1", struct.pack(">i", days)])


UUID3 = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"


def ek_binding(host, uuid):
    """VM `uuid`'s EK binding in HOSTDIR/ledger ('ek = UUID RSA|- ECC|-'),
    as (rsa, ecc) hex or '-', or None when the ledger has none."""
    for line in open(os.path.join(host, "ledger")):
        key, _, value = line.partition(" = ")
        if key == "ek" and value.split()[0] == uuid:
            return tuple(value.split()[1:])
    return None


def proof_of_possession(work, sock, host, hostd, out, vmh, conf):
    """The AuthKey signs an EK certificate for whatever key it is sent. Each
    VM's EK key is bound at its first EK certificate, in the daemon's ledger
    (anchored in the host TPM's counter, so no file put back or planted
    changes it): a peer that is not root gets no EK certificate for another
    key of that VM, and an AuthKey-issued EK certificate proves a vAIK
    (VaikChallenge) only with the key bound to the VM it names. So a
    software key never becomes a VM's EK, nor its vAIK."""
    vaik_pub = open(os.path.join(out, "vaik.pub"), "rb").read()
    bound = ek_binding(host, UUID2)
    h.check(bound is not None and len(bound) == 2 and "-" not in bound,
            f"vtpm-setup (hosttpm) bound VM 2's RSA and ECC EK keys in the ledger: {bound}")
    h.check(re.search(rf"IssueTcgCert EK certificate for VM {UUID2} \(EK key bound\) \(ledger counter \d+\)",
                      hostd.output()), "each binding is one step of the ledger counter, logged")
    h.check(not os.path.exists(os.path.join(host, "vms", UUID2 + ".ek")), "and no binding file is written")
    sw = spki(work, "software-ek")
    st, f = as_nobody(work, sock, lambda: tcg_cert(sock, sw, f"evil:{UUID2}"))
    h.check(st != 0 and b"already has an RSA EK" in f[0] and b"re-manufacturing needs root" in f[0],
            f"a non-root peer gets no EK certificate for a software key of a VM that has an EK: {f[0][:120]}")
    st, f = as_nobody(work, sock, lambda: tcg_cert(sock, sw, f"evil:{UUID2}", kind=1))
    h.check(st != 0 and b"already has an RSA EK" in f[0], f"nor a platform certificate: {f[0][:90]}")
    h.check_eq(ek_binding(host, UUID2), bound, "and the binding is unchanged")
    # The binding file older versions kept, planted for the software key (as
    # an older copy put back would be): never read, so still refused. The
    # old daemon read it and issued the certificate.
    planted = os.path.join(host, "vms", UUID2 + ".ek")
    with open(planted, "w") as f:
        f.write(f"vm_uuid = {UUID2}\nrsa_ek_spki_sha256 = {hashlib.sha256(sw).hexdigest()}\n")
    st, f = as_nobody(work, sock, lambda: tcg_cert(sock, sw, f"evil:{UUID2}"))
    h.check(st != 0 and b"already has an RSA EK" in f[0],
            f"a binding file planted for a software key binds nothing: {f[0][:120]}")
    h.check_eq(ek_binding(host, UUID2), bound, "and the ledger's binding is unchanged")
    # What the daemon certifies at all.
    for what, args, want in (
            ("a 512-bit RSA key", (spki(work, "rsa512", "rsa:512"), f"vm:{UUID3}"), b"512 bits is refused"),
            ("an EC key on P-521", (spki(work, "p521", "ec:P-521"), f"vm:{UUID3}"), b"is refused (P-256 or P-384)"),
            ("an empty subject", (sw, ""), b"the subject CN is empty"),
            ("a CN with a NUL byte", (sw, b"vm\0:" + UUID3.encode()), b"NUL or control character"),
            ("a CN naming two VMs", (sw, f"{UUID2}:{UUID3}"), b"names two VM UUIDs"),
            ("0 days", (sw, f"vm:{UUID3}", 0), b"days is refused"),
            ("-5 days", (sw, f"vm:{UUID3}", -5), b"days is refused"),
            ("36501 days", (sw, f"vm:{UUID3}", 36501), b"days is refused")):
        st, f = tcg_cert(sock, *args)
        h.check(st != 0 and want in f[0], f"IssueTcgCert refuses {what}: {f[0][:90]}")
    h.check(ek_binding(host, UUID3) is None, "and binds nothing")

    # A VM whose EK certificate was issued for a key that is no longer its EK.
    st, f = as_nobody(work, sock, lambda: tcg_cert(sock, sw, f"vm3:{UUID3}", days=36500))
    h.check_eq(st, 0, "a VM's first EK certificate binds its key, whoever asks")
    stale = f[0]
    st, f = tcg_cert(sock, spki(work, "second-ek"), f"vm3:{UUID3}")
    h.check(st == 0 and f"VM {UUID3}: EK key replaced for pid" in hostd.output(),
            "root re-manufacturing: another key is bound, logged as a warning")
    st, f = h.hostd_call(sock, "VaikChallenge", [uuid_mod.UUID(UUID3).bytes, vaik_pub, stale])
    h.check(st != 0 and b"not the EK bound to VM " + UUID3.encode() in f[0],
            f"an AuthKey-issued EK certificate of a key not bound to the VM gets no challenge: {f[0][:120]}")
    st, f = h.hostd_call(sock, "VaikChallenge", [uuid_mod.UUID(UUID2).bytes, vaik_pub, stale])
    h.check(st != 0 and f"is for VM {UUID3}, not VM {UUID2}".encode() in f[0],
            f"nor one naming another VM: {f[0][:120]}")
    st, f = tcg_cert(sock, spki(work, "no-vm-ek"), "unknown")
    h.check_eq(st, 0, "an EK certificate naming no VM is issued (vtpm-setup without --vmid)")
    st, f = h.hostd_call(sock, "VaikChallenge", [uuid_mod.UUID(UUID3).bytes, vaik_pub, f[0]])
    h.check(st != 0 and b"names no VM UUID" in f[0], f"but proves no vAIK: {f[0][:120]}")

    # Root re-manufactures VM 2 (vtpm-setup --overwrite): new EK keys, bound; the old certificate is stale.
    old_ek = open(os.path.join(vmh, "ek-rsa2048.crt"), "rb").read()
    h.run([SETUP, "--tpm2", "--tpm-state", vmh, "--createek", "--create-ek-cert", "--config", conf, "--overwrite",
           "--vmid", f"vm-hosttpm:{UUID2}", "--write-ek-cert-files", vmh], env=ENV)
    new_ek = open(os.path.join(vmh, "ek-rsa2048.crt"), "rb").read()
    rebound = ek_binding(host, UUID2)
    h.check(new_ek != old_ek and rebound[0] != bound[0] and rebound[1] != bound[1],
            "root re-manufactures VM 2: its new EK keys bound")
    st, f = h.hostd_call(sock, "VaikChallenge", [uuid_mod.UUID(UUID2).bytes, vaik_pub, old_ek])
    h.check(st != 0 and b"not the EK bound" in f[0], f"the old EK certificate proves no vAIK any more: {f[0][:90]}")
    st, f = h.hostd_call(sock, "VaikChallenge", [uuid_mod.UUID(UUID2).bytes, vaik_pub, new_ek])
    h.check(st == 0, f"the new one does: {f[0][:90] if st else st}")
    # --adopt overrides the identity-clash check: an operator's act.
    st, f = as_nobody(work, sock, lambda: h.hostd_call(sock, "IssueVaik", [
        os.urandom(16), os.urandom(32), uuid_mod.UUID(UUID2).bytes, b"user", os.urandom(20), vaik_pub,
        struct.pack(">Q", 0), b"\0", struct.pack(">I", 7), b"\1"]))
    h.check(st != 0 and b"only root may adopt" in f[0], f"a non-root peer cannot --adopt: {f[0][:90]}")


UUID_SK = "5c4b3a29-1807-4f6e-9d5c-4b3a29180706"


def state_key(sock, create, vm=UUID_SK):
    """StateKey: (status, created, key or the refusal's text)."""
    st, f = h.hostd_call(sock, "StateKey", [uuid_mod.UUID(vm).bytes, b"\1" if create else b"\0"])
    return (st, f[0] == b"\1", f[1]) if st == 0 else (st, False, f[0])


def state_keys(sock, host):
    """A VM's state-at-rest key: made by the daemon on request, on disk only
    sealed to the host TPM, the same key on every later request."""
    path = os.path.join(host, "vms", UUID_SK + ".statekey")
    st, _, why = state_key(sock, False)
    h.check(st != 0 and b"has no state key on this host" in why, f"no key is made unless asked: {why[:80]}")
    h.check(not os.path.exists(path), "and nothing is written")
    st, created, key = state_key(sock, True)
    h.check(st == 0 and created and len(key) == 32, "StateKey with create: a new 32-byte key")
    h.check_eq(os.stat(path).st_mode & 0o777, 0o600, "the sealed key file is mode 0600")
    with open(path, "rb") as f:
        sealed = f.read()
    h.check(key not in sealed and key[:16] not in sealed and key[16:] not in sealed,
            "the key is not in the file in the clear")
    st, created, again = state_key(sock, True)
    h.check(st == 0 and not created and again == key, "asked again (create or not): the same key, unsealed")
    h.check_eq(state_key(sock, False)[2], key, "without create: the same key")
    st, created, other = state_key(sock, True, UUID1)
    h.check(st == 0 and other != key, "another VM gets another key")
    for bad in ([uuid_mod.UUID(UUID_SK).bytes], [b"\0" * 15, b"\1"], [uuid_mod.UUID(UUID_SK).bytes, b"\2"]):
        st, f = h.hostd_call(sock, "StateKey", bad)
        h.check(st != 0 and f and f[0].startswith(b"StateKey"), f"a malformed StateKey is refused: {f[0][:70]}")
    with open(path, "rb") as f:
        h.check_eq(f.read(), sealed, "the sealed key file is never rewritten")
    return key


def test(work, stack):
    hw, port, tcti, roots = h.stand_in_hw_tpm(stack, work, "hwtpm")
    host = os.path.join(work, "host")
    cadir = os.path.join(work, "privacy-ca")
    h.run([HOST, "provision", "--tcti", tcti, "--dir", host, "--owner-key", h.owner_key(work)], env=ENV)

    # Enrollment refuses EK roots that did not sign the EK certificate.
    other_ca = os.path.join(work, "other-ca")
    h.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", other_ca + ".key", "-out", other_ca + ".pem", "-subj", "/CN=other", "-days", "3"])
    bad = h.run([HOST, "enroll", "--tcti", tcti, "--dir", host, "--ca", cadir, "--ek-roots", other_ca + ".pem"],
                check_rc=False, env=ENV)
    h.check(bad.returncode == 1 and "EK certificate is not trusted" in bad.stderr,
            f"enroll refuses an EK certificate not from the given roots: {bad.stderr.strip()}")
    h.check(not os.path.exists(os.path.join(host, "ak-cert.pem")), "no host AK certificate after a refused enroll")
    en = h.run([HOST, "enroll", "--tcti", tcti, "--dir", host, "--ca", cadir, "--ek-roots", roots], env=ENV)
    h.check("credential activation" in en.stdout, "enroll: AK proven by MakeCredential/ActivateCredential")
    ak_cert, auth_cert = os.path.join(host, "ak-cert.pem"), os.path.join(host, "authkey-cert.pem")
    chain = os.path.join(host, "ca-chain.pem")
    for c in (ak_cert, auth_cert):
        r = h.run(["openssl", "verify", "-CAfile", chain, c], check_rc=False)
        h.check(r.returncode == 0, f"{os.path.basename(c)} chains to the privacy CA (openssl verify)")
    text = h.run(["openssl", "x509", "-in", auth_cert, "-noout", "-ext", "basicConstraints,extendedKeyUsage"]).stdout
    h.check("CA:TRUE, pathlen:0" in text and "2.23.133.8.1, 2.23.133.8.2, 2.23.133.8.3" in text,
            f"the AuthKey certificate issues end-entity EK, platform and AIK certificates only: {' '.join(text.split())}")
    ak_pub = h.run(["openssl", "x509", "-in", ak_cert, "-noout", "-pubkey"]).stdout
    h.check_eq(ak_pub, open(os.path.join(host, "ak.pem")).read(), "the AK certificate is for the provisioned AK")
    st = h.run([HOST, "status", "--tcti", tcti, "--dir", host], env=ENV)
    h.check("ak-cert.pem" in st.stdout and "valid now" in st.stdout, "status shows the certificates' validity")
    # From here on vtpm-hostd is the stand-in TPM's only client; the others ask it.
    hostd, sock = h.host_daemon(stack, work, host, tcti, ek_ca=os.path.join(work, "vm-localca"))
    # vtpm-setup with certificate_issuer = hosttpm: the EK chain ends in the hardware TPM.
    conf = os.path.join(work, "vtpm-setup.conf")
    with open(conf, "w") as f:
        f.write(f"certificate_issuer = hosttpm\nhost_socket = {sock}\n")
    vmh = os.path.join(work, "vm-hosttpm")
    os.mkdir(vmh)
    h.run([SETUP, "--tpm2", "--tpm-state", vmh, "--createek", "--create-ek-cert", "--config", conf,
           "--vmid", f"vm-hosttpm:{UUID2}", "--write-ek-cert-files", vmh], env=ENV)
    for crt in sorted(f for f in os.listdir(vmh) if f.endswith(".crt")):
        pem = os.path.join(work, crt + ".pem")
        h.run(["openssl", "x509", "-inform", "der", "-in", os.path.join(vmh, crt), "-out", pem])
        r = h.run(["openssl", "verify", "-CAfile", chain, "-untrusted", auth_cert, pem], check_rc=False)
        issuer = h.run(["openssl", "x509", "-in", pem, "-noout", "-issuer"]).stdout
        h.check(r.returncode == 0 and "vTPM AuthKey" in issuer,
                f"{crt} issued by the AuthKey, chains to the privacy CA: {r.stdout.strip()}")
    # The tenant trusts the host owner's policy key (its public part).
    owner_pub = os.path.join(work, "owner.pub.pem")
    h.run(["openssl", "pkey", "-in", h.owner_key(work), "-pubout", "-out", owner_pub])
    ctx = {"ak_cert": ak_cert, "ca": chain, "user": user_cert(work, "tenant"), "owner": owner_pub}
    other_user = user_cert(work, "other-tenant")

    # --- offline issue, quote from inside a booted QEMU guest, verify.
    vm1 = vm_state(work, "vm1")
    n1 = os.urandom(20).hex()
    out1 = os.path.join(work, "out1")
    r = attest("issue", "--hostd", sock, "--state-dir", vm1, "--vm-uuid", UUID1, "--user-cert", ctx["user"],
               "--nonce", n1, "--out", out1)
    h.check("generation 1" in r.stdout and "vAIK created" in r.stdout, "offline issue: generation 1, vAIK created")
    r = h.run(["openssl", "verify", "-partial_chain", "-CAfile", auth_cert, os.path.join(out1, "cert-vaik.pem")],
              check_rc=False)
    h.check(r.returncode == 0, "CertvAIK verifies with the AuthKey certificate (openssl)")
    txt = h.run(["openssl", "x509", "-in", os.path.join(out1, "cert-vaik.pem"), "-noout", "-text"]).stdout
    h.check(f"URI:urn:uuid:{UUID1}" in txt and "2.23.133.8.3" in txt, "CertvAIK names the VM and is an AIK cert")
    hostd_attacks(work, sock, out1, vmh)
    proof_of_possession(work, sock, host, hostd, out1, vmh, conf)
    vm_key = state_keys(sock, host)

    ctrl = os.path.join(work, "vm1.sock")
    srv = h.libvirt_style_server(stack, vm1, ctrl, os.path.join(work, "vm1.log"))
    vm = h.Qemu(stack, work, "attest-guest", ctrl, append=f"vtpm.nonce={n1}")
    vm.wait_output(r"VTPM-GUEST ready", timeout=180)
    out = vm.output()
    h.check("EVIDENCE end" in out, "the guest ran vtpm-attest quote on /dev/tpmrm0: " +
            ("ok" if "EVIDENCE end" in out else out[-400:]))
    ev_guest = os.path.join(work, "guest.evidence")
    with open(ev_guest, "wb") as f:
        f.write(bytes.fromhex("".join(re.findall(r"^EVIDENCE ([0-9a-f]+)\s*$", out, re.M))))
    pcr9 = hashlib.sha256(b"\0" * 32 + b"\x42" * 32).hexdigest()
    ref = os.path.join(work, "reference")
    with open(ref, "w") as f:
        f.write(f"# PCR 9 after the guest's one extend\nsha256:9 {pcr9}\n")
    rc, rep = verify(ctx, ev_guest, n1, extra=("--reference", ref, "--host-record",
                                               os.path.join(host, "vms", UUID1 + ".record")))
    steps = {s["id"]: s["status"] for s in rep.get("steps", [])}
    h.check(rc == 0 and rep.get("ok"), f"guest evidence verifies: {steps}")
    h.check(steps.get("reference-values") == "pass", "reference value of PCR 9 checked")
    h.check("SECURITYFS binary_bios_measurements" in out,
            "the guest has the firmware event log: " + " ".join(re.findall(r"^SECURITYFS .*$", out, re.M)))
    h.check_eq(steps.get("event-log"), "pass", "the guest's firmware event log replays to PCRs 0-7")
    vm.kill()
    srv.wait(10)

    # --- online issue through a running bridge, quote through a TCTI.
    bsrv, bport = h.tcp_server(stack, vm1, extra=["--vtpm-vendor-ctrl"])
    plain = h.ioctl("--tcp", f"127.0.0.1:{bport + 1}", "-c").stdout
    h.check("0x800" in plain, f"the vendor capability bit is advertised with --vtpm-vendor-ctrl: {plain.strip()}")
    n2 = os.urandom(16).hex()
    out2 = os.path.join(work, "out2")
    r = attest("issue", "--hostd", sock, "--ctrl", f"tcp:127.0.0.1:{bport + 1}", "--vm-uuid", UUID1,
               "--user-cert", ctx["user"], "--nonce", n2, "--out", out2)
    h.check("generation 2" in r.stdout and "online" in r.stdout and "vAIK kept" in r.stdout,
            "online issue on the running bridge: generation 2, same vAIK")
    vtcti = f"swtpm:host=127.0.0.1,port={bport}"
    # An event log for PCR 8, extended for real.
    d8 = hashlib.sha256(b"measured thing").digest()
    h.tpm2(bport, "pcrextend", f"8:sha256={d8.hex()}")
    log = os.path.join(work, "eventlog.bin")
    with open(log, "wb") as f:
        f.write(event_log([(8, d8)]))
    ev2 = os.path.join(work, "tcti.evidence")
    attest("quote", "--tcti", vtcti, "--nonce", n2, "--out", ev2, "--eventlog", log)
    rc, rep = verify(ctx, ev2, n2)
    steps = {s["id"]: s["status"] for s in rep.get("steps", [])}
    h.check(rc == 0 and steps.get("event-log") == "pass", f"TCTI evidence with an event log verifies: {steps}")
    h.check(steps.get("host-quote") == "pass" and steps.get("authkey-policy") == "pass" and
            steps.get("host-owner") == "pass", "host PCRs quoted, approved by the trusted owner key")
    table = attest("verify", "--host-ak-cert", ak_cert, "--ca", chain, "--user-cert", ctx["user"], "--nonce", n2,
                   "--evidence", ev2, "--vm-uuid", UUID1).stdout
    h.check("VERIFIED: VM " + UUID1 in table, "readable table for people")

    # --- every failure, named.
    expect_fail(ctx, ev2, n2[:30], "inputs", "a 15-byte nonce (guessable) is refused before anything is read")
    expect_fail(dict(ctx, ak_cert=auth_cert), ev2, n2, "host-ak-certificate",
                "the AuthKey's certificate (a CA under the same root) presented as the host AK certificate")
    expect_fail(ctx, ev2, os.urandom(16).hex(), "cert-authkey", "wrong nonce")
    expect_fail(ctx, ev_guest, n2, "cert-authkey", "replayed evidence (generation 1, earlier nonce)")
    rc, rep = verify(ctx, ev_guest, n1, extra=("--host-record", os.path.join(host, "vms", UUID1 + ".record")))
    h.check(rep.get("failed_step") == "uniqueness", "old evidence with its own nonce: superseded generation named")
    expect_fail(ctx, ev2, n2, "cert-vaik-bindings", "certificate for another VM UUID", uuid=UUID2)
    expect_fail(ctx, ev2, n2, "cert-authkey", "certificate for another user", user=other_user)
    tampered = os.path.join(work, "tampered.evidence")
    edit_evidence(ev2, tampered, lambda recs: [r.__setitem__(1, flip(r[1], len(r[1]) - 5)) for r in recs if r[0] == 5])
    expect_fail(ctx, tampered, n2, "cert-vaik-signature", "tampered CertvAIK bytes")
    # The owner's part of the identity bundle: stripped, or trusted from another owner.
    for tag, what in ((7, "owner key"), (8, "owner approval"), (9, "host quote")):
        stripped = os.path.join(work, f"stripped-{tag}.evidence")
        edit_evidence(ev2, stripped, lambda recs: [r.__setitem__(1, strip_record(r[1], tag)) for r in recs
                                                   if r[0] == 6])
        expect_fail(ctx, stripped, n2, "cert-authkey", f"{what} stripped from the identity bundle")
    other_owner = os.path.join(work, "other-owner.pub.pem")
    h.run(["openssl", "pkey", "-in", h.owner_key(work, "other-owner"), "-pubout", "-out", other_owner])
    expect_fail(dict(ctx, owner=other_owner), ev2, n2, "host-owner", "host state approved by an untrusted owner key")
    rc, rep = verify(dict(ctx, owner=None), ev2, n2)
    h.check(rc == 0 and "host-owner" in rep.get("not_verified", []),
            f"without --owner-key the owner check is reported NOT VERIFIED: {rep.get('not_verified')}")

    def tamper_bundle(recs):
        for r in recs:
            if r[0] == 6:
                magic, inner = records(r[1])
                for ir in inner:
                    if ir[0] == 2:  # the TPM2_Certify attestation
                        ir[1] = flip(ir[1], len(ir[1]) - 3)
                r[1] = join(magic, inner)
    edit_evidence(ev2, tampered, tamper_bundle)
    expect_fail(ctx, tampered, n2, "cert-authkey", "tampered CertAuthKey bytes")
    edit_evidence(ev2, tampered, lambda recs: recs.__setitem__(slice(None), [r for r in recs if r[0] != 7] +
                                                               [[7, event_log([(8, hashlib.sha256(b"x").digest())])]]))
    expect_fail(ctx, tampered, n2, "event-log", "an event log that does not replay")

    # Cuckoo: another vTPM (VM 2, same host) answers the quote for VM 1.
    vm2 = vm_state(work, "vm2")
    attest("issue", "--hostd", sock, "--state-dir", vm2, "--vm-uuid", UUID2, "--user-cert", ctx["user"],
           "--nonce", n2, "--out", os.path.join(work, "out-vm2"))
    c2, c2port = h.tcp_server(stack, vm2)
    ev_other = os.path.join(work, "vm2.evidence")
    attest("quote", "--tcti", f"swtpm:host=127.0.0.1,port={c2port}", "--nonce", n2, "--out", ev_other)
    with open(ev_other, "rb") as f:
        _, other = records(f.read())
    quote2 = {t: v for t, v in other if t in (1, 2)}
    edit_evidence(ev2, tampered, lambda recs: [r.__setitem__(1, quote2[r[0]]) for r in recs if r[0] in (1, 2)])
    expect_fail(ctx, tampered, n2, "quote-signature", "quote relayed from another vTPM (cuckoo)")
    r = attest("issue", "--hostd", sock, "--ctrl", f"tcp:127.0.0.1:{c2port + 1}", "--vm-uuid", UUID2,
               "--user-cert", ctx["user"], "--nonce", n2, "--out", os.path.join(work, "out-nov"),
               check_rc=False)
    h.check(r.returncode == 1 and "does not offer CMD_VTPM_TPM_COMMAND" in r.stderr,
            f"online issue refused by a bridge without --vtpm-vendor-ctrl: {r.stderr.strip()}")
    c2.stop()
    # Quote with a nonce other than the one the certificates were issued for.
    ev_stale = os.path.join(work, "stale.evidence")
    attest("quote", "--tcti", vtcti, "--nonce", "00" * 16, "--out", ev_stale)
    expect_fail(ctx, ev_stale, n2, "quote-nonce", "quote over another nonce")
    bsrv.stop()

    # Cloned state directory / older copy: no second identity.
    clone = os.path.join(work, "vm1-clone")
    shutil.copytree(vm1, clone)
    record_file = os.path.join(host, "vms", UUID1 + ".record")
    rec_of_clone = open(record_file).read()  # the host's record when the copy was taken
    attest("issue", "--hostd", sock, "--state-dir", vm1, "--vm-uuid", UUID1, "--user-cert", ctx["user"],
           "--nonce", n2, "--out", os.path.join(work, "out3"))
    before = h.dir_digest(clone)
    rec_before = open(os.path.join(host, "vms", UUID1 + ".record")).read()
    r = attest("issue", "--hostd", sock, "--state-dir", clone, "--vm-uuid", UUID1, "--user-cert", ctx["user"],
               "--nonce", n2, "--out", os.path.join(work, "out4"), check_rc=False)
    h.check(r.returncode == 1 and "identity clash" in r.stderr and "clone or an older copy" in r.stderr,
            f"issue refuses a cloned/older state: {r.stderr.strip()}")
    h.check_eq(h.dir_digest(clone), before, "the refused clone's state is untouched")
    h.check_eq(open(os.path.join(host, "vms", UUID1 + ".record")).read(), rec_before, "the host record is untouched")
    # The record file put back from that copy too (as a backup of HOSTDIR
    # would): the daemon keeps the records in its ledger, anchored in the
    # host TPM's counter, and the older generation stays superseded.
    with open(record_file, "w") as f:
        f.write(rec_of_clone)
    r = attest("issue", "--hostd", sock, "--state-dir", clone, "--vm-uuid", UUID1, "--user-cert", ctx["user"],
               "--nonce", n2, "--out", os.path.join(work, "out4b"), check_rc=False)
    h.check(r.returncode == 1 and "identity clash" in r.stderr and "clone or an older copy" in r.stderr,
            f"an older record file put back with the older state: still refused: {r.stderr.strip()}")
    h.check_eq(h.dir_digest(clone), before, "and the clone's state is untouched")
    with open(record_file, "w") as f:
        f.write(rec_before)
    # Root, having checked why, adopts the clone; the daemon logs it as a warning.
    r = attest("issue", "--hostd", sock, "--state-dir", clone, "--vm-uuid", UUID1, "--user-cert", ctx["user"],
               "--nonce", n2, "--out", os.path.join(work, "out-adopt"), "--adopt", check_rc=False)
    h.check(r.returncode == 0, f"root may --adopt the clone: {r.stdout.strip()} {r.stderr.strip()}")
    h.check(re.search(rf"IssueVaik --adopt VM {UUID1} for pid \d+ uid 0: issued generation", hostd.output()),
            "vtpm-hostd logs the adopted issuance as a warning, naming pid and uid")
    rec_before = open(os.path.join(host, "vms", UUID1 + ".record")).read()

    # Host PCRs change to a state the owner did not approve: the AuthKey cannot sign, nothing changes.
    # The daemon holds the TPM: stop it, change a PCR, and it cannot start again.
    vm1_before = h.dir_digest(vm1)
    hostd.stop()
    hostd, sock_again = h.host_daemon(stack, work, host, tcti, name="hostd-again")
    h.check(state_key(sock_again, False)[2] == vm_key, "a restarted daemon unseals the same state key")
    h.check(f"EK binding file(s) ignored ({os.path.join(host, 'vms', UUID2 + '.ek')}): the EK bindings live in "
            "the ledger" in hostd.output(), "a restarted daemon names the planted binding file as ignored")
    hostd.stop()
    h.tpm2(port, "pcrextend", "4:sha256=" + "cd" * 32)
    r = h.run([os.path.join(BIN, "vtpm-hostd"), "--dir", host, "--tcti", tcti, "--socket", sock], check_rc=False,
              env=ENV, timeout=30)
    h.check(r.returncode == 1 and "not approved" in r.stderr,
            f"changed host PCRs: vtpm-hostd refuses to start: {r.stderr.strip()[-160:]}")
    r = attest("issue", "--hostd", sock, "--state-dir", vm1, "--vm-uuid", UUID1, "--user-cert", ctx["user"],
               "--nonce", n2, "--out", os.path.join(work, "out5"), check_rc=False)
    h.check(r.returncode == 1 and "is vtpm-hostd running?" in r.stderr,
            f"changed host PCRs: no daemon, no identity: {r.stderr.strip()}")
    h.check_eq(h.dir_digest(vm1), vm1_before, "the vTPM state is untouched after the refused issue")
    h.check_eq(open(os.path.join(host, "vms", UUID1 + ".record")).read(), rec_before, "record untouched")
    srv_hw = hw
    srv_hw.stop()

    # An AuthKey bound to other PCRs than the verifier requires.
    hw2, port2, tcti2, _ = h.stand_in_hw_tpm(stack, work, "hwtpm2")
    host2 = os.path.join(work, "host2")
    h.run([HOST, "provision", "--tcti", tcti2, "--dir", host2, "--pcrs", "0,1", "--owner-key",
           h.owner_key(work, "owner2")], env=ENV)
    h.run([HOST, "enroll", "--tcti", tcti2, "--dir", host2, "--ca", cadir, "--ek-roots", roots], env=ENV)
    _, sock2 = h.host_daemon(stack, work, host2, tcti2, name="hostd2", ek_ca=os.path.join(work, "vm-localca"))
    # A sealed state key copied to another host opens nowhere but in its TPM.
    os.makedirs(os.path.join(host2, "vms"), exist_ok=True)
    shutil.copy(os.path.join(host, "vms", UUID_SK + ".statekey"), os.path.join(host2, "vms"))
    st, _, why = state_key(sock2, False)
    h.check(st != 0 and b"loading the sealed VM " in why and b"sealed by another TPM" in why,
            f"another host's TPM cannot unseal the key: {why[:160]}")
    vm3 = vm_state(work, "vm3")
    n3 = os.urandom(16).hex()
    attest("issue", "--hostd", sock2, "--state-dir", vm3, "--vm-uuid", UUID1, "--user-cert", ctx["user"],
           "--nonce", n3, "--out", os.path.join(work, "out-h2"))
    s3, p3 = h.tcp_server(stack, vm3)
    ev3 = os.path.join(work, "h2.evidence")
    attest("quote", "--tcti", f"swtpm:host=127.0.0.1,port={p3}", "--nonce", n3, "--out", ev3)
    owner2 = os.path.join(work, "owner2.pub.pem")
    h.run(["openssl", "pkey", "-in", h.owner_key(work, "owner2"), "-pubout", "-out", owner2])
    ctx2 = dict(ctx, ak_cert=os.path.join(host2, "ak-cert.pem"), owner=owner2)
    expect_fail(ctx2, ev3, n3, "authkey-policy", "AuthKey policy over host PCRs 0,1 only")
    rc, rep = verify(ctx2, ev3, n3, extra=("--host-pcrs", "0,1"))
    h.check(rc == 0, "the same evidence passes when the verifier requires only PCRs 0,1")
    s3.stop()
    hw2.stop()


if __name__ == "__main__":
    h.main(test, min_checks=82)
