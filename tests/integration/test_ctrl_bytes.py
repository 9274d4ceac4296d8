#!/usr/bin/env python3
"""Byte-level control channel: QEMU 7.2's exact boot, save and restore
sequences (SET_DATAFD with a socketpair over SCM_RIGHTS, the version probe
before INIT, ...), then bad input — garbage, truncated and oversized messages,
truncated / bit-flipped / wrongly encrypted state blobs, a corrupt state file.
Each probe runs against Debian's swtpm and the server under test and the
response bytes must be identical; the server must stay up and the state on
disk must not change."""
import os
import socket
import struct
import time

import harness as h

KEY_A = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
KEY_B = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"


# What QEMU's boot sequence gets back (concatenated): SET_DATAFD ok, TPM_RC_FAILURE
# for the version probe before INIT, STOP ok, SET_BUFFERSIZE (4096, 3968), INIT,
# not established, locality, TPM2_Startup ok.
BOOT_ANSWER = "0000000080010000000a0000010100000000000000000000100000000af800001000000000000000000000000f8000000af8000010000000000000000000000000000000000080010000000a00000000"
# GET_INFO flags 3: swtpm 0.7.1's and our JSON (TPM spec 2.0 rev 164, manufacturer IBM).
GET_INFO_3 = "0000000000000096000000967b2254504d53706563696669636174696f6e223a7b2266616d696c79223a22322e30222c226c6576656c223a302c227265766973696f6e223a3136347d2c2254504d41747472696275746573223a7b226d616e756661637475726572223a2269643a3030303031303134222c2276657273696f6e223a2269643a3230313931303233222c226d6f64656c223a22737774706d227d7d00"


def cmd(code, body=b""):
    return struct.pack(">I", code) + body


class Target:
    """One server plus a control connection and a QEMU-style data socketpair."""

    def __init__(self, work, stack, tag, server, extra=(), state=None):
        self.state = state or os.path.join(work, f"state-{tag}")
        os.makedirs(self.state, exist_ok=True)
        self.sock = os.path.join(work, f"{tag}.sock")
        self.srv = h.Server(stack, ["--tpm2", "--tpmstate", f"dir={self.state}",
                                    "--ctrl", f"type=unixio,path={self.sock}"] + list(extra),
                            cmd=server, wait_path=self.sock)
        self.ctrl = h.Ctrl(path=self.sock)
        self.data = None

    def x(self, data, n, fds=None):
        """Send raw bytes, read exactly n response bytes."""
        self.ctrl.send(data, fds)
        return self.ctrl.recv(n)

    def set_datafd(self):
        a, b = socket.socketpair()
        rsp = self.x(cmd(0x10), 4, fds=[b.fileno()])
        b.close()
        self.data = a
        self.data.settimeout(5)
        return rsp

    def tpm(self, command):
        return h.transact(self.data, command)


def pair(work, stack, tag, extra=(), state_init=None):
    ours = Target(work, stack, f"{tag}-ours", None, extra)
    ref = Target(work, stack, f"{tag}-swtpm", [h.SWTPM], extra)
    if state_init:
        state_init(ours.state)
        state_init(ref.state)
    return ours, ref


def same(ours, ref, what, fn, want):
    """Both servers answer the same bytes, and those are `want` (hex; a
    callable for answers with variable parts) — so that both failing alike fails."""
    a, b = fn(ours), fn(ref)
    h.check_eq(a.hex(), b.hex(), what + ": same as swtpm")
    if callable(want):
        h.check(want(a), f"{what}: expected answer ({a.hex()[:80]})")
    else:
        h.check_eq(a.hex(), want, what)
    return a


def qemu_boot(t):
    out = t.set_datafd()
    out += t.tpm(bytes.fromhex("8001 0000000a 00000181"))  # TPM2_ReadClock probe before INIT
    t.caps = t.x(cmd(0x01), 8)                               # GET_CAPABILITY (compared below)
    out += t.x(cmd(0x0e), 4)                                 # STOP
    out += t.x(cmd(0x11, struct.pack(">I", 0)), 16)         # SET_BUFFERSIZE query
    out += t.x(cmd(0x0e), 4)
    out += t.x(cmd(0x11, struct.pack(">I", 3968)), 16)
    out += t.x(cmd(0x02, struct.pack(">I", 0)), 4)          # INIT
    out += t.x(cmd(0x04), 8)                                 # GET_TPMESTABLISHED
    out += t.x(cmd(0x05, bytes([0, 0, 0, 0])), 4)           # SET_LOCALITY (QEMU's 4-byte body)
    out += t.tpm(h.tpm2_startup(0))[:10]
    return out


def drain(t, idle=0.4):
    """Everything the server sends until it is quiet for `idle` seconds."""
    out = b""
    t.ctrl.s.settimeout(idle * h.timeout_scale())
    try:
        while True:
            chunk = t.ctrl.s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    finally:
        t.ctrl.s.settimeout(5)
    return out


def one_write(data):
    """Send `data` in one write; what comes back, and whether the server lives."""
    def probe(t):
        t.ctrl.send(data)
        got = drain(t)
        return got + (b"|alive" if t.srv.alive() else b"|exited")
    return probe


def framing_like_swtpm(ours, ref, logged):
    """swtpm takes one message per read and drops whatever else the read
    brought: a command hidden behind another is never run, and no write
    makes more than one answer per 4104 bytes."""
    same(ours, ref, "unknown code with CMD_SHUTDOWN behind it in one write: one answer, still running",
         one_write(bytes.fromhex("00000016000000030000000000000001")), want=b"\x00\x00\x00\x0a|alive".hex())
    same(ours, ref, "CMD_SHUTDOWN with a byte after it: TPM_BAD_PARAMETER, still running",
         one_write(bytes.fromhex("0000000300")), want=b"\x00\x00\x00\x03|alive".hex())
    same(ours, ref, "CMD_STOP with a byte after it: TPM_BAD_PARAMETER",
         one_write(bytes.fromhex("0000000e00")), want=b"\x00\x00\x00\x03|alive".hex())
    same(ours, ref, "SET_LOCALITY with bytes after its body: taken, the rest dropped",
         one_write(bytes.fromhex("00000005000000000000000e")), want=b"\x00\x00\x00\x00|alive".hex())
    same(ours, ref, "GET_TPMESTABLISHED then CMD_STOP in one write: refused whole (exact size)",
         one_write(bytes.fromhex("000000040000000e")), want=b"\x00\x00\x00\x03|alive".hex())
    # 64 KiB of GET_CAPABILITY followed by 0xff: one answer per read of at
    # most 4104 bytes (how many reads depends on timing, on both sides).
    for t in (ours, ref):
        t.ctrl.send(cmd(0x01) + b"\xff" * (65536 - 4))
        got = drain(t, idle=1.0)
        n_bad = got[8:].count(bytes.fromhex("0000000a"))
        h.check(len(got) >= 8 and got[:4] == b"\0\0\0\0" and len(got) == 8 + 4 * n_bad and 1 <= n_bad <= 40,
                f"{'ours' if t is ours else 'swtpm'}: one 64 KiB write answered {1 + n_bad} times "
                f"(capabilities, then TPM_BAD_ORDINAL per 4104-byte read), not once per 4 bytes")
        h.check(t.srv.alive(), f"{'ours' if t is ours else 'swtpm'}: still running")
    # Refusals are logged (--log level=1), but not without bound (swtpm logs each unknown code).
    ours, ref = logged
    lines = {}
    for t in (ours, ref):
        before = t.srv.output().count("\n")
        for i in range(300):
            t.ctrl.send(cmd(0x1000 + i))
            t.ctrl.recv(4)
        t.ctrl.close()
        t.ctrl = h.Ctrl(path=t.sock)
        t.x(cmd(0x0f), 8)  # a fresh connection works
        time.sleep(0.2)
        lines[t] = t.srv.output().count("\n") - before
    print(f"# log lines for 300 unknown control codes: ours {lines[ours]}, swtpm {lines[ref]}", flush=True)
    if h.is_ours():
        h.check(lines[ours] <= 20, f"300 refused control messages make at most 20 log lines ({lines[ours]})")


def state_before_size(ours, ref):
    """swtpm checks whether the TPM is running before it checks a message's
    size: a malformed message to a stopped TPM gets TPM_BAD_ORDINAL. And a
    GET_STATEBLOB of a type it has no file for gets TPM_RETRY."""
    same(ours, ref, "GET_STATEBLOB of unknown type 9 -> TPM_RETRY header",
         lambda t: t.x(cmd(0x0c, struct.pack(">III", 0, 9, 0)), 16), want="00000800000000000000000000000000")
    same(ours, ref, "GET_TPMESTABLISHED with a byte after it, running -> TPM_BAD_PARAMETER",
         one_write(cmd(0x04) + b"\x00"), want=b"\x00\x00\x00\x03|alive".hex())
    # A length field of 4 and 8 bytes of data: complete for swtpm's reader, wrong in size.
    long_blob = cmd(0x0d, struct.pack(">III", 0, 1, 4)) + b"\x00" * 8
    same(ours, ref, "SET_STATEBLOB with more data than announced, running -> TPM_BAD_ORDINAL",
         one_write(long_blob), want=b"\x00\x00\x00\x0a|alive".hex())
    same(ours, ref, "CMD_STOP", lambda t: t.x(cmd(0x0e), 4), want="00000000")
    for code, name in ((0x04, "GET_TPMESTABLISHED"), (0x06, "HASH_START"), (0x08, "HASH_END"),
                       (0x09, "CANCEL_TPM_CMD"), (0x0a, "STORE_VOLATILE")):
        same(ours, ref, f"{name} with bytes after it, TPM stopped -> TPM_BAD_ORDINAL",
             one_write(cmd(code) + b"\x00\x01"), want=b"\x00\x00\x00\x0a|alive".hex())
    same(ours, ref, "GET_STATEBLOB, TPM stopped -> TPM_BAD_ORDINAL",
         lambda t: t.x(cmd(0x0c, struct.pack(">III", 0, 1, 0)), 4), want="0000000a")
    same(ours, ref, "SET_STATEBLOB with more data than announced, TPM stopped -> TPM_BAD_PARAMETER",
         one_write(long_blob), want=b"\x00\x00\x00\x03|alive".hex())
    same(ours, ref, "INIT again", lambda t: t.x(cmd(0x02, struct.pack(">I", 0)), 4), want="00000000")


def short_command_at_close(work, stack):
    """A data-channel client ends its writes inside a command: swtpm hands
    what came to the TPM, whose command-size error comes back."""
    answers = []
    for tag, cmd_ in (("ours", None), ("swtpm", [h.SWTPM])):
        state = os.path.join(work, f"short-{tag}")
        os.mkdir(state)
        srv, port = h.tcp_server(stack, state, extra=["--tpm2"], cmd=cmd_)
        got = []
        for data in (bytes.fromhex("80010000006400000144") + b"\0" * 10, bytes.fromhex("8001000000")):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.settimeout(3 * h.timeout_scale())
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                try:
                    got.append(s.recv(100).hex())
                except socket.timeout:
                    got.append("timeout")
        answers.append(got)
        srv.stop()
    h.check_eq(answers[0], answers[1], "a command cut short by the client's close: answered as swtpm")
    h.check_eq(answers[0][0], "80010000000a00000142", "TPM_RC_COMMAND_SIZE for a complete header, short body")


def short_command_left_open(work, stack):
    """A data-channel client sends a command short of its size field and
    waits: swtpm runs what one read brought at once (TPM_RC_COMMAND_SIZE);
    ours waits a while for the rest, then answers the same, and the
    connection serves on."""
    answers = []
    for tag, cmd_ in (("ours", None), ("swtpm", [h.SWTPM])):
        state = os.path.join(work, f"short-open-{tag}")
        os.mkdir(state)
        srv, port = h.tcp_server(stack, state, extra=["--tpm2"], cmd=cmd_)
        got = []
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.settimeout(5 * h.timeout_scale())
            s.sendall(bytes.fromhex("80010000006400000144") + b"\0" * 10)
            try:
                got.append(s.recv(100).hex())
            except socket.timeout:
                got.append("timeout")
            # The next command on the same connection: answered as swtpm answers it.
            s.sendall(bytes.fromhex("80010000000c0000017b0008"))
            try:
                got.append(s.recv(100)[:10].hex()[12:])
            except socket.timeout:
                got.append("timeout")
        got.append("alive" if srv.alive() else "exited")
        answers.append(got)
        srv.stop()
    h.check_eq(answers[0], answers[1], "a command short of its size field, the connection left open: as swtpm")
    h.check_eq(answers[0][0], "80010000000a00000142", "TPM_RC_COMMAND_SIZE for a body short of the size field")
    h.check_eq(answers[0][2], "alive", "and the server serves on")


def odd_data_channels(work, stack):
    """CMD_SET_DATAFD with a descriptor no poll can wait on for input (a
    file, /dev/null): swtpm takes it, finds no command there and serves on;
    so must we (the bridge used to terminate). And an in-band SetLocality
    without its locality byte: the short-message error, as swtpm answers,
    before --locality allow-set-locality is looked at."""
    null = os.open("/dev/null", os.O_RDWR)
    path = os.path.join(work, "a-file")
    with open(path, "wb") as f:
        f.write(bytes.fromhex("80010000000c000001440000"))
    reg = os.open(path, os.O_RDWR)
    for fd, what in ((null, "/dev/null"), (reg, "a regular file")):
        ours, ref = pair(work, stack, "odd-" + what.split()[-1].strip("/").replace("/", "-"))

        def probe(t, fd=fd):
            rsp = t.x(cmd(0x10), 4, fds=[fd])
            return rsp + t.x(cmd(0x0f), 8) + (b"|alive" if t.srv.alive() else b"|exited")
        same(ours, ref, f"SET_DATAFD of {what}: taken, the server serves on", probe,
             want=(bytes(12) + b"|alive").hex())
        for t in (ours, ref):
            t.srv.stop()  # swtpm spins on the descriptor it closed
    os.close(null)
    os.close(reg)
    ours, ref = pair(work, stack, "inband", extra=["--flags", "not-need-init"])
    for t in (ours, ref):
        t.set_datafd()
    same(ours, ref, "in-band SetLocality without the locality byte -> TPM_RC_INSUFFICIENT",
         lambda t: t.tpm(bytes.fromhex("80010000000a20001000")), want="80010000000a0000009a")
    same(ours, ref, "in-band SetLocality not allowed -> TPM_RC_FAILURE",
         lambda t: t.tpm(bytes.fromhex("80010000000b2000100002")), want="80010000000a00000101")


def test(work, stack):
    odd_data_channels(work, stack)
    ours, ref = pair(work, stack, "boot")
    rsp = same(ours, ref, "QEMU boot sequence answered byte for byte like swtpm", qemu_boot, want=BOOT_ANSWER)
    h.check_eq(rsp[4:14].hex(), "80010000000a00000101", "version probe before INIT gets TPM2 RC_FAILURE")
    h.check_eq(rsp[14:18].hex(), "00000000", "CMD_STOP ok")
    h.check_eq(ref.caps.hex(), "000000000000ffff", "swtpm 0.7.1's capability mask")
    h.check_eq(ours.caps.hex(), "000000000001ffff" if h.is_ours() else "000000000000ffff", "capability mask")
    # QEMU's CRB device sends min(announced size, its 3968-byte buffer): a
    # guest announcing more sends 3968 bytes and waits for an answer.
    crb = bytearray(3968)
    crb[0:10] = struct.pack(">HII", 0x8001, 4000, 0x17a)
    same(ours, ref, "a command announcing 4000 bytes, of which QEMU's CRB buffer holds 3968 -> "
         "TPM_RC_COMMAND_SIZE at once", lambda t: t.tpm(bytes(crb)), want="80010000000a00000142")
    same(ours, ref, "and the next command is answered", lambda t: t.tpm(h.tpm2_pcr_read(16))[:10],
         want=lambda a: a[6:10] == b"\0\0\0\0")
    same(ours, ref, "SET_DATAFD again while one is active -> TPM_IOERROR", lambda t: t.x(cmd(0x10), 4), want="0000001f")
    same(ours, ref, "GET_STATEBLOB savestate of a TPM 2 -> TPM_RETRY header",
         lambda t: t.x(cmd(0x0c, struct.pack(">III", 1, 3, 0)), 16), want="00000800000000000000000000000000")
    same(ours, ref, "SET_STATEBLOB while running -> TPM_BAD_ORDINAL",
         lambda t: t.x(cmd(0x0d, struct.pack(">III", 0, 1, 0)), 4), want="0000000a")
    same(ours, ref, "unknown command 0x99 -> TPM_BAD_ORDINAL", lambda t: t.x(cmd(0x99), 4), want="0000000a")
    same(ours, ref, "SET_BUFFERSIZE while running -> TPM_BAD_ORDINAL",
         lambda t: t.x(cmd(0x11, struct.pack(">I", 3000)), 4), want="0000000a")
    same(ours, ref, "SET_LOCALITY 5 -> TPM_BAD_LOCALITY", lambda t: t.x(cmd(0x05, bytes([5, 0, 0, 0])), 4), want="0000003d")
    same(ours, ref, "GET_INFO flags 3", lambda t: t.x(cmd(0x12, struct.pack(">QII", 3, 0, 0)), 12 + 150), want=GET_INFO_3)
    same(ours, ref, "GET_INFO offset past the end -> TPM_BAD_PARAMETER",
         lambda t: t.x(cmd(0x12, struct.pack(">QII", 3, 1000, 0)), 4), want="00000003")

    state_before_size(ours, ref)

    def partial(data):
        # The server waits 500 ms for the rest of a message, then drops the
        # connection: it must close (EOF/ECONNRESET), not answer, not hang.
        def probe(t):
            t.ctrl.send(data)
            how, detail = t.ctrl.wait_closed(3 * h.timeout_scale())
            t.ctrl = h.Ctrl(path=t.sock)
            if how == "closed":
                return b"closed" if detail >= 0.3 else b"closed-at-once"
            return how.encode()
        return probe
    same(ours, ref, "INIT with a truncated body: connection dropped after 500 ms, no answer",
         partial(cmd(0x02) + b"\x00\x00"), want="closed".encode().hex())
    same(ours, ref, "SET_STATEBLOB with 10 of 100 bytes: dropped likewise",
         partial(cmd(0x0d, struct.pack(">III", 0, 1, 100)) + b"x" * 10), want="closed".encode().hex())
    same(ours, ref, "garbage shorter than a command code: dropped likewise", partial(b"\xde\xad"), want="closed".encode().hex())
    same(ours, ref, "server still answers on a new connection", lambda t: t.x(cmd(0x0f), 8), want="0000000000000000")
    framing_like_swtpm(ours, ref, pair(work, stack, "log", extra=["--log", "level=1"]))
    short_command_at_close(work, stack)
    short_command_left_open(work, stack)

    # Blobs for the SET_STATEBLOB probes: fetch them from each server.
    blobs = {}
    for t in (ours, ref):
        hdr = t.x(cmd(0x0c, struct.pack(">III", 1, 1, 0)), 16)
        blobs[t] = t.ctrl.recv(h.u32(hdr, 8))
        h.check(h.u32(hdr, 0) == 0 and len(blobs[t]) > 1000, "GET_STATEBLOB permanent")
        t.x(cmd(0x0e), 4)  # STOP (ours records an orderly TPM2_Shutdown first)
        t.digest = h.dir_digest(t.state)

    def set_blob(blob, flags=0):
        return lambda t: t.x(cmd(0x0d, struct.pack(">III", flags, 1, len(blob(t)))) + blob(t), 4)
    same(ours, ref, "SET_STATEBLOB truncated blob -> error",
         set_blob(lambda t: blobs[t][:-100]), want="00000003")
    same(ours, ref, "SET_STATEBLOB bit-flipped libtpms data -> error",
         set_blob(lambda t: blobs[t][:200] + bytes([blobs[t][200] ^ 0x40]) + blobs[t][201:]), want="00000003")
    same(ours, ref, "SET_STATEBLOB with a garbage header -> error",
         set_blob(lambda t: b"\xff" * 64), want="00000003")
    for bit in range(8):
        flipped = lambda t, b=bit: bytes([blobs[t][0] ^ (1 << b)]) + blobs[t][1:]
        a, b = set_blob(flipped)(ours), set_blob(flipped)(ref)
        h.check_eq(a.hex(), b.hex(), f"SET_STATEBLOB of a plain blob, bit {bit} of the version byte flipped: "
                                     "answered as swtpm")
    same(ours, ref, "SET_STATEBLOB whose payload has no data record -> TPM_FAIL",
         set_blob(lambda t: blobs[t][:2] + bytes.fromhex("000a0000") + (18).to_bytes(4, "big") +
                  bytes.fromhex("00090000000261620000")[:8]), want="00000009")
    same(ours, ref, "SET_STATEBLOB of a bare header: an empty blob, taken as swtpm takes it",
         set_blob(lambda t: blobs[t][:2] + bytes.fromhex("000a0000") + (10).to_bytes(4, "big")), want="00000000")
    same(ours, ref, "SET_STATEBLOB claiming state-key encryption without a key -> TPM_KEYNOTFOUND",
         set_blob(lambda t: blobs[t], flags=2), want="0000000d")

    if h.is_ours():
        big = cmd(0x0d, struct.pack(">III", 0, 1, 0x7FFFFFFF))
        ours.ctrl.send(big)
        h.check_eq(ours.ctrl.recv(4).hex(), "00000009", "SET_STATEBLOB announcing 2 GiB -> TPM_FAIL")
        h.check(ours.ctrl.dropped(3 * h.timeout_scale()),
                "and the connection is closed (the payload cannot be skipped)")
        ours.ctrl = h.Ctrl(path=ours.sock)
        log = ours.srv.output()
        h.check("CMD_SET_STATEBLOB" in log, "the log names the rejected command")

    for t in (ours, ref):
        h.check_eq(h.dir_digest(t.state), t.digest, "state files unchanged by the bad blobs")
    same(ours, ref, "INIT after the bad blobs still works", lambda t: t.x(cmd(0x02, struct.pack(">I", 0)), 4), want="00000000")
    same(ours, ref, "and the TPM answers commands", lambda t: t.tpm(h.tpm2_startup(0))[:10], want="80010000000a00000000")
    h.check(ours.srv.alive(), "server stayed up through all bad input")

    # Wrong migration key: blob from a server with key A fed to one with key B.
    kdir = os.path.join(work, "keys")
    os.mkdir(kdir)
    for name, k in (("a", KEY_A), ("b", KEY_B)):
        with open(os.path.join(kdir, name), "w") as f:
            f.write(k)
    mig = lambda n: ["--migration-key", f"file={kdir}/{n},mode=aes-256-cbc"]  # noqa: E731
    srcs = [Target(work, stack, f"mkA-{i}", s, mig("a") + ["--flags", "not-need-init"])
            for i, s in enumerate((None, [h.SWTPM]))]
    dsts = [Target(work, stack, f"mkB-{i}", s, mig("b")) for i, s in enumerate((None, [h.SWTPM]))]
    results = []
    for src, dst in zip(srcs, dsts):
        hdr = src.x(cmd(0x0c, struct.pack(">III", 1, 1, 0)), 16)
        blob = src.ctrl.recv(h.u32(hdr, 8))
        h.check_eq(struct.unpack(">H", blob[4:6])[0] & 0x12, 0x12, "blob is migration-encrypted (256-bit)")
        before = h.dir_digest(dst.state)
        results.append(dst.x(cmd(0x0d, struct.pack(">III", 0, 1, len(blob))) + blob, 4))
        h.check_eq(h.dir_digest(dst.state), before, "destination state unchanged")
        h.check(dst.srv.alive(), "destination stays up")
    h.check_eq(results[0].hex(), results[1].hex(), "wrong migration key: same result as swtpm")
    h.check_eq(results[0].hex(), "00000021", "wrong migration key -> TPM_DECRYPT_ERROR")

    # A corrupt state file: INIT fails cleanly, the file is left alone.
    def corrupt(state):
        with open(os.path.join(state, "tpm2-00.permall"), "wb") as f:
            f.write(b"\x02\x01\x00\x0a\x00\x00\x00\x00\x00\x20" + b"\x00\x01\x00\x00\x00\x10" + b"\x13" * 16)
    bad = [Target(work, stack, f"corrupt-{i}", s) for i, s in enumerate((None, [h.SWTPM]))]
    for t in bad:
        corrupt(t.state)
    codes = []
    for t in bad:
        before = h.dir_digest(t.state)
        codes.append(t.x(cmd(0x02, struct.pack(">I", 0)), 4))
        h.check_eq(h.dir_digest(t.state), before, "corrupt permall left untouched")
        h.check(t.srv.alive(), "server stays up after a failed INIT")
    h.check(h.u32(codes[0]) != 0, "INIT on a corrupt state fails")
    h.check_eq(codes[0].hex(), codes[1].hex(), "same INIT result as swtpm on a corrupt state")
    if h.is_ours():
        h.check("permall" in bad[0].srv.output() or "libtpms" in bad[0].srv.output(),
                "the log says what was wrong")


if __name__ == "__main__":
    h.main(test, min_checks=130, min_checks_swtpm=125)
