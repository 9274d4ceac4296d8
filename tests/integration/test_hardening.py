#!/usr/bin/env python3
"""The bridge keeps its keys to itself: no core dumps (RLIMIT_CORE 0), not
dumpable (so /proc/PID/* belongs to root and same-user debuggers are refused),
an allow-list seccomp filter, and the state key, the key file's text, a
passphrase and the key derived from it never in a core image of the live
process (gdb's gcore, which leaves out MADV_DONTDUMP mappings as the kernel
does). The search is shown not to be vacuous: the same core holds the state
directory path, and a core taken with the excluded mappings included holds
the key. In a sanitizer build harden_process leaves the process dumpable
and install_seccomp leaves the filter out (the leak check needs ptrace);
there the test checks that this is so and runs the rest unchanged."""
import hashlib
import os
import pwd
import secrets
import shutil
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
    if user:
        args += ["--runas", user]
    srv = h.Server(stack, args, wait_path=data)
    # Use the key: TPM commands, then the volatile state written encrypted.
    import socket
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
    # A bridge running as another user than ours shows the non-dumpable flag
    # as /proc/PID owned by root. As root, run it as nobody.
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
    bridge_uid = int(status_field(pid, "Uid"))
    if bridge_uid == os.getuid():
        h.check(False, "the bridge must run as another user for the dumpable check")
    # The kernel gives a non-dumpable process's /proc/PID files (not the
    # directory itself, which always shows the effective uid) to root.
    owner = os.stat(f"/proc/{pid}/environ").st_uid
    if sanitizer:
        h.check_eq(owner, bridge_uid, "sanitizer build: left dumpable (/proc/PID/environ owned by the bridge's user)")
        h.check_eq(status_field(pid, "Seccomp"), "0", "sanitizer build: no seccomp filter")
    else:
        h.check_eq(owner, 0, "not dumpable: /proc/PID/environ belongs to root, not to the bridge's user")
        h.check_eq(status_field(pid, "Seccomp"), "2", "seccomp filter mode")
        h.check_eq(status_field(pid, "Seccomp_filters"), "1", "exactly one seccomp filter")
    smaps = open(f"/proc/{pid}/smaps").read()
    h.check(any(" dd" in l for l in smaps.splitlines() if l.startswith("VmFlags:")),
            "the bridge has mappings left out of core dumps (MADV_DONTDUMP)")

    # (b) a core image of the live process: no key, no key text.
    core = take_core(pid, os.path.join(work, "bridge.core"))
    h.check(len(core) > 1 << 20, f"gcore wrote a core image ({len(core)} bytes)")
    h.check(d.encode() in core, "the core holds what it should (the state directory path)")
    h.check(key not in core, "the raw state key is not in the core")
    h.check(key.hex().encode() not in core and key.hex().upper().encode() not in core,
            "the key file's text is not in the core")
    # Not vacuous: with the excluded mappings written too, the key is there.
    full = take_core(pid, os.path.join(work, "bridge-full.core"), with_excluded=True)
    h.check(key in full, "with the MADV_DONTDUMP mappings included the key is found (the search works)")
    h.check(key.hex().encode() not in full, "(c) the key file's text is kept nowhere, not even in protected memory")
    del core, full
    h.check(srv.alive(), "the bridge survived being attached to")

    # 2. A passphrase (PBKDF2): neither it nor the derived key in the core.
    pw = ("vtpm-passphrase-" + secrets.token_hex(20)).encode()
    derived = hashlib.pbkdf2_hmac("sha512", pw, b"swtpm", 1000, 32)
    d2 = prepare_dir(work, "pwd", user)
    pwdfile = write_secret(d2, "state.pwd", pw, user)
    srv2 = start_bridge(stack, d2, f"pwdfile={pwdfile},mode=aes-256-cbc", user)
    core = take_core(srv2.proc.pid, os.path.join(work, "bridge2.core"))
    h.check(d2.encode() in core, "passphrase bridge: the core holds the state directory path")
    h.check(pw not in core, "the passphrase is not in the core")
    h.check(derived not in core, "the key derived from the passphrase is not in the core")
    full = take_core(srv2.proc.pid, os.path.join(work, "bridge2-full.core"), with_excluded=True)
    h.check(derived in full, "with the MADV_DONTDUMP mappings included the derived key is found")
    h.check(pw not in full, "(c) the passphrase is kept nowhere after the key is derived")
    del core, full

    for s in (srv, srv2):
        s.stop()
        h.check_eq(s.proc.returncode, 0, "the bridge exits cleanly on SIGTERM under its seccomp filter")


if __name__ == "__main__":
    h.main(test, min_checks=20)
