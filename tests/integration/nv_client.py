"""TPM 2.0 NV index commands with password authorization (TPM_RS_PW, empty
password, owner hierarchy), and the kill -9 durability trial shared by
test_kill9.py, test_powercut.py and bench/kill9.py. Python 3 standard library
only; servers are started through harness.py.

A trial: the server runs on a state directory that persists across trials; a
client writes an increasing 64-bit counter to one NV index, each write
acknowledged by TPM_RC_SUCCESS; the server is SIGKILLed a random moment after
a write was sent (writes keep going meanwhile, so the kill lands inside a
write or between two); then (test_powercut) the power is cut; the server is
started again on the same directory and the index is read. It must hold the
last acknowledged value or the one in flight at the kill: never an older one,
never anything else, and the state must always open.
"""
import errno
import random
import select
import signal
import socket
import struct
import time

import harness as h

# ------------------------------------------------------------ constants

TPM_ST_NO_SESSIONS = 0x8001
TPM_ST_SESSIONS = 0x8002
TPM_CC_NV_UNDEFINE_SPACE = 0x122
TPM_CC_NV_DEFINE_SPACE = 0x12A
TPM_CC_NV_WRITE = 0x137
TPM_CC_NV_READ = 0x14E
TPM_RH_OWNER = 0x40000001
TPM_RS_PW = 0x40000009
TPM_ALG_SHA256 = 0x000B

TPM_RC_SUCCESS = 0x000
TPM_RC_FAILURE = 0x101
TPM_RC_NV_UNINITIALIZED = 0x14A
TPM_RC_NV_DEFINED = 0x14C
TPM_RC_HANDLE = 0x08B | 0x200   # TPM_RC_HANDLE on handle 2: no such NV index

# TPMA_NV bits (TPM 2.0 Part 2, 13.4); TPM_NT_ORDINARY is 0 in bits 4..7.
TPMA_NV_OWNERWRITE = 1 << 1
TPMA_NV_AUTHWRITE = 1 << 2
TPMA_NV_OWNERREAD = 1 << 17
TPMA_NV_AUTHREAD = 1 << 18
NV_ATTRS = TPMA_NV_OWNERWRITE | TPMA_NV_AUTHWRITE | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD

NV_INDEX = 0x01500017   # owner range
NV_SIZE = 8             # one big-endian u64 counter

# ------------------------------------------------------------ command builders


def _pw_auth():
    """Authorization area with one password session: TPM_RS_PW, empty nonce,
    continueSession, empty password."""
    session = struct.pack(">IHBH", TPM_RS_PW, 0, 0x01, 0)
    return struct.pack(">I", len(session)) + session


def _command(cc, handles, params, sessions=True):
    body = b"".join(struct.pack(">I", x) for x in handles)
    body += (_pw_auth() if sessions else b"") + params
    tag = TPM_ST_SESSIONS if sessions else TPM_ST_NO_SESSIONS
    return struct.pack(">HII", tag, 10 + len(body), cc) + body


def nv_define_space(index=NV_INDEX, size=NV_SIZE, attrs=NV_ATTRS):
    """TPM2_NV_DefineSpace under the owner hierarchy: empty index auth,
    sha256 name algorithm, no policy."""
    public = struct.pack(">IHIHH", index, TPM_ALG_SHA256, attrs, 0, size)
    params = struct.pack(">H", 0) + struct.pack(">H", len(public)) + public
    return _command(TPM_CC_NV_DEFINE_SPACE, [TPM_RH_OWNER], params)


def nv_undefine_space(index=NV_INDEX):
    return _command(TPM_CC_NV_UNDEFINE_SPACE, [TPM_RH_OWNER, index], b"")


def nv_write(data, index=NV_INDEX, offset=0):
    """TPM2_NV_Write with owner authorization."""
    params = struct.pack(">H", len(data)) + data + struct.pack(">H", offset)
    return _command(TPM_CC_NV_WRITE, [TPM_RH_OWNER, index], params)


def nv_read(size=NV_SIZE, index=NV_INDEX, offset=0):
    """TPM2_NV_Read with owner authorization."""
    return _command(TPM_CC_NV_READ, [TPM_RH_OWNER, index], struct.pack(">HH", size, offset))


def rsp_rc(rsp):
    return struct.unpack_from(">I", rsp, 6)[0]


def parse_nv_read(rsp):
    """(rc, data) of a TPM2_NV_Read response; data is None unless rc is 0."""
    rc = rsp_rc(rsp)
    if rc != TPM_RC_SUCCESS:
        return rc, None
    # header, parameterSize (u32), TPM2B_MAX_NV_BUFFER, then the auth area
    (n,) = struct.unpack_from(">H", rsp, 14)
    return rc, rsp[16:16 + n]


def counter_bytes(value):
    return struct.pack(">Q", value)


def counter_value(data):
    return struct.unpack(">Q", data)[0] if data is not None and len(data) == 8 else None


# ------------------------------------------------------------ one connection


def send(sock, cmd):
    """Send one command over a connected TCP socket and read its response:
    (rc, response bytes)."""
    rsp = h.transact(sock, cmd)
    return rsp_rc(rsp), rsp


def connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def define_index(sock):
    """Define the counter index; already defined (TPM_RC_NV_DEFINED) is fine.
    Returns the response code."""
    rc, _ = send(sock, nv_define_space())
    return TPM_RC_SUCCESS if rc == TPM_RC_NV_DEFINED else rc


def write_counter(sock, value):
    return send(sock, nv_write(counter_bytes(value)))[0]


def read_counter(sock):
    """(rc, value): value None when the read failed or returned other than 8 bytes."""
    rc, rsp = send(sock, nv_read())
    rc, data = parse_nv_read(rsp)
    return rc, counter_value(data)


class Writer:
    """Pipelined NV writes on one socket without blocking: send a write, poll
    for its response, and so on. `acked` is the last value answered with
    TPM_RC_SUCCESS, `in_flight` the value sent and not yet answered."""

    def __init__(self, sock, acked):
        self.sock = sock
        self.acked = acked
        self.in_flight = None
        self.failed = []      # (value, rc) answered with an error
        self.writes = 0       # acknowledged
        self._buf = b""
        self.closed = False

    def send_next(self):
        value = self.acked + 1
        self.sock.sendall(nv_write(counter_bytes(value)))
        self.in_flight = value

    def poll(self, timeout):
        """Wait up to `timeout` for (the rest of) the response to the write in
        flight. True once it is complete (then acked/failed are updated)."""
        if self.in_flight is None or self.closed:
            time.sleep(max(timeout, 0))
            return False
        r, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not r:
            return False
        try:
            chunk = self.sock.recv(4096)
        except (ConnectionResetError, socket.timeout):
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self._buf += chunk
        if len(self._buf) < 10 or len(self._buf) < struct.unpack_from(">I", self._buf, 2)[0]:
            return False
        size = struct.unpack_from(">I", self._buf, 2)[0]
        rsp, self._buf = self._buf[:size], self._buf[size:]
        rc = rsp_rc(rsp)
        if rc == TPM_RC_SUCCESS:
            self.acked = self.in_flight
            self.writes += 1
        else:
            self.failed.append((self.in_flight, rc))
        self.in_flight = None
        return True

    def wait(self, timeout=10):
        """Block until the write in flight is answered (or the peer closes)."""
        end = time.monotonic() + timeout
        while self.in_flight is not None and not self.closed and time.monotonic() < end:
            self.poll(end - time.monotonic())
        return self.in_flight is None


# ------------------------------------------------------------ servers


def start_server(stack, state, cmd):
    """The server under test on `state` with TCP data/control ports; the TPM
    started (startup-clear). Returns (server, data port)."""
    return h.tcp_server(stack, state, cmd=cmd)


def kill9(srv):
    """SIGKILL a server and reap it; its exit is expected (no harness problem)."""
    srv.expected_exit = True
    if srv.proc.poll() is None:
        srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait()


def retry_exec(fn, attempts=20):
    """Run fn(); retry when the binary cannot be executed for a moment because
    it is being rebuilt under us (ETXTBSY, or missing)."""
    for k in range(attempts):
        try:
            return fn()
        except OSError as e:
            if k + 1 < attempts and e.errno in (errno.ETXTBSY, errno.ENOENT):
                time.sleep(3)
                continue
            raise


# ------------------------------------------------------------ the trial


class TrialResult:
    def __init__(self):
        self.trials = 0
        self.last_acked = 0      # trials ending with the last acknowledged value
        self.in_flight = 0       # trials ending with the value in flight
        self.kills_in_write = 0  # kills with a write sent and not yet answered
        self.writes = 0          # acknowledged writes
        self.errors = 0          # writes answered with an error
        self.lost = 0            # acknowledged writes lost (read back older than acknowledged)
        self.unopened = 0        # times the state did not open
        self.index_gone = 0      # times the defined (acknowledged) index itself was missing
        self.violations = []     # descriptions

    def summary(self):
        return (f"{self.trials} trials, {self.writes} acknowledged writes, {self.errors} refused; ended with the last "
                f"acknowledged value: {self.last_acked}, with the value in flight: {self.in_flight} "
                f"(kills inside a write: {self.kills_in_write}); violations: {len(self.violations)}, acknowledged "
                f"writes lost: {self.lost}, index missing: {self.index_gone}, state did not open: {self.unopened}")


class Kill9Trials:
    """Kill -9 durability trials on one state directory.

    cmd: server command prefix (None: the server under test).
    after_kill: called after each SIGKILL and before the restart (a power cut).
    max_delay: the kill lands uniformly in [0, max_delay] seconds after a write
    was sent; writes go on meanwhile (back to back, or in some trials with
    short idle gaps, so kills hit between writes too)."""

    def __init__(self, stack, state, cmd=None, seed=None, max_delay=0.015, after_kill=None, log=print):
        self.stack = stack
        self.state = state
        self.cmd = cmd
        self.seed = int(seed) if seed is not None else random.randrange(1 << 32)
        self.rng = random.Random(self.seed)
        self.max_delay = max_delay
        self.after_kill = after_kill
        self.log = log
        self.acked = None        # last acknowledged value (None: index not set up yet)
        self.in_flight = None
        self.result = TrialResult()

    def _start(self):
        return retry_exec(lambda: start_server(self.stack, self.state, self.cmd))

    def setup(self):
        """Start the server, define the index (once per state directory) and
        write a first value. Returns (server, data port), still running."""
        srv, port = self._start()
        with connect(port) as s:
            rc = define_index(s)
            if rc != TPM_RC_SUCCESS:
                raise AssertionError(f"NV_DefineSpace failed: rc {rc:#x}")
            rc, value = read_counter(s)
            start = value if rc == TPM_RC_SUCCESS and value is not None else 0
            rc = write_counter(s, start)
            if rc != TPM_RC_SUCCESS:
                raise AssertionError(f"first NV_Write failed: rc {rc:#x}")
        self.acked = start
        return srv, port

    def _redefine(self, port):
        """After a lost index (reporting runs only): define it again and write
        the next value, so the following trials measure something."""
        with connect(port) as s:
            define_index(s)
            if write_counter(s, self.acked + 1) == TPM_RC_SUCCESS:
                self.acked += 1

    def open_and_read(self):
        """Start the server on the state and read the index. Returns
        (server, port, rc, value) or raises if the state does not open."""
        started = len(h._servers)
        try:
            srv, port = self._start()
        except Exception as e:  # noqa: BLE001 - any failure to start is the finding
            # Reported here as the finding, not again as a server problem by harness.main.
            for failed in h._servers[started:]:
                failed.expected_exit = True
            raise AssertionError(f"the state did not open: the server did not start: {e}") from e
        try:
            with connect(port) as s:
                rc, value = read_counter(s)
        except (OSError, EOFError) as e:
            raise AssertionError(f"the state did not open: the server did not answer NV_Read: {e}") from e
        return srv, port, rc, value

    def judge(self, rc, value, where):
        """Compare a read-back with what was acknowledged / in flight. Returns
        (ok, description) and counts the outcome."""
        self.result.trials += 1
        allowed = {self.acked} | ({self.in_flight} if self.in_flight is not None else set())
        if rc != TPM_RC_SUCCESS:
            gone = " (the index is gone)" if rc == TPM_RC_HANDLE else ""
            if gone:
                self.result.index_gone += 1
            what = (f"{where}: NV_Read failed with rc {rc:#x}{gone} (last acknowledged {self.acked}, "
                    f"in flight {self.in_flight})")
            self.result.violations.append(what)
            return False, what
        if value == self.acked:
            self.result.last_acked += 1
        elif value is not None and value == self.in_flight:
            self.result.in_flight += 1
        if value not in allowed:
            kind = "older" if value is not None and value < self.acked else "garbage"
            if kind == "older":
                self.result.lost += self.acked - value
            what = (f"{where}: the index holds {value} ({kind}); last acknowledged {self.acked}, "
                    f"in flight {self.in_flight}")
            self.result.violations.append(what)
            return False, what
        return True, f"{where}: the index holds {value} (last acknowledged {self.acked}, in flight {self.in_flight})"

    def write_then_kill(self, srv, port, delay=None):
        """Write the counter from self.acked+1 on; SIGKILL the server `delay`
        seconds (random in [0, max_delay] by default) after the first write
        was sent. Updates acked / in_flight."""
        delay = self.rng.uniform(0, self.max_delay) if delay is None else delay
        gaps = self.rng.random() < 0.3   # some trials idle between writes
        s = connect(port)
        try:
            w = Writer(s, self.acked)
            w.send_next()
            deadline = time.monotonic() + delay
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if w.poll(left) and not w.closed:
                    if gaps:
                        pause = self.rng.uniform(0, 0.003)
                        if pause >= deadline - time.monotonic():
                            time.sleep(max(0, deadline - time.monotonic()))
                            break
                        time.sleep(pause)
                    w.send_next()
            kill9(srv)
            # A complete response already in the socket buffer is an acknowledgement.
            while w.in_flight is not None and w.poll(0):
                pass
        finally:
            s.close()
        self.acked = w.acked
        self.in_flight = w.in_flight
        self.result.writes += w.writes
        self.result.errors += len(w.failed)
        if self.in_flight is not None:
            self.result.kills_in_write += 1
        return w

    def run(self, trials, check=None):
        """`trials` kill -9 trials; `check(ok, what)` records each outcome
        (default: collect violations only). The last server is left stopped."""
        srv, port = self.setup()
        for t in range(trials):
            self.write_then_kill(srv, port)
            if self.after_kill:
                self.after_kill()
            try:
                srv, port, rc, value = self.open_and_read()
            except AssertionError as e:
                self.result.trials += 1
                self.result.unopened += 1
                self.result.violations.append(f"trial {t + 1}: {e}")
                if check:
                    check(False, f"trial {t + 1}: {e}")
                self.log(f"# VIOLATION trial {t + 1}: {e}; no further trials on this state")
                return self.result
            ok, what = self.judge(rc, value, f"trial {t + 1}")
            if check:
                check(ok, what)
            elif not ok:
                self.log(f"# VIOLATION {what}")
            # carry on from what the state holds now
            if value is not None:
                self.acked = value
            self.in_flight = None
            if not ok and value is None and not check:
                self._redefine(port)
        srv.stop()
        return self.result

