#!/usr/bin/env python3
"""Debian's swtpm_setup 0.7.1 driving the server under test as its `swtpm`,
the way operators who replace only swtpm and management stacks that run
their own swtpm_setup do: through `--tpm "PATH socket"` and through PATH.
swtpm_setup starts it with `--pid file=` (a file it made and watches
through its own descriptor), `--server type=tcp,fd=N` and `--ctrl
type=unixio,clientfd=M` (socketpairs), then sends TPM commands and
CMD_SHUTDOWN. Each mode: EK and certificates from its own swtpm_localca,
--overwrite / --not-overwrite, --pcr-banks, --reconfigure, an encrypted
state (--pwdfile), TPM 1.2. The states are then opened by Debian's swtpm."""
import os

import harness as h

SERVER = os.path.realpath(h.server_cmd()[0])


def setup(work, state, *args, tpm=True, check_rc=True, env=None):
    extra = ["--tpm", f"{SERVER} socket"] if tpm else []
    return h.swtpm_setup(work, "--tpm-state", state, *extra, *args, check_rc=check_rc, env=env, timeout=120)


def ek_cert_via_swtpm(stack, work, state):
    """Debian's swtpm opens the state; the EK certificate is in NV."""
    srv, port = h.tcp_server(stack, state, cmd=[h.SWTPM])
    out = os.path.join(work, "ekcert.der")
    try:
        r = h.tpm2(port, "nvread", "0x01c00002", "-o", out, check_rc=False)
        return r.returncode == 0 and os.path.getsize(out) > 300
    finally:
        srv.stop()


def parent_gone(work, stack, cmd):
    """Started as swtpm_setup starts it (both ends of each socketpair left
    open in the child, then the parent goes away): seconds until the server
    is gone, or None if it lingers."""
    import socket
    import subprocess
    import time
    state = os.path.join(work, "linger-" + os.path.basename(cmd[0]))
    os.mkdir(state)
    ctrl_a, ctrl_b = socket.socketpair()
    data_a, data_b = socket.socketpair()
    fds = [s.fileno() for s in (ctrl_a, ctrl_b, data_a, data_b)]
    p = subprocess.Popen(cmd + ["socket", "--tpm2", "--tpmstate", f"dir={state}", "--flags",
                                "not-need-init,startup-clear", "--server", f"type=tcp,fd={data_b.fileno()}",
                                "--ctrl", f"type=unixio,clientfd={ctrl_b.fileno()}"],
                         pass_fds=fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.callback(lambda: p.poll() is None and p.kill())
    time.sleep(1.0)
    for s in (ctrl_a, ctrl_b, data_a, data_b):
        s.close()
    t0 = time.monotonic()
    try:
        p.wait(5 * h.timeout_scale())
        return time.monotonic() - t0
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None


def test(work, stack):
    log = os.path.join(work, "setup.log")

    # TPM 2 with EK, EK and platform certificates from Debian's swtpm_localca.
    s1 = os.path.join(work, "tpm2")
    os.mkdir(s1)
    r = setup(work, s1, "--tpm2", "--createek", "--create-ek-cert", "--create-platform-cert", "--logfile", log)
    h.check(r.returncode == 0, "swtpm_setup --tpm2 --createek --create-ek-cert --create-platform-cert through "
                               "--tpm \"<server> socket\"")
    h.check(os.path.exists(os.path.join(s1, "tpm2-00.permall")), "the state was written")
    with open(log, errors="replace") as f:
        text = f.read()
    h.check("Successfully created EK certificate" in text or "created EK certificate" in text.lower(),
            "swtpm_localca made the EK certificate")
    h.check(ek_cert_via_swtpm(stack, work, s1), "Debian's swtpm opens the state and reads the EK certificate from NV")
    leftovers = [p for p in os.listdir("/tmp") if p.startswith(".swtpm_setup.pidfile.")]
    h.check(not leftovers, f"no pid files left in /tmp ({leftovers})")

    # --not-overwrite keeps the state; --overwrite makes a new one.
    before = h.dir_digest(s1)
    r = setup(work, s1, "--tpm2", "--createek", "--not-overwrite")
    h.check(r.returncode == 0 and h.dir_digest(s1) == before, "--not-overwrite: exit 0, the state untouched")
    r = setup(work, s1, "--tpm2", "--createek", "--overwrite")
    h.check(r.returncode == 0 and h.dir_digest(s1) != before, "--overwrite: a new state")
    r = setup(work, s1, "--tpm2", "--createek", check_rc=False)
    h.check(r.returncode != 0 and h.dir_digest(s1) != before, "without either: refused, as with swtpm")

    # PCR banks, then --reconfigure them.
    s2 = os.path.join(work, "banks")
    os.mkdir(s2)
    r = setup(work, s2, "--tpm2", "--createek", "--pcr-banks", "sha1,sha256")
    h.check(r.returncode == 0, "--pcr-banks sha1,sha256")
    srv, port = h.tcp_server(stack, s2, cmd=[h.SWTPM])
    banks = h.tpm2(port, "getcap", "pcrs").stdout
    srv.stop()
    h.check("sha1" in banks and "sha256" in banks, f"Debian's swtpm sees both banks allocated")
    r = setup(work, s2, "--tpm2", "--pcr-banks", "sha384", "--reconfigure", check_rc=False)
    h.check(r.returncode == 0, f"--reconfigure --pcr-banks sha384: {r.stderr.strip()[-200:]}")

    # An encrypted state (--pwdfile): swtpm opens it with the same password.
    s3 = os.path.join(work, "enc")
    os.mkdir(s3)
    pwd = os.path.join(work, "pwd")
    with open(pwd, "w") as f:
        f.write("correct horse battery staple")
    r = setup(work, s3, "--tpm2", "--createek", "--pwdfile", pwd)
    h.check(r.returncode == 0, "--pwdfile: an encrypted state")
    with open(os.path.join(s3, "tpm2-00.permall"), "rb") as f:
        head = f.read(6)
    h.check(int.from_bytes(head[4:6], "big") & 1, f"the permanent state is encrypted (header {head.hex()})")
    srv, port = h.tcp_server(stack, s3, cmd=[h.SWTPM], extra=["--key", f"pwdfile={pwd}"])
    r = h.tpm2(port, "readpublic", "-c", "0x81010001", check_rc=False)
    srv.stop()
    h.check(r.returncode == 0 and "rsa" in r.stdout,
            "Debian's swtpm opens the encrypted state with the password (EK at 0x81010001)")

    # The file:// backend (one linear file, as swtpm formats it).
    img = os.path.join(work, "state.img")
    r = setup(work, "file://" + img, "--tpm2", "--createek", check_rc=False)
    h.check(r.returncode == 0 and os.path.getsize(img) > 1000,
            f"--tpm-state file://: a linear state file: {r.stderr.strip()[-200:]}")
    r = h.run([h.SWTPM, "socket", "--tpm2", "--print-states", "--tpmstate", f"backend-uri=file://{img}"])
    h.check('"name": "permall"' in r.stdout, f"Debian's swtpm lists the file's permanent state: {r.stdout.strip()}")

    # TPM 1.2.
    s4 = os.path.join(work, "tpm12")
    os.mkdir(s4)
    r = setup(work, s4, "--createek", check_rc=False)
    h.check(r.returncode == 0 and os.path.exists(os.path.join(s4, "tpm-00.permall")),
            f"TPM 1.2 --createek: {r.stderr.strip()[-200:]}")

    # swtpm_setup gives up (or dies) after starting its swtpm: the server must
    # not linger holding the state's lock (swtpm 0.7.1 does: it keeps the
    # parent's ends of the socketpairs open itself).
    gone = parent_gone(work, stack, [SERVER])
    theirs = parent_gone(work, stack, [h.SWTPM])
    print(f"# after the parent went away: ours gone in {gone}, Debian's swtpm {theirs} (None: lingers)", flush=True)
    if h.is_ours():
        h.check(gone is not None, f"the server ends when the parent that started it is gone ({gone})")

    # Through PATH: `swtpm` is the server under test.
    bindir = os.path.join(work, "bin")
    os.mkdir(bindir)
    calls = os.path.join(work, "calls.txt")
    wrapper = os.path.join(bindir, "swtpm")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\necho \"$*\" >> {calls}\nexec {SERVER} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    s5 = os.path.join(work, "path")
    os.mkdir(s5)
    log5 = os.path.join(work, "setup-path.log")
    env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"])
    r = setup(work, s5, "--tpm2", "--createek", "--logfile", log5, tpm=False, env=env)
    with open(calls) as f:
        runs = [l for l in f.read().splitlines() if l.startswith("socket ") and "--pid file=" in l]
    h.check(r.returncode == 0 and os.path.exists(os.path.join(s5, "tpm2-00.permall")) and runs,
            f"swtpm_setup finds the server as `swtpm` in PATH and runs it: {runs[:1]}")


if __name__ == "__main__":
    h.main(test, min_checks=19, min_checks_swtpm=18)
