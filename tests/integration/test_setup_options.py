#!/usr/bin/env python3
"""vtpm-setup given swtpm_setup 0.7.1's options at their edges, each
compared with what Debian's swtpm_setup does with the same command line:
--rsa-keysize 3072 and max (the RSA 3072 EK at 0x8101001c, read back
through a bridge).

And --overwrite into a state directory that takes no new file (read-only,
or a full disk) beside the journal a bridge left there: the run fails and
every reader, ours and Debian's swtpm, still opens the old state (the new one
was written to the journal, reported as authored, and never reached
tpm2-00.permall)."""
import os
import pwd
import subprocess

import harness as h

SETUP = os.environ.get("VTPM_SETUP", os.path.join(os.path.dirname(h.server_cmd()[0]), "vtpm-setup"))


def run_setup(work, prog, *args):
    p = subprocess.run([prog] + list(args), capture_output=True, timeout=120,
                       env=dict(os.environ, XDG_CONFIG_HOME=os.path.join(work, "xdg"), HOME=work))
    p.stdout, p.stderr = p.stdout.decode(), p.stderr.decode()
    return p


def fresh(work, name):
    d = os.path.join(work, name)
    os.mkdir(d)
    return d


def ek_public(stack, state, handle):
    srv, port = h.tcp_server(stack, state)
    try:
        return h.tpm2(port, "readpublic", "-c", handle, check_rc=False).stdout
    finally:
        srv.stop()


def rsa_keysize(work, stack, cfg, debian_cfg):
    for size in ("3072", "max"):
        theirs = run_setup(work, "swtpm_setup", "--tpm2", "--tpm-state", fresh(work, f"d{size}"), "--createek",
                           "--rsa-keysize", size, *debian_cfg)
        h.check(theirs.returncode == 0 and "RSA 3072 EK with handle 0x8101001c" in theirs.stdout,
                f"Debian's swtpm_setup --rsa-keysize {size} makes an RSA 3072 EK")
        state = fresh(work, f"o{size}")
        ours = run_setup(work, SETUP, "--tpm2", "--tpm-state", state, "--createek", "--rsa-keysize", size,
                         "--config", cfg)
        h.check(ours.returncode == 0 and "EK with handle 0x8101001c" in ours.stdout,
                f"vtpm-setup --rsa-keysize {size} makes the RSA 3072 EK: {(ours.stdout + ours.stderr).strip()[-160:]}")
        if ours.returncode == 0:
            pub = ek_public(stack, state, "0x8101001c")
            h.check("bits: 3072" in pub, f"the EK at 0x8101001c has 3072 bits: {pub[:80]!r}")


def state_files(state):
    return {n: h.sha256_file(os.path.join(state, n)) for n in sorted(os.listdir(state)) if n.startswith("tpm2-00.")}


def persistent(stack, state, cmd=None):
    srv, port = h.tcp_server(stack, state, cmd=cmd)
    try:
        return h.tpm2(port, "getcap", "handles-persistent").stdout
    finally:
        srv.stop()


def overwrite_read_only(work, stack, cfg):
    if not h.is_ours():
        print("# skipped: --overwrite beside the journal our bridge leaves (Debian's swtpm leaves none)", flush=True)
        return
    if os.getuid() != 0:
        print("# skipped: --overwrite into a read-only directory needs root (to run vtpm-setup as nobody)", flush=True)
        return
    nobody = pwd.getpwnam("nobody")
    os.chmod(work, 0o755)
    os.chmod(cfg, 0o644)
    state = fresh(work, "readonly")
    h.swtpm_setup(work, "--tpm2", "--tpm-state", state, "--createek")
    h.check("0x81010001" in persistent(stack, state), "our bridge ran on the state (and left its journal)")
    for name in [state] + [os.path.join(state, n) for n in os.listdir(state)]:
        os.chown(name, nobody.pw_uid, -1)
    before = state_files(state)
    h.check("tpm2-00.permall.journal" in before, "the journal is there")
    os.chmod(state, 0o555)
    try:
        p = h.run(["runuser", "-u", "nobody", "--", "env", f"HOME={work}", f"XDG_CONFIG_HOME={work}/xdg",
                   os.path.realpath(SETUP), "--tpm2", "--tpm-state", state, "--overwrite", "--config", cfg],
                  check_rc=False)
    finally:
        os.chmod(state, 0o755)
    out = p.stdout + p.stderr
    h.check(p.returncode == 1 and "Successfully authored" not in out and "tpm2-00.permall" in out,
            f"--overwrite that cannot write tpm2-00.permall fails, naming it: {out.strip()[-200:]!r}")
    h.check_eq(state_files(state), before, "and changes no state file")
    h.check("0x81010001" in persistent(stack, state), "our bridge still opens the old state (its EK)")
    h.check("0x81010001" in persistent(stack, state, cmd=[h.SWTPM]), "and so does Debian's swtpm")


def test(work, stack):
    cfg = os.path.join(work, "vtpm-setup.conf")
    with open(cfg, "w") as f:
        f.write(f"active_pcr_banks = sha256\nlocalca_dir = {work}/ca\n")
    debian_cfg, _ = h.debian_setup_config(work)
    rsa_keysize(work, stack, cfg, debian_cfg)
    overwrite_read_only(work, stack, cfg)


if __name__ == "__main__":
    h.main(test, min_checks=12, min_checks_swtpm=6)
