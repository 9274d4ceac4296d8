"""Shared helpers for the integration tests: servers (our bridge or Debian's
swtpm), raw control-channel clients, swtpm_ioctl / tpm2-tools runners, QEMU
with QMP and a serial log. Python 3 standard library only.

The server under test is a command prefix: $VTPM_SERVER, else the bridge path
given as the first command-line argument. Every test can thus also be run
against Debian's swtpm (VTPM_SERVER=/usr/bin/swtpm) to check that the test
itself describes swtpm's real behaviour.
"""
import array
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

SWTPM = "/usr/bin/swtpm"
HERE = os.path.dirname(os.path.abspath(__file__))

_server = None
_checks = 0


def server_cmd():
    global _server
    if _server is None:
        env = os.environ.get("VTPM_SERVER")
        if env:
            _server = env.split()
        elif len(sys.argv) > 1:
            _server = [sys.argv[1]]
        else:
            _server = [SWTPM]
    return list(_server)


def is_ours():
    return os.path.realpath(server_cmd()[0]) != os.path.realpath(SWTPM)


def build_dir():
    return os.environ.get("VTPM_BUILD_DIR", tempfile.gettempdir())


def check(cond, what):
    """Record one check; raise on failure."""
    global _checks
    _checks += 1
    if not cond:
        raise AssertionError(what)
    print(f"ok {_checks} - {what}", flush=True)


def check_eq(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")
    check(True, what)


def main(fn):
    """Run a test function with a scratch directory; exit 0/1."""
    work = tempfile.mkdtemp(prefix="vtpm-it-")
    start = time.time()
    rc = 0
    try:
        with contextlib.ExitStack() as stack:
            fn(work, stack)
        print(f"# {_checks} checks passed in {time.time() - start:.1f}s against {' '.join(server_cmd())}")
    except Exception:  # noqa: BLE001 - report any failure
        traceback.print_exc()
        print(f"# FAILED after {_checks} checks")
        rc = 1
    finally:
        if rc and os.environ.get("VTPM_KEEP_WORK"):
            print(f"# work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(rc)


def free_port(n=1):
    """A base port P such that P..P+n-1 are free on 127.0.0.1."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        ok = True
        for i in range(1, n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", base + i))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free ports")


def wait_for(pred, timeout, what, interval=0.02):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def dir_digest(path):
    """Hashes of the state files in a directory (sockets and the lock excluded)."""
    out = {}
    for name in sorted(os.listdir(path)):
        p = os.path.join(path, name)
        if name.startswith("tpm") and os.path.isfile(p):
            out[name] = sha256_file(p)
    return out


class Server:
    """A server process (ours or swtpm) that is always stopped at the end."""

    def __init__(self, stack, args, cmd=None, wait_path=None, wait_port=None, env=None, pass_fds=()):
        self.cmd = (cmd or server_cmd()) + ["socket"] + args
        self.log = tempfile.NamedTemporaryFile(prefix="vtpm-srv-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, pass_fds=pass_fds)
        stack.callback(self.stop)
        if wait_path:
            wait_for(lambda: os.path.exists(wait_path) or self.proc.poll() is not None, 5, wait_path)
        if wait_port:
            def up():
                if self.proc.poll() is not None:
                    return True
                with socket.socket() as s:
                    return s.connect_ex(("127.0.0.1", wait_port)) == 0
            wait_for(up, 5, f"port {wait_port}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited early ({self.proc.returncode}): {self.output()}")

    def output(self):
        with open(self.log.name, "r", errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


def tcp_server(stack, state, extra=(), cmd=None, flags="not-need-init,startup-clear"):
    """Server with TCP data port P and control port P+1, as tpm2-tools wants it."""
    port = free_port(2)
    args = ["--tpm2", "--tpmstate", f"dir={state}", "--server", f"type=tcp,port={port}",
            "--ctrl", f"type=tcp,port={port + 1}"]
    if flags:
        args += ["--flags", flags]
    srv = Server(stack, args + list(extra), cmd=cmd, wait_port=port + 1)
    wait_for(lambda: _port_open(port) or not srv.alive(), 5, "data port")
    return srv, port


def _port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# ------------------------------------------------------------ control channel

class Ctrl:
    """Raw control-channel client (UNIX path or TCP port)."""

    def __init__(self, path=None, port=None, timeout=5):
        if path:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.connect(path)
        else:
            self.s = socket.create_connection(("127.0.0.1", port))
        self.s.settimeout(timeout)

    def close(self):
        self.s.close()

    def send(self, data, fds=None):
        if fds:
            self.s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        else:
            self.s.sendall(data)

    def recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return buf

    def recv_nothing(self, wait=0.3):
        """True if nothing more arrives within `wait` seconds."""
        self.s.settimeout(wait)
        try:
            data = self.s.recv(1)
            return data == b""
        except socket.timeout:
            return True
        finally:
            self.s.settimeout(5)

    def cmd(self, code, body=b"", rsp_len=4, fds=None):
        self.send(struct.pack(">I", code) + body, fds)
        return self.recv(rsp_len)


def u32(b, off=0):
    return struct.unpack_from(">I", b, off)[0]


# ------------------------------------------------------------ TPM commands

def tpm2_startup(su=0):
    return struct.pack(">HIIH", 0x8001, 12, 0x144, su)


def tpm2_getrandom(n):
    return struct.pack(">HIIH", 0x8001, 12, 0x17B, n)


def tpm_rc(rsp):
    return u32(rsp, 6)


def transact(sock, cmd):
    sock.sendall(cmd)
    hdr = b""
    while len(hdr) < 10:
        c = sock.recv(10 - len(hdr))
        if not c:
            raise EOFError("data channel closed")
        hdr += c
    size = u32(hdr, 2)
    body = b""
    while len(body) < size - 10:
        c = sock.recv(size - 10 - len(body))
        if not c:
            raise EOFError("data channel closed")
        body += c
    return hdr + body


# ------------------------------------------------------------ CLI tools

def run(cmd, check_rc=True, timeout=60, env=None, input=None):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, input=input)
    p.stdout = p.stdout.decode("latin-1")
    p.stderr = p.stderr.decode("latin-1")
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return p


def tpm2(port, *args, check_rc=True, timeout=60, input_data=None):
    env = dict(os.environ, TPM2TOOLS_TCTI=f"swtpm:host=127.0.0.1,port={port}")
    return run(["tpm2_" + args[0]] + list(args[1:]), check_rc=check_rc, env=env, timeout=timeout,
               input=input_data)


def ioctl(*args, check_rc=True, timeout=20):
    return run(["swtpm_ioctl"] + list(args), check_rc=check_rc, timeout=timeout)


def stand_in_hw_tpm(stack, work, name):
    """Debian's swtpm, manufactured by Debian's swtpm_setup with an EK
    certificate from swtpm-localca, standing in for the host's hardware TPM
    (tpm2-tss swtpm TCTI). Returns (server, port, tcti, ek_roots_pem)."""
    d = os.path.join(work, name)
    os.mkdir(d)
    run(["swtpm_setup", "--tpm2", "--tpm-state", d, "--createek", "--create-ek-cert",
         "--pcr-banks", "sha1,sha256"])
    srv, port = tcp_server(stack, d, cmd=[SWTPM])
    roots = os.path.join(work, name + "-ek-roots.pem")
    with open(roots, "w") as out:
        for f in ("issuercert.pem", "swtpm-localca-rootca-cert.pem"):
            with open(os.path.join("/var/lib/swtpm-localca", f)) as src:
                out.write(src.read())
    return srv, port, f"swtpm:host=127.0.0.1,port={port}", roots


# ------------------------------------------------------------ QEMU

def guest_files():
    out = os.path.join(build_dir(), "vtpm-test-guest")
    # vtpm-attest goes into the guest so it can quote from inside.
    attest = os.path.join(os.path.dirname(os.path.realpath(server_cmd()[0])), "vtpm-attest")
    extra = [attest] if os.path.exists(attest) else []
    run(["bash", os.path.join(HERE, "guest", "build-guest.sh"), out] + extra, timeout=120)
    return os.path.join(out, "vmlinuz"), os.path.join(out, "initrd.img")


class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        wait_for(lambda: self._try_connect(path), 10, "QMP socket")
        self.f = self.s.makefile("rw")
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _try_connect(self, path):
        try:
            self.s.connect(path)
            return True
        except OSError:
            return False

    def _read(self):
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("QMP closed")
            msg = json.loads(line)
            if "event" in msg:
                continue
            return msg

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.f.write(json.dumps(req) + "\n")
        self.f.flush()
        rsp = self._read()
        if "error" in rsp:
            raise RuntimeError(f"QMP {name}: {rsp['error']}")
        return rsp.get("return")

    def wait_migration(self, timeout=120):
        def done():
            st = self.cmd("query-migrate").get("status")
            if st == "failed":
                raise RuntimeError("migration failed")
            return st == "completed"
        wait_for(done, timeout, "migration", interval=0.1)


class Qemu:
    """qemu-system-x86_64 (TCG) with the test guest and a tpm-emulator device."""

    def __init__(self, stack, work, name, ctrl_path, device="tpm-crb", incoming=None, mem=256, append="",
                 mem_path=None):
        """mem_path: guest RAM in a shared memory-backend-file at that path
        ("memfd": a shared memory-backend-memfd)."""
        kernel, initrd = guest_files()
        self.serial = os.path.join(work, f"{name}.serial")
        self.qmp_path = os.path.join(work, f"{name}.qmp")
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-m", str(mem), "-nographic", "-nodefaults",
               "-no-user-config", "-machine", "q35" + (",memory-backend=pc.ram" if mem_path else ""),
               "-kernel", kernel, "-initrd", initrd,
               "-append", ("console=ttyS0 quiet panic=-1 " + append).strip(),
               "-serial", f"file:{self.serial}",
               "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
               "-chardev", f"socket,id=chrtpm,path={ctrl_path}",
               "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
               "-device", f"{device},tpmdev=tpm0", "-no-reboot"]
        if mem_path == "memfd":
            cmd += ["-object", f"memory-backend-memfd,id=pc.ram,size={mem}M,share=on"]
        elif mem_path:
            cmd += ["-object", f"memory-backend-file,id=pc.ram,size={mem}M,mem-path={mem_path},share=on"]
        if incoming:
            cmd += ["-incoming", incoming]
        self.log = open(os.path.join(work, f"{name}.qemu.log"), "w")
        # Not meson's MALLOC_PERTURB_: QEMU 7.2 reads its TPM PPI buffer
        # uninitialised, and a perturbed "memory overwrite request" bit makes
        # its machine reset zero guest RAM (on an x-ignore-shared restore,
        # the shared memory file itself).
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_PERTURB_"}
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env)
        stack.callback(self.kill)
        self.qmp = Qmp(self.qmp_path)

    def output(self):
        try:
            with open(self.serial, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_output(self, pattern, timeout=90, after=0):
        rx = re.compile(pattern)

        def found():
            if self.proc.poll() is not None:
                raise RuntimeError(f"QEMU exited ({self.proc.returncode}): {self.qemu_log()}")
            return rx.search(self.output(), after)
        return wait_for(found, timeout, f"guest output {pattern!r}", interval=0.1)

    def qemu_log(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def pcrs(self, tag):
        """PCR values printed by the guest under a tag: {index: hex}."""
        out = {}
        for m in re.finditer(rf"^PCR {tag} (\d+) ([0-9A-Fa-f]*)\s*$", self.output(), re.M):
            out[int(m.group(1))] = m.group(2).lower()
        return out

    def quit(self):
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.qmp.cmd("quit")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def libvirt_style_server(stack, state, ctrl_path, log_path, extra=()):
    """The server started as libvirt 9.0 starts swtpm."""
    args = ["--ctrl", f"type=unixio,path={ctrl_path},mode=0600",
            "--tpmstate", f"dir={state},mode=0600",
            "--log", f"file={log_path},level=20", "--terminate", "--tpm2"] + list(extra)
    return Server(stack, args, wait_path=ctrl_path)
