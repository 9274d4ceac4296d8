"""vtpm-setup against Debian's swtpm_setup: same capabilities, libvirt's
command lines (plain and with a passphrase on a pipe), state that Debian's
swtpm opens, certificates in NV that chain to our local CA and certify the
EKs, --not-overwrite/--overwrite/--reconfigure rules, TPM 1.2, and failures
that leave the existing state untouched."""
import json
import os
import struct
import subprocess

import harness as h

SETUP = os.environ.get("VTPM_SETUP", os.path.join(os.path.dirname(h.server_cmd()[0]), "vtpm-setup"))
SECRET = b"libvirt secret \x00\x01 bytes"


def setup(work, *args, pwd=None, check_rc=True):
    """Run vtpm-setup as libvirt does; a passphrase goes through a pipe fd."""
    cmd = [SETUP] + list(args)
    fds = ()
    if pwd is not None:
        r, w = os.pipe()
        os.write(w, pwd)
        os.close(w)
        cmd += ["--pwdfile-fd", str(r), "--cipher", "aes-256-cbc"]
        fds = (r,)
    p = subprocess.run(cmd, capture_output=True, pass_fds=fds, timeout=60,
                       env=dict(os.environ, XDG_CONFIG_HOME=os.path.join(work, "xdg")))
    for fd in fds:
        os.close(fd)
    p.stdout, p.stderr = p.stdout.decode(), p.stderr.decode()
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return p


def libvirt_manufacture(work, state, cfg, log, pwd=None, vmid="vm1:3b5f0a55-1111-4222-8333-444455556666"):
    return setup(work, "--tpm2", "--tpm-state", state, "--vmid", vmid, "--logfile", log, "--createek",
                 "--create-ek-cert", "--create-platform-cert", "--lock-nvram", "--not-overwrite",
                 "--config", cfg, pwd=pwd)


def verify_certs(work, port, ca):
    """EK certificates read by tpm2-tools from NV chain to the CA and certify the persisted EKs."""
    for index, handle in (("0x1c00002", "0x81010001"), ("0x1c0000a", "0x81010002")):
        der = os.path.join(work, f"nv-{index}.der")
        pem = os.path.join(work, f"nv-{index}.pem")
        h.tpm2(port, "nvread", index, "-C", "o", "-o", der)
        h.run(["openssl", "x509", "-inform", "der", "-in", der, "-out", pem])
        v = h.run(["openssl", "verify", "-CAfile", os.path.join(ca, "root-cert.pem"),
                   "-untrusted", os.path.join(ca, "issuer-cert.pem"), pem], check_rc=False)
        h.check(v.returncode == 0, f"EK certificate {index} chains to the local CA: {v.stdout.strip()}")
        cert_pub = h.run(["openssl", "x509", "-in", pem, "-noout", "-pubkey"]).stdout
        key_pem = os.path.join(work, f"ek-{handle}.pem")
        h.tpm2(port, "readpublic", "-c", handle, "-f", "pem", "-o", key_pem)
        with open(key_pem) as f:
            h.check_eq(f.read().strip(), cert_pub.strip(), f"certificate {index} is for the EK at {handle}")
        text = h.run(["openssl", "x509", "-in", pem, "-noout", "-text"]).stdout
        h.check("2.23.133.8.1" in text and "2.23.133.2.1=id:" in text, f"{index}: TCG EKU and TPM manufacturer")
    h.tpm2(port, "nvread", "0x1c08000", "-C", "o", "-o", os.path.join(work, "platform.der"))
    w = h.tpm2(port, "nvwrite", "0x1c00002", "-C", "p", "-i", os.path.join(work, "platform.der"), check_rc=False)
    h.check(w.returncode != 0, "certificate NV index is write-locked")


def test(work, stack):
    ca = os.path.join(work, "ca")
    cfg = os.path.join(work, "vtpm-setup.conf")
    with open(cfg, "w") as f:
        f.write(f"# test\nactive_pcr_banks = sha256\nlocalca_dir = {ca}\nplatform_manufacturer = ACME\n")

    # Capabilities: what libvirt reads, identical to Debian's swtpm_setup.
    ours = setup(work, "--print-capabilities").stdout
    theirs = h.run(["swtpm_setup", "--print-capabilities"]).stdout
    h.check_eq(json.loads(ours)["features"], json.loads(theirs)["features"], "print-capabilities features")
    h.check_eq(ours, theirs, "print-capabilities output byte for byte")
    h.check("--tpm-state" in setup(work, "--help").stdout, "--help lists the options")
    bad = setup(work, "--no-such-option", check_rc=False)
    h.check(bad.returncode == 1, "unknown option: exit 1")

    # libvirt's manufacturing command line, plain.
    plain = os.path.join(work, "plain")
    os.mkdir(plain)
    log = os.path.join(work, "setup.log")
    libvirt_manufacture(work, plain, cfg, log)
    with open(log) as f:
        text = f.read()
    h.check("Successfully authored TPM state." in text and "Starting vTPM manufacturing" in text, "log file lines")
    srv, port = h.tcp_server(stack, plain, cmd=[h.SWTPM])
    verify_certs(work, port, ca)
    banks = h.tpm2(port, "getcap", "pcrs").stdout
    active = {l.split(":")[0].strip(" -") for l in banks.splitlines() if ":" in l and "[" in l and "[ ]" not in l}
    h.check_eq(active, {"sha256"}, "only the configured bank is active")
    srv.stop()

    # The verifier command shows the chain and fails on a foreign root.
    certs = os.path.join(os.path.dirname(SETUP), "vtpm-certs")
    show = h.run([certs, "show", "--tpm2", "--tpmstate", f"dir={plain}", "--ca-dir", ca], check_rc=False)
    h.check(show.returncode == 0 and show.stdout.count("certifies the key in the TPM") == 3
            and "libvtpm local CA root" in show.stdout, "vtpm-certs show verifies all three certificates")
    other = os.path.join(work, "otherca")
    with open(os.path.join(work, "other.conf"), "w") as f:
        f.write(f"localca_dir = {other}\n")
    tmp = os.path.join(work, "tmpstate")
    os.mkdir(tmp)
    setup(work, "--tpm2", "--tpm-state", tmp, "--create-ek-cert", "--config", os.path.join(work, "other.conf"))
    bad = h.run([certs, "show", "--tpm2", "--tpmstate", f"dir={plain}", "--ca-dir", other], check_rc=False)
    h.check(bad.returncode == 1 and "FAIL chain" in bad.stdout, "vtpm-certs names a chain that does not verify")

    # Existing state: --not-overwrite ends quietly, no flag refuses, both leave it untouched.
    before = h.dir_digest(plain)
    libvirt_manufacture(work, plain, cfg, log)
    h.check_eq(h.dir_digest(plain), before, "--not-overwrite keeps the state")
    p = setup(work, "--tpm2", "--tpm-state", plain, "--createek", "--config", cfg, check_rc=False)
    h.check(p.returncode == 1 and "Found existing TPM state" in p.stderr, "existing state without a flag is refused")
    h.check_eq(h.dir_digest(plain), before, "refused run leaves the state")
    # A failing --overwrite (CA directory cannot be created) leaves the old state in place.
    badcfg = os.path.join(work, "bad.conf")
    with open(badcfg, "w") as f:
        f.write("localca_dir = /proc/no/such/ca\n")
    p = setup(work, "--tpm2", "--tpm-state", plain, "--create-ek-cert", "--overwrite", "--config", badcfg,
              check_rc=False)
    h.check(p.returncode == 1 and "CA directory" in p.stderr, f"failing manufacturing says why: {p.stderr.strip()}")
    h.check_eq(h.dir_digest(plain), before, "failed --overwrite loses nothing")
    setup(work, "--tpm2", "--tpm-state", plain, "--createek", "--overwrite", "--config", cfg)
    h.check(h.dir_digest(plain) != before, "--overwrite replaces the state")

    # Encrypted, as libvirt runs it with <encryption secret=...>: Debian swtpm opens it with the same secret.
    enc = os.path.join(work, "enc")
    os.mkdir(enc)
    libvirt_manufacture(work, enc, cfg, log, pwd=SECRET)
    pwdfile = os.path.join(work, "pwd")
    with open(pwdfile, "wb") as f:
        f.write(SECRET)
    srv, port = h.tcp_server(stack, enc, extra=["--key", f"pwdfile={pwdfile},mode=aes-256-cbc"], cmd=[h.SWTPM])
    verify_certs(work, port, ca)
    srv.stop()
    # Reconfigure with the wrong secret: refused, state unchanged.
    before = h.dir_digest(enc)
    p = setup(work, "--tpm2", "--tpm-state", enc, "--pcr-banks", "sha1", "--reconfigure", "--config", cfg,
              pwd=b"wrong", check_rc=False)
    h.check(p.returncode == 1 and "HMAC" in (p.stdout + p.stderr), f"wrong secret named: {p.stderr.strip()}")
    h.check_eq(h.dir_digest(enc), before, "wrong secret loses nothing")

    # A state made by Debian's swtpm_setup: we reconfigure its PCR banks, swtpm opens the result.
    deb = os.path.join(work, "deb")
    os.mkdir(deb)
    h.swtpm_setup(work, "--tpm2", "--tpm-state", deb, "--createek", "--pcr-banks", "sha256")
    srv, port = h.tcp_server(stack, deb, cmd=[h.SWTPM])
    ek_before = h.tpm2(port, "readpublic", "-c", "0x81010001").stdout
    h.tpm2(port, "shutdown")
    srv.stop()
    setup(work, "--tpm2", "--tpm-state", deb, "--pcr-banks", "sha1,sha384", "--reconfigure", "--config", cfg)
    srv, port = h.tcp_server(stack, deb, cmd=[h.SWTPM])
    banks = h.tpm2(port, "pcrread", "sha384:0", check_rc=False)
    h.check(banks.returncode == 0 and "sha384" in banks.stdout, "reconfigured sha384 bank is active under swtpm")
    ek_after = h.tpm2(port, "readpublic", "-c", "0x81010001").stdout
    h.check("name:" in ek_before and "rsa" in ek_before, f"Debian's EK read before: {ek_before[:60]!r}")
    h.check_eq(ek_after, ek_before, "Debian's EK survives the reconfiguration (same public area and name)")
    srv.stop()

    # Our state opens in our bridge too, and libvirt's second run (incoming migration) works.
    mig = os.path.join(work, "mig")
    os.mkdir(mig)
    setup(work, "--tpm2", "--tpm-state", mig, "--overwrite", "--config", cfg)
    h.check(os.path.exists(os.path.join(mig, "tpm2-00.permall")), "--overwrite on a new directory")
    srv, port = h.tcp_server(stack, mig)
    handles = h.tpm2(port, "getcap", "handles-persistent").stdout.strip()
    h.check_eq(handles, "", "our bridge opens the new state of --overwrite (no --createek: no persistent EK)")
    rnd = h.tpm2(port, "getrandom", "--hex", "8").stdout.strip()
    h.check(len(rnd) == 16, f"and its TPM answers: {rnd}")
    srv.stop()
    srv, port = h.tcp_server(stack, plain, cmd=[h.SWTPM])
    ek_swtpm = h.tpm2(port, "readpublic", "-c", "0x81010002").stdout
    srv.stop()
    srv, port = h.tcp_server(stack, plain)
    ek_ours = h.tpm2(port, "readpublic", "-c", "0x81010002").stdout
    h.check("name:" in ek_ours and "ecc" in ek_ours, f"our bridge reads vtpm-setup's ECC EK: {ek_ours[:60]!r}")
    h.check_eq(ek_ours, ek_swtpm, "our bridge opens vtpm-setup's state: the EK as Debian's swtpm reads it")
    srv.stop()

    # TPM 1.2 (no --tpm2), with ownership: Debian swtpm starts it and reports an owner.
    t12 = os.path.join(work, "t12")
    os.mkdir(t12)
    setup(work, "--tpm-state", t12, "--createek", "--create-ek-cert", "--take-ownership", "--lock-nvram",
          "--owner-well-known", "--srk-well-known", "--config", cfg)
    port = h.free_port(2)
    srv = h.Server(stack, ["--tpmstate", f"dir={t12}", "--server", f"type=tcp,port={port}",
                           "--ctrl", f"type=tcp,port={port + 1}", "--flags", "not-need-init,startup-clear"],
                   cmd=[h.SWTPM], wait_port=port + 1)
    import socket
    with socket.create_connection(("127.0.0.1", port)) as s:
        # TPM_GetCapability(TPM_CAP_PROPERTY, TPM_CAP_PROP_OWNER)
        rsp = h.transact(s, struct.pack(">HIIIII", 0x00C1, 22, 0x65, 5, 4, 0x111))
    h.check(h.tpm_rc(rsp) == 0 and rsp[-1] == 1, "TPM 1.2 state has an owner under Debian swtpm")
    srv.stop()
    h.check(setup(work, "--tpm-state", t12, "--ecc", check_rc=False).returncode == 1, "--ecc without --tpm2 refused")
    as_tss(work)


def as_tss(work):
    """vtpm-setup as libvirt runs it (swtpm_user tss) with a local CA
    directory it cannot write: a message naming the directory and the fix,
    never a fallback to a home directory."""
    if os.getuid() != 0 or subprocess.run(["id", "tss"], capture_output=True).returncode != 0:
        print("# skipped: vtpm-setup as tss needs root and a tss user", flush=True)
        return
    os.chmod(work, 0o755)
    home = os.path.join(work, "tss-home")
    state = os.path.join(work, "tss-state")
    ca = os.path.join(work, "root-owned-ca")
    for d in (home, state, ca):
        os.mkdir(d, 0o755)
    for d in (home, state):
        os.chown(d, int(subprocess.run(["id", "-u", "tss"], capture_output=True, text=True).stdout), -1)
    conf = os.path.join(work, "tss.conf")
    with open(conf, "w") as f:
        f.write(f"localca_dir = {ca}/localca\n")
    os.chmod(conf, 0o644)
    env = dict(os.environ, HOME=home, XDG_DATA_HOME=os.path.join(home, "data"),
               XDG_CONFIG_HOME=os.path.join(home, "config"))
    p = h.run(["runuser", "-u", "tss", "--", os.path.realpath(SETUP), "--tpm2", "--tpm-state", state,
               "--createek", "--create-ek-cert", "--config", conf], check_rc=False, env=env)
    out = p.stdout + p.stderr
    h.check(p.returncode == 1 and f"{ca}/localca" in out and "localca_dir" in out,
            f"vtpm-setup as tss with an unwritable CA directory: refused, naming it and the fix "
            f"({out.strip().splitlines()[-1][:200] if out.strip() else ''})")
    h.check(not os.path.exists(os.path.join(home, "data")), "nothing made in tss's home")


if __name__ == "__main__":
    h.main(test, min_checks=42)
