#!/usr/bin/env python3
"""tpm2-tools through tpm2-tss's swtpm TCTI against the server under test:
getrandom, pcrextend/pcrread, createprimary (ECC, RSA), create + load, quote
+ checkquote, NV written and read through an encrypting (salted) session,
NV define/write/read surviving a restart of the server."""
import os

import harness as h


def test(work, stack):
    state = os.path.join(work, "state")
    os.mkdir(state)
    srv, port = h.tcp_server(stack, state)
    t = lambda *a, **k: h.tpm2(port, *a, **k)  # noqa: E731

    out = t("getrandom", "--hex", "16").stdout.strip()
    h.check(len(out) == 32 and int(out, 16) >= 0, "getrandom returns 16 bytes")

    t("pcrextend", "10:sha256=" + "ab" * 32)
    pcr = t("pcrread", "sha256:10").stdout
    h.check("0x" in pcr and "0000000000000000000000000000000000000000000000000000000000000000" not in pcr.upper()
            .replace("0X", ""), "pcrextend changed PCR 10")

    ecc = os.path.join(work, "ecc.ctx")
    t("createprimary", "-C", "o", "-G", "ecc256", "-c", ecc)
    h.check(os.path.getsize(ecc) > 0, "ECC P-256 primary created")
    t("flushcontext", "-t")
    rsa = os.path.join(work, "rsa.ctx")
    t("createprimary", "-C", "o", "-G", "rsa2048", "-c", rsa)
    h.check(os.path.getsize(rsa) > 0, "RSA-2048 primary created")
    # No resource manager on this TCTI: every tool leaves its objects loaded.
    t("flushcontext", "-t")

    pub, priv, key = (os.path.join(work, n) for n in ("k.pub", "k.priv", "k.ctx"))
    t("create", "-C", rsa, "-G", "ecc256:ecdsa-sha256:null", "-u", pub, "-r", priv,
      "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign")
    t("flushcontext", "-t")
    t("load", "-C", rsa, "-u", pub, "-r", priv, "-c", key)
    t("flushcontext", "-t")
    h.check(os.path.getsize(key) > 0, "create + load of a restricted signing key")

    msg, sig, pcrs = (os.path.join(work, n) for n in ("q.msg", "q.sig", "q.pcrs"))
    t("quote", "-c", key, "-l", "sha256:0,10", "-q", "1234abcd", "-m", msg, "-s", sig, "-o", pcrs, "-g", "sha256")
    kpub = os.path.join(work, "k.pem")
    t("readpublic", "-c", key, "-o", kpub, "-f", "pem")
    t("flushcontext", "-t")
    good = t("checkquote", "-u", kpub, "-m", msg, "-s", sig, "-f", pcrs, "-g", "sha256", "-q", "1234abcd",
             check_rc=False)
    h.check_eq(good.returncode, 0, f"quote verified by checkquote {good.stderr.strip()[-200:]}")
    h.check("sha256" in good.stdout and "10" in good.stdout, f"checkquote lists the quoted PCRs: {good.stdout.strip()[:120]}")
    bad = t("checkquote", "-u", kpub, "-m", msg, "-s", sig, "-f", pcrs, "-g", "sha256", "-q", "99999999",
            check_rc=False)
    h.check(bad.returncode != 0, "checkquote rejects a wrong nonce")

    # Parameter encryption: through a session salted with the RSA primary,
    # with decrypt and encrypt set, the NV data travels encrypted both ways
    # (the server decrypts it inside the received command).
    ses = os.path.join(work, "enc.ctx")
    t("startauthsession", "-S", ses, "--hmac-session", "-c", rsa)
    t("flushcontext", "-t")
    t("sessionconfig", ses, "--enable-decrypt", "--enable-encrypt")
    t("nvdefine", "0x1500017", "-C", "o", "-s", "16", "-a", "ownerread|ownerwrite")
    t("nvwrite", "0x1500017", "-C", "o", "-i", "-", "-P", f"session:{ses}", input_data=b"through a secret")
    h.check_eq(t("nvread", "0x1500017", "-C", "o", "-s", "16").stdout, "through a secret",
               "NV data written through an encrypting session reads back in clear")
    h.check_eq(t("nvread", "0x1500017", "-C", "o", "-s", "16", "-P", f"session:{ses}").stdout, "through a secret",
               "and through the session, encrypted on the way back")
    t("flushcontext", ses)

    t("nvdefine", "0x1500016", "-C", "o", "-s", "32", "-a", "ownerread|ownerwrite")
    data = os.path.join(work, "nv.in")
    with open(data, "wb") as f:
        f.write(b"sealed disk key stand-in 0123456")
    t("nvwrite", "0x1500016", "-C", "o", "-i", data)
    t("shutdown")  # orderly, as a guest would before power-off

    srv.stop()
    srv2, port2 = h.tcp_server(stack, state, flags="not-need-init,startup-state")
    out = h.tpm2(port2, "nvread", "0x1500016", "-C", "o", "-s", "32").stdout
    h.check_eq(out, "sealed disk key stand-in 0123456", "NV contents survive a restart of the server")
    pcr2 = h.tpm2(port2, "pcrread", "sha256:10").stdout
    h.check_eq(pcr2, pcr, "Startup(STATE) after Shutdown(STATE) restores PCR 10")
    srv2.stop()
    srv3, port3 = h.tcp_server(stack, state, flags="not-need-init,startup-clear")
    out = h.tpm2(port3, "nvread", "0x1500016", "-C", "o", "-s", "32").stdout
    h.check_eq(out, "sealed disk key stand-in 0123456", "NV contents survive Startup(CLEAR)")
    srv3.stop()


if __name__ == "__main__":
    h.main(test, min_checks=13)
