#!/usr/bin/env python3
"""A state directory that stops taking writes while the bridge serves it
(made read-only by an operator, or a full disk): an NV write made durable in
the journal is kept, but the bridge cannot bring tpm2-00.permall up to date
at exit. It must say so with a failing exit status (Debian's swtpm, or
whoever takes the directory next, would read the older file), and the state
must come back whole at its next start, and then in Debian's swtpm.

Also: a FIFO where the journal or tpm2-00.permall should be (an open for
reading would wait for a writer forever) is no file: the journal is ignored
and the state opens, a FIFO state file is refused, naming it.

And after a kill -9 that left the newest state in the journal: a start
refused for a wrong --key and a --print-states change no file; the right key
then opens the newest state."""
import os
import pwd
import subprocess

import harness as h

NV = "0x1500020"


def handles(port):
    return h.tpm2(port, "getcap", "handles-nv-index").stdout


def fifos(work, stack):
    state = os.path.join(work, "fifo")
    os.mkdir(state)
    h.swtpm_setup(work, "--tpm2", "--tpm-state", state, "--createek")
    journal = os.path.join(state, "tpm2-00.permall.journal")
    os.mkfifo(journal)
    srv, port = h.tcp_server(stack, state)
    h.check("0x81010001" in h.tpm2(port, "getcap", "handles-persistent").stdout,
            "a FIFO in the journal's place: the state opens (the journal is ignored)")
    srv.stop()
    os.unlink(journal)
    permall = os.path.join(state, "tpm2-00.permall")
    os.unlink(permall)
    os.mkfifo(permall)
    r = h.run([h.server_cmd()[0], "socket", "--tpm2", "--tpmstate", f"dir={state}", "--server", "type=tcp,port=1",
               "--flags", "not-need-init"], check_rc=False, timeout=30)
    h.check(r.returncode != 0 and "tpm2-00.permall is not a regular file" in r.stderr,
            f"a FIFO in tpm2-00.permall's place is refused, naming it: {r.stderr.strip()[-160:]!r}")
    os.unlink(permall)
    target = os.path.join(work, "elsewhere")
    with open(target, "wb") as f:
        f.write(b"not a state")
    os.chmod(target, 0o600)
    os.symlink(target, permall)
    r = h.run([h.server_cmd()[0], "socket", "--tpm2", "--tpmstate", f"dir={state}", "--server", "type=tcp,port=1",
               "--flags", "not-need-init"], check_rc=False, timeout=30)
    h.check(r.returncode != 0 and "tpm2-00.permall is a symbolic link" in r.stderr,
            f"a symbolic link in its place is refused, naming it: {r.stderr.strip()[-160:]!r}")
    h.check_eq(os.stat(target).st_mode & 0o777, 0o600, "and what it points to is not chmod'ed")


def state_files(state):
    return {n: h.sha256_file(os.path.join(state, n)) for n in sorted(os.listdir(state)) if n.startswith("tpm2-00.")}


def refused_after_kill9(work, stack):
    state = os.path.join(work, "killed")
    os.mkdir(state)
    key, wrong = os.path.join(work, "key"), os.path.join(work, "wrong")
    for path, value in ((key, "11" * 32), (wrong, "22" * 32)):
        with open(path, "w") as f:
            f.write(value + "\n")
    h.swtpm_setup(work, "--tpm2", "--tpm-state", state, "--createek", "--keyfile", key, "--cipher", "aes-256-cbc")
    right = ["--key", f"file={key},mode=aes-256-cbc"]
    srv, port = h.tcp_server(stack, state, extra=right)
    h.tpm2(port, "nvdefine", NV, "-C", "o", "-s", "4", "-a", "ownerread|ownerwrite")
    srv.proc.kill()  # kill -9: the NV index is in the journal only
    srv.proc.wait()
    srv.expected_exit = True
    before = state_files(state)
    h.check("tpm2-00.permall.journal" in before, "kill -9 left the journal")
    r = h.run([h.server_cmd()[0], "socket", "--tpm2", "--tpmstate", f"dir={state}", "--server", "type=tcp,port=1",
               "--key", f"file={wrong},mode=aes-256-cbc", "--flags", "not-need-init"], check_rc=False, timeout=30)
    h.check(r.returncode != 0 and "HMAC" in r.stderr, f"a wrong key is refused: {r.stderr.strip()[-120:]!r}")
    h.check_eq(state_files(state), before, "the refused start changed no state file")
    r = h.run([h.server_cmd()[0], "socket", "--tpm2", "--tpmstate", f"dir={state}", "--print-states"])
    h.check_eq(state_files(state), before, "--print-states changed no state file")
    srv, port = h.tcp_server(stack, state, extra=right)
    h.check(NV in handles(port), "the right key opens the newest state (the NV index)")
    srv.stop()


def test(work, stack):
    if not h.is_ours():
        h.skip("the journal beside tpm2-00.permall is libvtpm's")
    fifos(work, stack)
    refused_after_kill9(work, stack)
    if os.getuid() != 0:
        h.skip("needs root to run the bridge as another user (root writes a read-only directory)")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        h.skip("no user nobody")
    os.chmod(work, 0o755)
    state = os.path.join(work, "state")
    os.mkdir(state)
    h.swtpm_setup(work, "--tpm2", "--tpm-state", state, "--createek")
    for name in [state] + [os.path.join(state, n) for n in os.listdir(state)]:
        os.chown(name, nobody.pw_uid, -1)

    cmd = ["runuser", "-u", "nobody", "--", h.server_cmd()[0]]
    srv, port = h.tcp_server(stack, state, cmd=cmd)
    srv.expected_exit = True
    # TPM2_Startup wrote the journal; from now on the directory takes no new
    # file (an NV write still reaches the journal: it is written in place).
    h.wait_for(lambda: os.path.exists(os.path.join(state, "tpm2-00.permall.journal")), 5 * h.timeout_scale(),
               "the journal")
    os.chmod(state, 0o555)
    try:
        h.tpm2(port, "nvdefine", NV, "-C", "o", "-s", "4", "-a", "ownerread|ownerwrite")
        h.check(NV in handles(port), "the NV index is defined (durable in the journal)")
        h.ioctl("--tcp", f"127.0.0.1:{port + 1}", "-s")
        rc = srv.wait(30)
    finally:
        os.chmod(state, 0o755)
    out = srv.output()
    h.check(rc not in (None, 0), f"the bridge that could not update tpm2-00.permall exits non-zero (status {rc})")
    h.check("only in the journal" in out and "tpm2-00.permall" in out,
            f"and says where the newest state is: {out.strip()[-240:]!r}")

    srv, port = h.tcp_server(stack, state, cmd=cmd)
    h.check(NV in handles(port), "the next start (directory writable again) has the NV index")
    h.ioctl("--tcp", f"127.0.0.1:{port + 1}", "-s")
    h.check_eq(srv.wait(30), 0, "and it ends with status 0 once its state file is current")
    srv, port = h.tcp_server(stack, state, cmd=[h.SWTPM])
    h.check(NV in handles(port), "and after its clean stop Debian's swtpm has it too")
    srv.stop()
    subprocess.run(["chown", "-R", "root", state], check=True)


if __name__ == "__main__":
    h.main(test, min_checks=15, min_checks_swtpm=0)
