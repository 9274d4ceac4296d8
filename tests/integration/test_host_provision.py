"""vtpm-host against a stand-in hardware TPM (Debian's swtpm, manufactured by
Debian's swtpm_setup with an EK certificate and sha1+sha256 banks, reached
through tpm2-tss's swtpm TCTI): provision creates the host AK and the
PCR-bound AuthKey at their documented handles with the right attributes,
is idempotent, `status` agrees, and a change of a host PCR makes the AuthKey
unusable — reported by status and provision, nothing replaced."""
import os

import harness as h

HOST = os.path.join(os.path.dirname(os.path.realpath(h.server_cmd()[0])), "vtpm-host")


def test(work, stack):
    hw = os.path.join(work, "hwtpm")
    os.mkdir(hw)
    h.swtpm_setup(work, "--tpm2", "--tpm-state", hw, "--createek", "--create-ek-cert", "--pcr-banks", "sha1,sha256")
    srv, port = h.tcp_server(stack, hw, cmd=[h.SWTPM])
    tcti = f"swtpm:host=127.0.0.1,port={port}"
    hostdir = os.path.join(work, "host")
    first = h.run([HOST, "provision", "--tcti", tcti, "--dir", hostdir])
    h.check("(created)" in first.stdout, "provision creates the host AK and the AuthKey")
    again = h.run([HOST, "provision", "--tcti", tcti, "--dir", hostdir])
    h.check(again.stdout.count("already present") == 2, "provision is idempotent (adopts what is there)")
    for name, handle in (("ak", "0x81010010"), ("authkey", "0x81000010")):
        pem = os.path.join(work, f"{name}.pem")
        out = h.tpm2(port, "readpublic", "-c", handle, "-f", "pem", "-o", pem).stdout
        with open(pem) as a, open(os.path.join(hostdir, f"{name}.pem")) as b:
            h.check_eq(a.read(), b.read(), f"{name}.pem in HOSTDIR is the key at {handle}")
        for attr in ("fixedtpm", "fixedparent", "sensitivedataorigin", "sign"):
            h.check(attr in out, f"{name}: {attr}")
        if name == "ak":
            h.check("restricted" in out, "host AK is restricted")
        else:
            h.check("userwithauth" not in out and "restricted" not in out,
                    "AuthKey: use only through its PCR policy, signs arbitrary digests")
    with open(os.path.join(hostdir, "host.conf")) as f:
        conf = f.read()
    h.check("authkey_pcrs = 0,1,2,3,4,5,6,7" in conf, "host.conf documents the PCR binding")
    st = h.run([HOST, "status", "--tcti", tcti, "--dir", hostdir], check_rc=False)
    h.check(st.returncode == 0 and "satisfied by the current host PCRs" in st.stdout, "status: all good")

    # The host's measured state changes: the AuthKey can no longer be used.
    h.tpm2(port, "pcrextend", "3:sha256=" + "ab" * 32)
    st = h.run([HOST, "status", "--tcti", tcti, "--dir", hostdir], check_rc=False)
    h.check(st.returncode == 1 and "host PCRs changed" in st.stdout, "status reports the PCR change")
    before = {n: h.sha256_file(os.path.join(hostdir, n)) for n in os.listdir(hostdir)}
    p = h.run([HOST, "provision", "--tcti", tcti, "--dir", hostdir], check_rc=False)
    h.check(p.returncode == 1 and "host PCRs changed" in p.stderr, f"provision refuses: {p.stderr.strip()}")
    after = {n: h.sha256_file(os.path.join(hostdir, n)) for n in os.listdir(hostdir)}
    h.check_eq(after, before, "HOSTDIR unchanged by the refused provision")
    bad = h.run([HOST, "provision", "--tcti", tcti, "--dir", hostdir, "--pcrs", "0,99"], check_rc=False)
    h.check(bad.returncode == 1 and "out of range" in bad.stderr, "a PCR out of range is named")
    down = h.run([HOST, "status", "--tcti", "swtpm:host=127.0.0.1,port=1", "--dir", hostdir], check_rc=False)
    h.check(down.returncode == 1 and "cannot reach the host TPM" in down.stderr + down.stdout,
            "an unreachable TPM is a clear error")
    srv.stop()


if __name__ == "__main__":
    h.main(test, min_checks=21)
