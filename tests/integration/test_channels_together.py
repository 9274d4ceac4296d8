#!/usr/bin/env python3
"""The data channel and the control channel at the same time, both served
by the bridge's event loop and calling into one TPM: TPM commands streamed
on the data channel while the control channel asks for capabilities, the
established bit and state blobs and stores the volatile state must all be
answered, none lost or run twice (the PCR they extend ends as the chain
computed here), and the state blobs read meanwhile must be whole. Then the
data connection's life: QEMU's SET_DATAFD socketpair, TCP clients
connecting and leaving one after another, a client leaving inside a command
(answered with the TPM's size error, as swtpm does), --terminate when it
leaves, SIGTERM and CMD_SHUTDOWN while a client streams commands or sits
idle. The server must exit 0 each time, promptly. Runs against Debian's
swtpm as well (the behaviour is swtpm's)."""
import hashlib
import os
import signal
import socket
import struct
import threading
import time

import harness as h

CMD_GET_CAPABILITY = 1
CMD_INIT = 2
CMD_SHUTDOWN = 3
CMD_GET_TPMESTABLISHED = 4
CMD_STORE_VOLATILE = 10
CMD_GET_STATEBLOB = 12
CMD_SET_DATAFD = 16
PCR = 16
ROUNDS = 300


def ctrl_stateblob(ctrl, blob_type):
    """GET_STATEBLOB (whole blob in one answer): result, the blob."""
    ctrl.send(struct.pack(">IIII", CMD_GET_STATEBLOB, 0, blob_type, 0))
    res, _flags, total, length = struct.unpack(">IIII", ctrl.recv(16))
    data = ctrl.recv(length) if res == 0 else b""
    return res, total, data


def stream_extends(sock, digests, errors):
    """PCR_Extend of each digest, each followed by a GetRandom, on the data
    channel; the problems found go into `errors`."""
    try:
        for d in digests:
            rsp = h.transact(sock, h.tpm2_pcr_extend(PCR, d))
            if h.tpm_rc(rsp) != 0:
                errors.append(f"PCR_Extend answered {h.tpm_rc(rsp):#x}")
                return
            rsp = h.transact(sock, h.tpm2_getrandom(16))
            if h.tpm_rc(rsp) != 0 or len(rsp) != 10 + 2 + 16:
                errors.append(f"GetRandom answered {rsp.hex()}")
                return
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(f"data channel: {e!r}")


def pcr_value(sock):
    rsp = h.transact(sock, h.tpm2_pcr_read(PCR))
    h.check_eq(h.tpm_rc(rsp), 0, "PCR_Read answered")
    return rsp[-32:]


def concurrent_channels(work, stack):
    state = os.path.join(work, "state-qemu")
    os.makedirs(state)
    path = os.path.join(work, "ctrl.sock")
    srv = h.Server(stack, ["--tpm2", "--tpmstate", f"dir={state}", "--ctrl", f"type=unixio,path={path}"],
                   wait_path=path)
    ctrl = h.Ctrl(path=path)
    ours_end, theirs = socket.socketpair()
    h.check_eq(ctrl.cmd(CMD_SET_DATAFD, fds=[theirs.fileno()]).hex(), "00000000", "SET_DATAFD")
    theirs.close()
    ours_end.settimeout(10 * h.timeout_scale())
    h.check_eq(ctrl.cmd(CMD_INIT, struct.pack(">I", 0)).hex(), "00000000", "CMD_INIT")
    h.check_eq(h.tpm_rc(h.transact(ours_end, h.tpm2_startup())), 0, "TPM2_Startup(CLEAR) on the data channel")

    digests = [hashlib.sha256(b"event %d" % i).digest() for i in range(ROUNDS)]
    errors = []
    t = threading.Thread(target=stream_extends, args=(ours_end, digests, errors))
    t.start()
    answered = 0
    blobs_ok = True
    while t.is_alive():
        caps = ctrl.cmd(CMD_GET_CAPABILITY, rsp_len=8)
        est = ctrl.cmd(CMD_GET_TPMESTABLISHED, rsp_len=8)
        stored = ctrl.cmd(CMD_STORE_VOLATILE)
        res, total, data = ctrl_stateblob(ctrl, 1)
        if int.from_bytes(caps, "big") == 0 or est[:4] != b"\0\0\0\0" or stored != b"\0\0\0\0" or res != 0:
            errors.append(f"control answers {caps.hex()} {est.hex()} {stored.hex()} {res:#x}")
            break
        blobs_ok = blobs_ok and len(data) == total and total > 0
        answered += 1
    t.join()
    h.check_eq(errors, [], f"{ROUNDS} PCR_Extend and GetRandom answered while the control channel ran")
    h.check(answered >= 5, f"the control channel was answered meanwhile ({answered} rounds of 4 messages)")
    h.check(blobs_ok, "every permanent state blob read meanwhile was whole")
    want = bytes(32)
    for d in digests:
        want = hashlib.sha256(want + d).digest()
    h.check_eq(pcr_value(ours_end).hex(), want.hex(), f"PCR {PCR} is the chain of all {ROUNDS} extends, in order")

    # CMD_SHUTDOWN while the data connection is open and idle.
    h.check_eq(ctrl.cmd(CMD_SHUTDOWN).hex(), "00000000", "CMD_SHUTDOWN answered")
    h.check(srv.wait(10 * h.timeout_scale()) == 0, "the server exits 0 after CMD_SHUTDOWN with the data channel open")
    ours_end.settimeout(5)
    h.check_eq(ours_end.recv(16), b"", "the data channel is closed by the exit")


def tcp_clients(work, stack):
    state = os.path.join(work, "state-tcp")
    os.makedirs(state)
    srv, port = h.tcp_server(stack, state)
    ctrl = h.Ctrl(port=port + 1)

    # Clients one after another, with the control channel asked in between.
    ok = 0
    for i in range(40):
        with socket.create_connection(("127.0.0.1", port), timeout=10 * h.timeout_scale()) as s:
            if h.tpm_rc(h.transact(s, h.tpm2_getrandom(8))) == 0:
                ok += 1
        if int.from_bytes(ctrl.cmd(CMD_GET_CAPABILITY, rsp_len=8), "big") == 0:
            break
    h.check_eq(ok, 40, "40 data clients in turn, each answered")

    # A client that ends its writes inside a command: the TPM's size error.
    with socket.create_connection(("127.0.0.1", port), timeout=10 * h.timeout_scale()) as s:
        cmd = struct.pack(">HII", 0x8001, 20, 0x17B) + b"\0\x08"  # claims 20 bytes, 12 come
        s.sendall(cmd)
        s.shutdown(socket.SHUT_WR)
        rsp = s.recv(64)
        h.check(len(rsp) >= 10 and h.tpm_rc(rsp) != 0,
                f"a command cut short by the client's EOF gets an error answer ({rsp.hex()})")
    with socket.create_connection(("127.0.0.1", port), timeout=10 * h.timeout_scale()) as s:
        h.check_eq(h.tpm_rc(h.transact(s, h.tpm2_getrandom(8))), 0, "the next client is served")

    # SIGTERM while a client streams commands.
    s = socket.create_connection(("127.0.0.1", port), timeout=10 * h.timeout_scale())
    errors = []
    stop = threading.Event()

    def stream():
        try:
            while not stop.is_set():
                h.transact(s, h.tpm2_getrandom(32))
        except (OSError, EOFError):
            pass  # the server went away: expected
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    t = threading.Thread(target=stream)
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    srv.sent_term = True
    rc = srv.wait(10 * h.timeout_scale())
    stop.set()
    t.join()
    s.close()
    h.check(rc == 0 or (rc == -signal.SIGTERM and not h.is_ours()),
            f"SIGTERM while a client streams commands: exit {rc} after {time.monotonic() - t0:.2f} s")
    h.check_eq(errors, [], "the streaming client saw only the connection end")


def idle_and_terminate(work, stack):
    # SIGTERM while a data client is connected and idle.
    state = os.path.join(work, "state-idle")
    os.makedirs(state)
    srv, port = h.tcp_server(stack, state)
    s = socket.create_connection(("127.0.0.1", port), timeout=10 * h.timeout_scale())
    h.check_eq(h.tpm_rc(h.transact(s, h.tpm2_getrandom(8))), 0, "a client is served")
    time.sleep(0.2)
    srv.proc.send_signal(signal.SIGTERM)
    srv.sent_term = True
    rc = srv.wait(10 * h.timeout_scale())
    h.check(rc == 0 or (rc == -signal.SIGTERM and not h.is_ours()), f"SIGTERM with an idle data client: exit {rc}")
    s.close()

    # --terminate: the server ends when its data client leaves (unix
    # sockets: nothing probes the data socket before the client comes).
    state = os.path.join(work, "state-term")
    os.makedirs(state)
    data_path, ctrl_path = os.path.join(work, "term-data.sock"), os.path.join(work, "term-ctrl.sock")
    srv = h.Server(stack, ["--tpm2", "--tpmstate", f"dir={state}", "--ctrl", f"type=unixio,path={ctrl_path}",
                           "--server", f"type=unixio,path={data_path}", "--flags", "not-need-init,startup-clear",
                           "--terminate"], wait_path=data_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10 * h.timeout_scale())
        s.connect(data_path)
        h.check_eq(h.tpm_rc(h.transact(s, h.tpm2_getrandom(8))), 0, "a --terminate server is served")
    h.check_eq(srv.wait(10 * h.timeout_scale()), 0, "--terminate: exit 0 once the data client left")


def test(work, stack):
    concurrent_channels(work, stack)
    tcp_clients(work, stack)
    idle_and_terminate(work, stack)


if __name__ == "__main__":
    h.main(test, min_checks=15, min_checks_swtpm=15)
