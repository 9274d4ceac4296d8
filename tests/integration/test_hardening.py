#!/usr/bin/env python3
"""The bridge keeps its keys to itself: no core dumps (RLIMIT_CORE 0), not
dumpable (so /proc/PID/* belongs to root and same-user debuggers are refused),
an allow-list seccomp filter, and the state key, the key file's text, a
passphrase and the key derived from it never in a core image of the live
process (gdb's gcore, which leaves out MADV_DONTDUMP mappings as the kernel
does). The search is shown not to be vacuous: the same core holds the state
directory path, and a core taken with the excluded mappings included holds
the key. In a sanitizer build harden_process leaves the process dumpable
and install_seccomp leaves the filter out (the leak check needs ptrace):
there the test checks that this is so, starts both bridges as usual and
takes no core images (an ASan process's core is gigabytes)."""
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import struct

import harness as h

GDB = shutil.which("gdb")


def status_field(pid, name):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(name + ":"):
            return line.split()[1]
    return None


def take_core(pid, path, with_excluded=False):
    """A core image of the live process, written by gdb the way the kernel
    would (coredump_filter honoured, MADV_DONTDUMP mappings left out) unless
    with_excluded. Returns its bytes."""
    excluded = "on" if with_excluded else "off"
    h.run([GDB, "-nx", "-batch", "-ex", "set use-coredump-filter on", "-ex",
           f"set dump-excluded-mappings {excluded}", "-ex", f"gcore {path}", "-p", str(pid)], timeout=180)
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    return data


def header_flags(path):
    with open(path, "rb") as f:
        return struct.unpack(">BBHHI", f.read(10))[3]


def start_bridge(stack, d, key_opt, user):
    ctrl = os.path.join(d, "ctrl.sock")
    data = os.path.join(d, "data.sock")
    args = ["--tpm2", "--tpmstate", f"dir={d}", "--ctrl", f"type=unixio,path={ctrl}",
            "--server", f"type=unixio,path={data}", "--key", key_opt, "--flags", "not-need-init,startup-clear",
            "--log", f"file={d}/log,level=3"]
    cmd = None
    if user:
        # Started as that user rather than with --runas: a set*id call makes
        # the kernel clear the dumpable flag by itself, which would hide
        # whether harden_process does. After exec the process is dumpable.
        pw = pwd.getpwnam(user)
        cmd = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"] + h.server_cmd()
    srv = h.Server(stack, args, cmd=cmd, wait_path=data)
    # Use the key: TPM commands, then the volatile state written encrypted.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(data)
        rsp = h.transact(s, h.tpm2_getrandom(16))
        h.check_eq(h.tpm_rc(rsp), 0, "TPM2_GetRandom answered")
    h.ioctl("--unix", ctrl, "-v")
    for f in ("tpm2-00.permall", "tpm2-00.volatilestate"):
        flags = header_flags(os.path.join(d, f))
        h.check_eq(flags & 0x09, 0x09, f"{f} written encrypted with the 256-bit state key (header flags)")
    return srv


def prepare_dir(work, name, user):
    d = os.path.join(work, name)
    os.mkdir(d, 0o700)
    if user:
        pw = pwd.getpwnam(user)
        os.chown(d, pw.pw_uid, pw.pw_gid)
    return d


def write_secret(d, name, data, user):
    path = os.path.join(d, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data)
    os.close(fd)
    if user:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def test(work, stack):
    if not h.is_ours():
        h.skip("the hardening checks are about vtpm-bridge")
    if GDB is None:
        h.skip("gdb is not installed (scripts/install-deps.sh installs it)")
    sanitizer = h.is_sanitizer_build()
    # As root, the bridge runs as nobody: /proc/PID/* of a non-dumpable
    # process of another user belongs to root.
    user = "nobody" if os.getuid() == 0 else None
    if user:
        os.chmod(work, 0o711)

    # 1. A raw 32-byte key, given as hex text in a key file.
    key = secrets.token_bytes(32)
    d = prepare_dir(work, "key", user)
    keyfile = write_secret(d, "state.key", key.hex().encode() + b"\n", user)
    srv = start_bridge(stack, d, f"file={keyfile},mode=aes-256-cbc", user)
    pid = srv.proc.pid

    # (a) no core dumps, not dumpable, the seccomp allow-list in place.
    core_limit = [l.split()[4:6] for l in open(f"/proc/{pid}/limits") if l.startswith("Max core file size")][0]
    h.check_eq(core_limit, ["0", "0"], "RLIMIT_CORE is 0 (soft and hard)")
    want = "dumpable (sanitizer build)" if sanitizer else "not dumpable"
    h.check_eq(dumpable_evidence(pid), want, "the process's dumpable flag as /proc shows it")
    if sanitizer:
        h.check_eq(status_field(pid, "Seccomp"), "0", "sanitizer build: no seccomp filter")
    else:
        h.check_eq(status_field(pid, "Seccomp"), "2", "seccomp filter mode")
        h.check_eq(status_field(pid, "Seccomp_filters"), "1", "exactly one seccomp filter")
    smaps = open(f"/proc/{pid}/smaps").read()
    h.check(any(" dd" in l for l in smaps.splitlines() if l.startswith("VmFlags:")),
            "the bridge has mappings left out of core dumps (MADV_DONTDUMP)")

    # 2. A passphrase longer than a page (the read buffer grows) for PBKDF2.
    pw = ("vtpm-passphrase-" + secrets.token_hex(2500)).encode()
    derived = hashlib.pbkdf2_hmac("sha512", pw, b"swtpm", 1000, 32)
    d2 = prepare_dir(work, "pwd", user)
    pwdfile = write_secret(d2, "state.pwd", pw, user)
    srv2 = start_bridge(stack, d2, f"pwdfile={pwdfile},mode=aes-256-cbc", user)

    # (b), (c) core images of the live processes. An ASan process's core is
    # gigabytes of shadow and allocator regions and takes a minute to write:
    # not in a sanitizer build. Attaching to a non-dumpable process needs root.
    if not sanitizer and os.getuid() == 0:
        check_cores(work, srv, d, [("the raw state key", key)],
                    [("the key file's text", key.hex().encode()), ("the key file's text", key.hex().upper().encode())])
        check_cores(work, srv2, d2, [("the key derived from the passphrase", derived)],
                    [("the passphrase", pw), ("a piece of the passphrase", pw[16:80])])
    else:
        print("# core images not taken: " + ("sanitizer build" if sanitizer else "not root"))

    for s in (srv, srv2):
        s.stop()
        h.check_eq(s.proc.returncode, 0, "the bridge exits cleanly on SIGTERM (under its seccomp filter)")


def dumpable_evidence(pid):
    """What /proc says about the dumpable flag of a process of another user
    (as root) or of our own user (otherwise)."""
    path = f"/proc/{pid}/environ"
    if os.getuid() == 0:
        # The kernel gives a non-dumpable process's /proc/PID files (not the
        # directory itself, which always shows the effective uid) to root.
        bridge_uid = int(status_field(pid, "Uid"))
        h.check(bridge_uid != 0, "the bridge runs as another user than root")
        return "not dumpable" if os.stat(path).st_uid == 0 else "dumpable (sanitizer build)"
    try:
        # Reading it needs ptrace access: refused for a non-dumpable process.
        open(path, "rb").read()
        return "dumpable (sanitizer build)"
    except PermissionError:
        return "not dumpable"


def check_cores(work, srv, d, protected, nowhere):
    """A core image of srv's live process holds none of `protected` and
    `nowhere` but does hold the state directory path; one written with the
    MADV_DONTDUMP mappings included holds `protected` (the key is there and
    the search finds it) and still none of `nowhere` (no other copy)."""
    pid = srv.proc.pid
    core = take_core(pid, os.path.join(work, f"{pid}.core"))
    h.check(len(core) > 1 << 20, f"gcore wrote a core image ({len(core)} bytes)")
    h.check(d.encode() in core, "the core holds what it should (the state directory path)")
    for what, data in protected + nowhere:
        h.check(data not in core, f"{what} is not in the core")
    full = take_core(pid, os.path.join(work, f"{pid}-full.core"), with_excluded=True)
    for what, data in protected:
        h.check(data in full, f"with the MADV_DONTDUMP mappings included {what} is found (the search works)")
    for what, data in nowhere:
        h.check(data not in full, f"{what} is kept nowhere, not even in protected memory")
    h.check(srv.alive(), "the bridge survived being attached to")


if __name__ == "__main__":
    # Core images are left out in a sanitizer build (see above).
    h.main(test, min_checks=13 if h.is_sanitizer_build() else 32)
