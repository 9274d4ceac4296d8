#!/usr/bin/env python3
"""The command line as libvirt and swtpm_setup use it: --print-capabilities
(swtpm's JSON shape, features that work), --print-states (byte-identical to
swtpm's output on the same directory), --version, --help, errors that name
the option (never silently ignored), --daemon with --pid, --log levels, and
the TPM 1.2 mode answering swtpm_ioctl like swtpm."""
import json
import os
import subprocess
import time

import harness as h


def srv(*args, check=False):
    return h.run(h.server_cmd() + ["socket"] + list(args), check_rc=check, timeout=20)


def exit_code(cmd, args, pass_fds=()):
    """The exit status of a server that should refuse its command line at
    start; "running" if it did not exit."""
    try:
        p = subprocess.run(cmd + ["socket"] + args, capture_output=True, timeout=10 * h.timeout_scale(),
                           pass_fds=pass_fds, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "running", ""
    return p.returncode, p.stderr.decode("latin-1")


def descriptors_like_swtpm(work, stack):
    """Descriptors on the command line checked at start as swtpm checks
    them: what swtpm refuses exits 1 before serving, what it takes serves."""
    reg = os.open(os.path.join(work, "a-file"), os.O_RDWR | os.O_CREAT, 0o600)
    ro = os.open(os.path.join(work, "a-file"), os.O_RDONLY)
    closed = 250  # not open in the child (subprocess closes what pass_fds does not name)
    for tag, cmd in (("ours", h.server_cmd()), ("swtpm", [h.SWTPM])):
        d = os.path.join(work, f"fds-{tag}")
        os.mkdir(d)
        base = ["--tpm2", "--tpmstate", f"dir={d}"]
        ctrl = ["--ctrl", f"type=unixio,path={d}/c"]
        for args, fds, what in (
                (base + ["--fd", str(closed)], (), "--fd naming a descriptor that is not open"),
                (base + ["--fd", str(reg)], (reg,), "--fd naming a regular file"),
                (base + ["--ctrl", f"type=tcp,fd={closed}"], (), "--ctrl type=tcp,fd= not open"),
                (base + ["--ctrl", f"type=tcp,fd={reg}"], (reg,), "--ctrl type=tcp,fd= a regular file"),
                (base + ctrl + ["--log", f"fd={closed},level=1"], (), "--log fd= not open"),
                (base + ctrl + ["--log", f"fd={ro},level=1"], (ro,), "--log fd= open read-only")):
            rc, err = exit_code(cmd, args, fds)
            h.check_eq(rc, 1, f"{tag}: {what}: refused at start")
        # swtpm logs to stdout as to any other descriptor open for writing
        # (fd=2 it closes before it checks it), and takes a key file and a
        # passphrase together (the key file wins).
        key = os.path.join(d, "key")
        with open(key, "w") as f:
            f.write("0123456789abcdef" * 4)
        pwd = os.path.join(d, "pwd")
        with open(pwd, "w") as f:
            f.write("secret")
        for extra, what in ((["--log", "fd=1,level=1"], "--log fd=1"),
                            (["--key", f"file={key},pwdfile={pwd},mode=aes-256-cbc"], "--key with file= and pwdfile=")):
            st = os.path.join(d, what.split()[0].strip("-") + "-state")
            os.mkdir(st)
            sock = os.path.join(st, "s")
            s = h.Server(stack, ["--tpm2", "--tpmstate", f"dir={st}", "--ctrl", f"type=unixio,path={sock}", "--flags", "not-need-init"] + extra,
                         cmd=cmd if tag == "swtpm" else None, wait_path=sock)
            c = h.Ctrl(path=sock)
            h.check_eq(c.cmd(0x0f, rsp_len=8).hex(), "0000000000000001" if "--key" in extra else "0000000000000000",
                       f"{tag}: {what}: taken, the server answers")
            c.close()
            s.stop()
        # fd=-1 in --ctrl, --server and --log is no fd= for swtpm; numbers are read by strtol.
        st = os.path.join(d, "minus-one")
        os.mkdir(st)
        sock = os.path.join(st, "s")
        port = h.free_port()
        s = h.Server(stack, ["--tpm2", "--tpmstate", f"dir={st}", "--ctrl", f"type=unixio,path={sock},fd=-1",
                             "--server", f"type=tcp,port=+{port},fd=-1", "--log", "fd=-1,level=1"],
                     cmd=cmd if tag == "swtpm" else None, wait_path=sock)
        c = h.Ctrl(path=sock)
        h.check_eq(c.cmd(0x0f, rsp_len=8).hex(), "0000000000000000", f"{tag}: fd=-1 and port=+N taken")
        c.close()
        s.stop()
    os.close(reg)
    os.close(ro)


def test(work, stack):
    descriptors_like_swtpm(work, stack)
    caps = srv("--print-capabilities", check=True)
    j = json.loads(caps.stdout)
    h.check_eq(j["type"], "swtpm", "capabilities: type swtpm")
    h.check(caps.stdout.startswith('{ "type": "swtpm", "features": [ ') and caps.stdout.endswith(" }\n"),
            "capabilities: swtpm's one-line JSON shape")
    for f in ("tpm-1.2", "tpm-2.0", "cmdarg-pwd-fd", "cmdarg-key-fd", "cmdarg-print-states", "nvram-backend-dir"):
        h.check(f in j["features"], f"capabilities list {f}")
    caps2 = json.loads(srv("--tpm2", "--print-capabilities", check=True).stdout)
    h.check("rsa-keysize-2048" in caps2["features"], "--tpm2 capabilities list RSA key sizes")
    if h.is_ours():
        h.check("cmdarg-migration" in j["features"], "cmdarg-migration advertised (implemented)")
        h.check("cmdarg-seccomp" in j["features"], "seccomp advertised (implemented)")

    # --print-states on directories made by swtpm, compared with swtpm itself.
    d = os.path.join(work, "st")
    os.mkdir(d)
    empty_ours = srv("--tpm2", "--print-states", "--tpmstate", f"dir={d}", check=True).stdout
    empty_ref = h.run([h.SWTPM, "socket", "--tpm2", "--print-states", "--tpmstate", f"dir={d}"]).stdout
    h.check_eq(empty_ours, empty_ref, "--print-states of an empty directory as swtpm prints it")
    s, port = h.tcp_server(stack, d, cmd=[h.SWTPM])
    h.ioctl("--tcp", f"127.0.0.1:{port + 1}", "-v")
    s.stop()
    ours = srv("--tpm2", "--print-states", "--tpmstate", f"dir={d}", check=True).stdout
    ref = h.run([h.SWTPM, "socket", "--tpm2", "--print-states", "--tpmstate", f"dir={d}"]).stdout
    h.check_eq(ours, ref, "--print-states with permall and volatilestate as swtpm prints it")
    h.check("permall" in ours, "--print-states names permall")

    v = h.run(h.server_cmd() + ["--version"], check_rc=False)
    h.check(v.returncode == 0 and v.stdout.strip(), "--version")
    hp = srv("--help")
    h.check(hp.returncode == 0 and "--tpmstate" in hp.stdout, "--help lists the options")
    for args, word in ((["--bogus"], "bogus"), (["--ctrl", "type=unixio,path=/x,colour=red"], "colour")):
        r = srv(*args)
        h.check(r.returncode == 1 and word in (r.stdout + r.stderr), f"error exit naming the problem: {args}")
    if h.is_ours():
        # swtpm only notices a missing state directory at CMD_INIT; we refuse at start.
        r = srv("--tpmstate", "dir=/nonexistent/dir", "--ctrl", f"type=tcp,port={h.free_port()}")
        h.check(r.returncode == 1 and "/nonexistent/dir" in r.stderr, "missing state directory refused at start")
        for opt in (["--chroot", "/"], ["--seccomp", "action=fry"], ["--tpmstate", "backend-uri=nfs://x/y"]):
            r = srv("--tpm2", "--ctrl", "type=tcp,port=1", *opt)
            h.check(r.returncode == 1 and opt[0].lstrip("-") in r.stderr + r.stdout,
                    f"unsupported {opt[0]} refused with a message naming it")
        r = h.run(h.server_cmd() + ["chardev"], check_rc=False)
        h.check(r.returncode == 1 and "chardev" in r.stderr, "unsupported interface type refused")
        # Snapshot verification that cannot be honoured stops the bridge at
        # start, naming what is missing; it never runs as a plain swtpm.
        uuid = "3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6"
        no_conf = os.path.join(work, "empty-bridge.conf")
        open(no_conf, "w").close()
        snap = ["--vm-memory", "path=/dev/shm/vtpm-cli-absent", "--vtpm-host", f"socket={work}/absent.sock",
                "--vm-uuid", uuid, "--vtpm-config", no_conf]
        for args, word in (
                (["--tpm2", "--ctrl", f"type=tcp,port={h.free_port()}"] + snap, "--ctrl type=unixio"),
                (["--ctrl", f"type=unixio,path={work}/cli.sock"] + snap, "a TPM 2 (--tpm2)"),
                (["--tpm2", "--ctrl", f"type=unixio,path={work}/cli.sock", "--vm-memory", "policy=refuse,required",
                  "--vtpm-config", no_conf], "missing the host key")):
            r = srv("--tpmstate", f"dir={d}", *args)
            h.check(r.returncode == 1 and word in r.stderr and "cannot be honoured" in r.stderr,
                    f"verification that cannot be honoured refused at start, naming {word!r}: {r.stderr.strip()}")

    # --daemon + --pid: the parent returns once the child serves; the pid file names it.
    d2 = os.path.join(work, "daemon")
    os.mkdir(d2)
    pidfile = os.path.join(work, "tpm.pid")
    sock = os.path.join(work, "daemon.sock")
    log = os.path.join(work, "daemon.log")
    r = srv("--tpm2", "--daemon", "--tpmstate", f"dir={d2}", "--ctrl", f"type=unixio,path={sock}",
            "--pid", f"file={pidfile}", "--log", f"file={log},level=5", "--flags", "not-need-init")
    h.check_eq(r.returncode, 0, "--daemon: parent exits 0")
    pid = int(open(pidfile).read())
    h.check(os.path.exists(f"/proc/{pid}") and os.path.exists(sock), "daemon runs and listens")
    h.check_eq(h.ioctl("--unix", sock, "-g").stdout.strip(), "ptm configuration flags: 0x0", "daemon answers")
    h.ioctl("--unix", sock, "-s")
    h.wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 5, "daemon exit")
    h.check(not os.path.exists(pidfile), "pid file removed at exit")
    h.check(not os.path.exists(sock), "socket removed at exit")
    if h.is_ours():
        text = open(log).read()
        h.check("CMD_SHUTDOWN" in text and "serving" in text, "level-5 log has one line per event")

    # The seccomp filter is really in place (kernel's view of the process).
    if h.is_ours():
        for action, want in (("kill", "2"), ("none", "0")):
            d4 = os.path.join(work, f"sc-{action}")
            os.mkdir(d4)
            sock4 = os.path.join(d4, "s")
            log4 = os.path.join(d4, "log")
            s4 = h.Server(stack, ["--tpm2", "--tpmstate", f"dir={d4}", "--ctrl", f"type=unixio,path={sock4}",
                                  "--seccomp", f"action={action}", "--log", f"file={log4},level=3"], wait_path=sock4)
            h.ioctl("--unix", sock4, "-g")  # serving: the filter is loaded by now
            mode = [l.split()[1] for l in open(f"/proc/{s4.proc.pid}/status") if l.startswith("Seccomp:")][0]
            core = [l.split()[4:6] for l in open(f"/proc/{s4.proc.pid}/limits") if l.startswith("Max core file size")][0]
            h.check_eq(core, ["0", "0"], f"--seccomp action={action}: no core dumps (RLIMIT_CORE 0, soft and hard)")
            if h.is_sanitizer_build():
                # The sanitizers' exit handling needs ptrace: no filter, and the log says so.
                said = "seccomp filter not installed in a sanitizer build" in open(log4).read()
                if action == "none":
                    h.check(not said, "sanitizer build, --seccomp action=none: nothing to leave out, nothing said")
                else:
                    h.check(said, "sanitizer build: the log says the seccomp filter is left out")
                h.check_eq(mode, "0", f"--seccomp action={action} in a sanitizer build: no filter (mode 0)")
            else:
                h.check_eq(mode, want, f"--seccomp action={action}: kernel reports seccomp mode {want}")
            h.ioctl("--unix", sock4, "-s")
            s4.wait(5)

    # TPM 1.2: swtpm_ioctl sees the same answers as with swtpm.
    outs = []
    for cmd in (None, [h.SWTPM]):
        d3 = os.path.join(work, f"t12-{len(outs)}")
        os.mkdir(d3)
        sock3 = os.path.join(d3, "s")
        s3 = h.Server(stack, ["--tpmstate", f"dir={d3}", "--ctrl", f"type=unixio,path={sock3}",
                              "--flags", "not-need-init,startup-clear"], cmd=cmd, wait_path=sock3)
        seq = []
        for a in (["-c"], ["-e"], ["-b", "0"], ["--info", "1"], ["-v"], ["--save", "permanent", d3 + "/p"]):
            p = h.ioctl(*(a + ["--unix", sock3]), check_rc=False)
            seq.append((a[0], p.returncode, p.stdout.strip()))
        # Our journal of the permanent state (tpm-00.permall.journal) is
        # ours alone; the files swtpm knows must be the same.
        seq.append(("print-states", sorted(f for f in os.listdir(d3) if not f.endswith(".journal"))))
        h.ioctl("--unix", sock3, "-s")
        s3.wait(5)
        outs.append(seq)
    for a, b in zip(outs[0], outs[1]):
        h.check_eq(a, b, f"TPM 1.2: {a[0]} as with swtpm")
    h.check_eq(outs[0][0][2], "ptm capability is 0x7fff", "TPM 1.2 capability mask as swtpm 0.7.1's")


if __name__ == "__main__":
    h.main(test, min_checks=62)
