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
_servers = []       # every Server started, checked at the end of main()
_work = None        # the running test's scratch directory
_cleanup_fd = None  # registry the reaper process reads when this process dies


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


def built_bridge():
    """Our bridge as the build left it: $BUILD_DIR/swtpm-bridge/vtpm-bridge,
    BUILD_DIR defaulting to the checkout's build/ (the bench scripts' default
    server)."""
    build = os.environ.get("BUILD_DIR", os.path.join(os.path.dirname(os.path.dirname(HERE)), "build"))
    return os.path.join(build, "swtpm-bridge", "vtpm-bridge")


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
    """Record one check that two values are equal; the values are printed."""
    global _checks
    _checks += 1
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")
    shown = repr(got)
    print(f"ok {_checks} - {what} (== {shown if len(shown) <= 80 else shown[:77] + '...'})", flush=True)


class Skip(Exception):
    """A deliberate skip: main() prints the reason and exits 77."""


def skip(reason):
    raise Skip(reason)


class Terminated(Exception):
    """SIGTERM/SIGINT arrived (meson's timeout): unwind and clean up."""


def timeout_scale():
    """Factor for start/stop waits: VTPM_TIMEOUT_SCALE, else 4 for a
    sanitizer build of the server under test, else 1."""
    global _scale
    if _scale is None:
        env = os.environ.get("VTPM_TIMEOUT_SCALE")
        if env:
            _scale = float(env)
        else:
            _scale = 4.0 if is_sanitizer_build() else 1.0
    return _scale


_scale = None


def is_sanitizer_build():
    try:
        with open(os.path.realpath(server_cmd()[0]), "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__ubsan_handle" in data


def work_dir():
    return _work


def register_cleanup(kind, value):
    """Tell the reaper (a process outside meson's process group) what to undo
    if this process dies without cleaning up: 'file PATH', 'pgid N', 'kill NEEDLE'."""
    if _cleanup_fd is not None:
        os.write(_cleanup_fd, f"{kind} {value}\n".encode())


_REAPER = r"""
import os, shutil, signal, sys, time
fd, reg, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
while os.read(fd, 4096):
    pass
# The test process is gone (normally or killed): undo what it left.
lines = open(reg).read().split("\n") if os.path.exists(reg) else []
keep = any(l.startswith("keep") for l in lines)
for l in lines:
    k, _, v = l.partition(" ")
    if k == "pgid":
        try: os.killpg(int(v), signal.SIGKILL)
        except OSError: pass
needles = [l[5:] for l in lines if l.startswith("kill ")] + [work]
for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) == os.getpid():
        continue
    try: cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
    except OSError: continue
    if any(n in cmd for n in needles) and "vtpm-reaper" not in cmd:
        try: os.kill(int(pid), signal.SIGKILL)
        except OSError: pass
time.sleep(0.2)
for l in lines:
    k, _, v = l.partition(" ")
    if k == "file":
        try: os.unlink(v)
        except OSError: pass
if not keep:
    shutil.rmtree(work, ignore_errors=True)
"""


def _start_reaper(work):
    global _cleanup_fd
    reg = os.path.join(work, ".cleanup")
    r, w = os.pipe()
    subprocess.Popen([sys.executable, "-c", _REAPER, str(r), reg, work, "vtpm-reaper"], pass_fds=(r,),
                     start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    os.close(r)
    os.set_inheritable(w, False)
    _cleanup_fd = os.open(reg, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    return w  # kept open for this process's lifetime: its EOF tells the reaper


def _on_signal(signum, _frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Terminated(f"signal {signum} received (meson's timeout?)")


SANITIZER_RX = re.compile(r"Sanitizer|runtime error")


def check_servers():
    """Every server started in this test exited cleanly and printed no
    sanitizer report. Returns a list of problems."""
    problems = []
    for srv in _servers:
        problems += srv.problems()
    return problems


def main(fn, min_checks=1, min_checks_swtpm=1):
    """Run a test function with a scratch directory; exit 0, 1, or 77 for a
    deliberate skip. Fewer than min_checks checks (min_checks_swtpm when the
    server under test is Debian's swtpm) is a failure."""
    global _work
    work = tempfile.mkdtemp(prefix="vtpm-it-")
    _work = work
    reaper_pipe = _start_reaper(work)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    start = time.time()
    rc = 0
    problems = []
    try:
        try:
            with contextlib.ExitStack() as stack:
                fn(work, stack)
        finally:
            problems = check_servers()
        if problems:
            raise AssertionError("server problems:\n  " + "\n  ".join(problems))
        need = min_checks if is_ours() else min_checks_swtpm
        if _checks < need:
            raise AssertionError(f"only {_checks} checks ran, this test must run at least {need}")
        print(f"# {_checks} checks passed in {time.time() - start:.1f}s against {' '.join(server_cmd())}")
    except Skip as e:
        print(f"# SKIP: {e}")
        print(f"# {_checks} checks passed before the skip")
        rc = 77
    except (Exception, Terminated):  # noqa: BLE001 - report any failure
        traceback.print_exc()
        print(f"# FAILED after {_checks} checks")
        rc = 1
    finally:
        if rc == 1:
            for p in problems:
                print(f"# server problem: {p}")
            for srv in _servers:
                print(f"# ---- log of server {srv.n} ({' '.join(srv.cmd)[:200]}), exit {srv.proc.returncode}:")
                print(srv.output()[-6000:])
        if rc == 1 and os.environ.get("VTPM_KEEP_WORK"):
            print(f"# work directory kept: {work}")
            register_cleanup("keep", "")
        else:
            # Files registered outside the work directory (guest RAM in
            # /dev/shm) go now: the reaper's registry goes with `work`.
            try:
                with open(os.path.join(work, ".cleanup")) as f:
                    for line in f:
                        kind, _, path = line.rstrip("\n").partition(" ")
                        if kind == "file" and os.path.lexists(path):
                            os.unlink(path)
            except OSError:
                pass
            shutil.rmtree(work, ignore_errors=True)
        sys.stdout.flush()
        os.close(reaper_pipe)
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


def journal_records(path):
    """The state files a permanent-state journal (tpm2-00.permall.journal)
    holds, in any epoch, intact or not: {"<journal>#<slot>": bytes}."""
    with open(path, "rb") as f:
        data = f.read()
    out = {}
    if data[:8] != b"VTPMJNL1" or len(data) < 16:
        return out
    slot_size = int.from_bytes(data[12:16], "big")
    for i in range(2):
        off = 4096 + i * slot_size
        rec = data[off:off + slot_size]
        if rec[:8] == b"VTPMREC1":
            n = int.from_bytes(rec[24:28], "big")
            out[f"{os.path.basename(path)}#{i}"] = rec[60:60 + n]
    return out


def state_file_images(state_dir, prefix="tpm2-00."):
    """Every state file image in a state directory: the files themselves and
    the ones inside the journal."""
    out = {}
    for f in sorted(os.listdir(state_dir)):
        if not f.startswith(prefix):
            continue
        path = os.path.join(state_dir, f)
        if f.endswith(".journal"):
            out.update(journal_records(path))
        else:
            with open(path, "rb") as fh:
                out[f] = fh.read()
    return out


def dir_digest(path):
    """Hashes of the state files in a directory (sockets and the lock excluded)."""
    out = {}
    for name in sorted(os.listdir(path)):
        p = os.path.join(path, name)
        if name.startswith("tpm") and os.path.isfile(p):
            out[name] = sha256_file(p)
    return out


def tree_digest(path):
    """Every regular file and symlink under a directory, recursively:
    {relative path: (size, sha256)}; sockets are left out. For checks that
    a refused operation left a directory byte-identical."""
    out = {}
    if not os.path.isdir(path):
        return None
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            rel = os.path.relpath(p, path)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isfile(p):
                out[rel] = (os.path.getsize(p), sha256_file(p))
    return out


class PortInUse(RuntimeError):
    pass


class Server:
    """A server process (ours or swtpm), stopped at the end. Its output is
    kept in the test's work directory; at the end of main() it must have
    exited 0 (Debian's swtpm may also die of the SIGTERM the harness sent)
    and printed nothing from a sanitizer (stdout/stderr and its --log file)."""

    def __init__(self, stack, args, cmd=None, wait_path=None, wait_port=None, env=None, pass_fds=(),
                 subcommand="socket"):
        self.cmd = (cmd or server_cmd()) + ([subcommand] if subcommand else []) + args
        self.ours = os.path.realpath(self.cmd[0]) != os.path.realpath(SWTPM)
        self.n = len(_servers) + 1
        self.sent_term = False
        self.killed = False
        self.log_files = [args[i + 1].split("file=", 1)[1].split(",")[0] for i in range(len(args) - 1)
                          if args[i] == "--log" and args[i + 1].startswith("file=")]
        logdir = _work or tempfile.gettempdir()
        self.log = open(os.path.join(logdir, f"server-{self.n}.log"), "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, pass_fds=pass_fds)
        _servers.append(self)
        stack.callback(self.stop)
        t = 5 * timeout_scale()
        if wait_path:
            wait_for(lambda: os.path.exists(wait_path) or self.proc.poll() is not None, t, wait_path)
        if wait_port:
            def up():
                if self.proc.poll() is not None:
                    return True
                with socket.socket() as s:
                    return s.connect_ex(("127.0.0.1", wait_port)) == 0
            wait_for(up, t, f"port {wait_port}")
        if self.proc.poll() is not None:
            out = self.output()
            if "Address already in use" in out:
                self.expected_exit = True
                raise PortInUse(f"server could not bind: {out.strip()[-200:]}")
            raise RuntimeError(f"server exited early ({self.proc.returncode}): {out}")

    expected_exit = False

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
            self.sent_term = True
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5 * timeout_scale())
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def problems(self):
        """What is wrong with how this server ended (empty: nothing)."""
        out = []
        name = f"server {self.n} ({os.path.basename(self.cmd[0])}, log {self.log.name})"
        rc = self.proc.poll()
        if rc is None:
            self.stop()
            rc = self.proc.returncode
        if self.killed:
            out.append(f"{name} ignored SIGTERM and had to be killed")
        elif rc != 0 and not self.expected_exit:
            if not (rc == -signal.SIGTERM and self.sent_term and not self.ours):
                how = f"signal {-rc}" if rc < 0 else f"status {rc}"
                out.append(f"{name} exited with {how}")
        texts = [("output", self.output())]
        for path in self.log_files:
            with contextlib.suppress(OSError):
                with open(path, errors="replace") as f:
                    texts.append((path, f.read()))
        for where, text in texts:
            bad = [line for line in text.splitlines() if SANITIZER_RX.search(line)]
            if bad:
                out.append(f"{name}: sanitizer report in its {where}: " + " | ".join(bad[:5]))
        return out


def with_ports(n, start):
    """start(base_port) with ports base..base+n-1 free; a fresh choice again
    when another process took one before the server bound it."""
    for attempt in range(8):
        try:
            return start(free_port(n))
        except PortInUse:
            if attempt == 7:
                raise


def tcp_server(stack, state, extra=(), cmd=None, flags="not-need-init,startup-clear"):
    """Server with TCP data port P and control port P+1, as tpm2-tools wants it."""
    def start(port):
        args = ["--tpm2", "--tpmstate", f"dir={state}", "--server", f"type=tcp,port={port}",
                "--ctrl", f"type=tcp,port={port + 1}"]
        if flags:
            args += ["--flags", flags]
        srv = Server(stack, args + list(extra), cmd=cmd, wait_port=port + 1)
        wait_for(lambda: _port_open(port) or not srv.alive(), 5 * timeout_scale(), "data port")
        if not srv.alive():
            out = srv.output()
            # Another process took a port between free_port() and bind (the
            # control port answered because that process listens on it).
            if "Address already in use" in out:
                srv.expected_exit = True
                raise PortInUse(f"server could not bind: {out.strip()[-200:]}")
            raise RuntimeError(f"server exited ({srv.proc.returncode}): {out}")
        return srv, port
    return with_ports(2, start)


def _port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def complete_lines(path):
    """The text of `path` up to its last newline ("" while it is missing)."""
    try:
        with open(path, "r", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return ""
    return text[:text.rfind("\n") + 1]


# ------------------------------------------------------------ control channel

class Ctrl:
    """Raw control-channel client (UNIX path or TCP port)."""

    def __init__(self, path=None, port=None, timeout=5):
        if path:
            # Debian's swtpm binds its socket (the path appears) before it
            # listens: a connect in between is refused, so it is retried.
            deadline = time.monotonic() + 5 * timeout_scale()
            while True:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    self.s.connect(path)
                    break
                except ConnectionRefusedError:
                    self.s.close()
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
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

    def wait_closed(self, timeout):
        """How the peer reacts within `timeout` seconds: ("closed", seconds)
        if it closed the connection (EOF or ECONNRESET), ("answered", data) if
        bytes arrived, ("timeout", timeout) if neither happened."""
        t0 = time.monotonic()
        self.s.settimeout(timeout)
        try:
            data = self.s.recv(64)
            if data == b"":
                return "closed", time.monotonic() - t0
            return "answered", data
        except ConnectionResetError:
            return "closed", time.monotonic() - t0
        except socket.timeout:
            return "timeout", timeout
        finally:
            self.s.settimeout(5)

    def dropped(self, timeout):
        """True only if the peer closed the connection within `timeout`
        seconds without sending anything; a hang is False."""
        return self.wait_closed(timeout)[0] == "closed"

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


def tpm2_pcr_extend(pcr, sha256_digest):
    """PCR_Extend of one SHA-256 digest, with an empty password session."""
    auth = struct.pack(">IHBH", 0x40000009, 0, 0, 0)
    body = struct.pack(">II", pcr, len(auth)) + auth + struct.pack(">IH", 1, 0x000B) + sha256_digest
    return struct.pack(">HII", 0x8002, 10 + len(body), 0x182) + body


def tpm2_pcr_read(pcr):
    """PCR_Read of one SHA-256 PCR."""
    sel = bytearray(3)
    sel[pcr // 8] |= 1 << (pcr % 8)
    body = struct.pack(">IHB", 1, 0x000B, 3) + bytes(sel)
    return struct.pack(">HII", 0x8001, 10 + len(body), 0x17E) + body


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


def debian_setup_config(work):
    """A private configuration for Debian's swtpm_setup: its swtpm-localca
    CA, signing key and serial counter live in the work directory, never in
    the shared /var/lib/swtpm-localca. Returns (["--config", FILE], CA dir)."""
    ca = os.path.join(work, "swtpm-localca")
    conf = os.path.join(work, "swtpm_setup.conf")
    if not os.path.exists(conf):
        os.makedirs(ca, exist_ok=True)
        with open(os.path.join(work, "swtpm-localca.conf"), "w") as f:
            f.write(f"statedir = {ca}\nsigningkey = {ca}/signkey.pem\nissuercert = {ca}/issuercert.pem\n"
                    f"certserial = {ca}/certserial\n")
        with open(os.path.join(work, "swtpm-localca.options"), "w") as f:
            f.write("--platform-manufacturer Fedora\n--platform-version 2.1\n--platform-model QEMU\n")
        with open(conf, "w") as f:
            f.write(f"create_certs_tool = /usr/bin/swtpm_localca\n"
                    f"create_certs_tool_config = {work}/swtpm-localca.conf\n"
                    f"create_certs_tool_options = {work}/swtpm-localca.options\n"
                    "active_pcr_banks = sha256\n")
    return ["--config", conf], ca


def swtpm_setup(work, *args, **kw):
    """Debian's swtpm_setup with the private configuration."""
    return run(["swtpm_setup"] + list(args) + debian_setup_config(work)[0], **kw)


def stand_in_hw_tpm(stack, work, name):
    """Debian's swtpm, manufactured by Debian's swtpm_setup with an EK
    certificate from swtpm-localca (a private CA in the work directory),
    standing in for the host's hardware TPM (tpm2-tss swtpm TCTI).
    Returns (server, port, tcti, ek_roots_pem)."""
    d = os.path.join(work, name)
    os.mkdir(d)
    swtpm_setup(work, "--tpm2", "--tpm-state", d, "--createek", "--create-ek-cert", "--pcr-banks", "sha1,sha256")
    srv, port = tcp_server(stack, d, cmd=[SWTPM])
    roots = os.path.join(work, name + "-ek-roots.pem")
    ca = debian_setup_config(work)[1]
    with open(roots, "w") as out:
        for f in ("issuercert.pem", "swtpm-localca-rootca-cert.pem"):
            with open(os.path.join(ca, f)) as src:
                out.write(src.read())
    return srv, port, f"swtpm:host=127.0.0.1,port={port}", roots


def owner_key(work, name="owner"):
    """The host owner's policy key: EC P-256, made by openssl in the work
    directory. `vtpm-host provision --owner-key` pins its public part; its
    private part approves host states (`vtpm-host authorize`)."""
    path = os.path.join(work, name + ".pem")
    if not os.path.exists(path):
        run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path])
    return path


def host_daemon(stack, work, host_dir, tcti, name="hostd", ek_ca=None, malloc_perturb=True):
    """vtpm-hostd on the stand-in hardware TPM (after vtpm-host provision and
    enroll): from here on the one client of that TPM. `ek_ca`: the local CA
    directory whose vTPM EK certificates it trusts. `malloc_perturb=False`
    leaves out meson's MALLOC_PERTURB_ (which writes every byte malloc hands
    out), for a test of the daemon's memory. Returns (server, socket)."""
    sock = os.path.join(work, f"{name}.sock")
    hostd = os.path.join(os.path.dirname(os.path.realpath(server_cmd()[0])), "vtpm-hostd")
    args = ["--dir", host_dir, "--tcti", tcti, "--socket", sock, "--log", "level=3"]
    args += ["--ek-ca", ek_ca] if ek_ca else []
    env = {k: v for k, v in os.environ.items() if malloc_perturb or k != "MALLOC_PERTURB_"}
    srv = Server(stack, args, cmd=[hostd], subcommand=None, wait_path=sock, env=dict(env, TSS2_LOG="all+none"))
    # The path appears once the socket listens; a daemon that died at once
    # leaves none (or a stale one): wait until it accepts or the daemon is gone.
    def accepts():
        with socket.socket(socket.AF_UNIX) as s:
            return s.connect_ex(sock) == 0 or not srv.alive()
    wait_for(accepts, 5 * timeout_scale(), f"{sock} to accept")
    return srv, sock


HOSTD_KINDS = {"HostInfo": 1, "LedgerLatest": 2, "SignSnapshotRecord": 3, "KeepLeaves": 4, "LeavesFor": 5,
               "IssueTcgCert": 6, "IssueVaik": 7, "ConfirmVaik": 8, "VaikChallenge": 9, "StateKey": 10,
               "ExportStateKey": 11, "ConsumeGeneration": 12, "RevertGeneration": 13}


def hostd_call(sock_path, kind, fields, raw=None):
    """One request to vtpm-hostd (lib/hostapi/protocol.hpp, written from the
    spec here, not from our code). Returns (status, fields). `raw` sends
    those bytes as the frame instead."""
    if raw is None:
        body = struct.pack(">HHH", 1, HOSTD_KINDS.get(kind, kind if isinstance(kind, int) else 0), len(fields))
        for f in fields:
            body += struct.pack(">I", len(f)) + f
        raw = struct.pack(">I", len(body)) + body
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30 * timeout_scale())
        s.connect(sock_path)
        s.sendall(raw)
        def recv(n):
            out = b""
            while len(out) < n:
                chunk = s.recv(n - len(out))
                if not chunk:
                    raise ConnectionError("vtpm-hostd closed the connection")
                out += chunk
            return out
        (n,) = struct.unpack(">I", recv(4))
        body = recv(n)
    _version, _kind, status, count = struct.unpack(">HHIH", body[:10])
    off, out = 10, []
    for _ in range(count):
        (ln,) = struct.unpack(">I", body[off:off + 4])
        out.append(body[off + 4:off + 4 + ln])
        off += 4 + ln
    return status, out


# ------------------------------------------------------------ QEMU

BOOT_MARKER = "VTPM-GUEST booted"   # the test guest's init prints this once per boot
TICK_RX = re.compile(r"^TICK (\d+) ", re.M)


def ticks(text):
    return [int(t) for t in TICK_RX.findall(text)]


def check_resumed(text_after, last_tick, what):
    """A restored or migrated guest carried on: no boot since (the guest's
    boot marker is absent from its output after the restore) and its tick
    counter went on past `last_tick`, the last one seen before the save."""
    check(last_tick >= 1, f"{what}: a tick was seen before the save ({last_tick})")
    check(BOOT_MARKER not in text_after, f"{what}: no fresh boot (no {BOOT_MARKER!r} after the restore)")
    after = ticks(text_after)
    check(after and min(after) > last_tick,
          f"{what}: the guest's ticks go on after {last_tick} (first after the restore: {after[:1]})")


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
                 mem_path=None, binary="qemu-system-x86_64", extra=()):
        """mem_path: guest RAM in a shared memory-backend-file at that path
        ("memfd": a shared memory-backend-memfd); binary: another QEMU (the
        patched one); extra: more QEMU arguments."""
        kernel, initrd = guest_files()
        self.serial = os.path.join(work, f"{name}.serial")
        self.qmp_path = os.path.join(work, f"{name}.qmp")
        cmd = [binary, "-accel", "tcg", "-m", str(mem), "-nographic", "-nodefaults",
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
            register_cleanup("file", mem_path)  # e.g. 256 MiB in /dev/shm: removed even after a SIGKILL
            cmd += ["-object", f"memory-backend-file,id=pc.ram,size={mem}M,mem-path={mem_path},share=on"]
        cmd += list(extra)
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
        """The guest's serial output, complete lines only: a line the guest
        is still writing must not match a pattern ending in `$`."""
        return complete_lines(self.serial)

    def wait_output(self, pattern, timeout=90, after=0):
        rx = re.compile(pattern)

        def found():
            if self.proc.poll() is not None:
                raise RuntimeError(f"QEMU exited ({self.proc.returncode}): {self.qemu_log()}")
            return rx.search(self.output(), after)
        return wait_for(found, timeout, f"guest output {pattern!r}", interval=0.1)

    def hmp(self, line):
        """One HMP command (savevm, loadvm, info ...) through QMP; its output,
        empty when it succeeded quietly."""
        return self.qmp.cmd("human-monitor-command", **{"command-line": line}).strip()

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
