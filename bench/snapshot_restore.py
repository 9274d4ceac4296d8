#!/usr/bin/env python3
"""Time added to a save and to a restore by snapshot verification, per GiB
of guest RAM (issue 5). Three servers side by side on the same state, each
driven over its control channel as QEMU drives it (GET_STATEBLOB permanent +
volatile = save; STOP, SET_STATEBLOB permanent + volatile, INIT = restore):
Debian's swtpm, our bridge without verification, and our bridge with
--vm-memory on a filled shared memory file and records signed by the host
AuthKey through vtpm-hostd (Debian swtpm standing in for the host TPM).
Rounds interleave the
servers; medians are reported.
  snapshot_restore.py BRIDGE HOSTD-SOCKET STATEDIR [MiB ...]"""
import mmap
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

UUID = "5d3c2b1a-0f9e-4d8c-8b7a-6e5f4d3c2b1a"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ctrl:
    def __init__(self, path):
        for _ in range(200):
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                return
            except OSError:
                self.s.close()
                time.sleep(0.02)
        raise RuntimeError("control channel did not come up")

    def recv(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise EOFError
            b += c
        return b

    def cmd(self, code, body=b"", n=4):
        self.s.sendall(struct.pack(">I", code) + body)
        return self.recv(n)

    def result(self, code, body=b""):
        rc = struct.unpack(">I", self.cmd(code, body))[0]
        if rc:
            raise RuntimeError(f"control command {code:#x} failed: {rc:#x}")

    def get_blob(self, t):
        h = self.cmd(0x0c, struct.pack(">III", 1, t, 0), 16)
        rc, _, _, n = struct.unpack(">IIII", h)
        if rc and not rc & 0x800:
            raise RuntimeError(f"GET_STATEBLOB {t}: {rc:#x}")
        return self.recv(n)

    def set_blob(self, t, b):
        self.result(0x0d, struct.pack(">III", 0, t, len(b)) + b)


def start(cmd, state, extra, log):
    # A unix control socket: its peer (this process, standing in for QEMU and
    # mapping the RAM file shared) is how the bridge checks path= is QEMU's RAM.
    port = free_port()
    ctrl = state + ".ctrl"
    p = subprocess.Popen([cmd, "socket", "--tpm2", "--tpmstate", f"dir={state}", "--server", f"type=tcp,port={port}",
                          "--ctrl", f"type=unixio,path={ctrl}", "--flags", "not-need-init,startup-clear",
                          "--log", f"file={log},level=20"] + extra,
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return p, Ctrl(ctrl)


def one_round(c):
    t0 = time.perf_counter()
    perm = c.get_blob(1)
    vol = c.get_blob(2)
    t1 = time.perf_counter()
    c.result(0x0e)
    t2 = time.perf_counter()
    c.set_blob(1, perm)
    c.set_blob(2, vol)
    c.result(0x02, struct.pack(">I", 1))
    t3 = time.perf_counter()
    return (t1 - t0) * 1e3, (t3 - t2) * 1e3


def main():
    bridge, hostd_sock, template = sys.argv[1:4]
    sizes = [int(x) for x in sys.argv[4:]] or [256, 1024, 4096]
    work = tempfile.mkdtemp(prefix="vtpm-snapbench-")
    print(f"{'guest RAM':>9} {'server':<22} {'save ms':>9} {'restore ms':>11} {'added save':>11} "
          f"{'added restore':>14} {'ms/GiB save':>12} {'ms/GiB restore':>15}")
    for mib in sizes:
        mem = f"/dev/shm/vtpm-snapbench-{os.getpid()}.ram"
        block = os.urandom(1 << 20)
        with open(mem, "wb") as f:
            for _ in range(mib):
                f.write(block)
        ram_fd = os.open(mem, os.O_RDWR)
        ram = mmap.mmap(ram_fd, mib << 20, mmap.MAP_SHARED)  # as QEMU maps its RAM
        servers = {
            "Debian swtpm": ("/usr/bin/swtpm", []),
            "ours, no verification": (bridge, []),
            "ours, verified": (bridge, ["--vm-memory", f"path={mem}", "--vm-uuid", UUID,
                                        "--vtpm-host", f"socket={hostd_sock}"]),
        }
        running = {}
        for name, (cmd, extra) in servers.items():
            state = os.path.join(work, f"{mib}-{len(running)}")
            subprocess.run(["cp", "-r", template, state], check=True)
            running[name] = start(cmd, state, extra, os.path.join(work, f"{mib}-{len(running)}.log"))
        times = {n: ([], []) for n in servers}
        for r in range(5):
            order = list(running) if r % 2 == 0 else list(reversed(running))
            for name in order:
                s, x = one_round(running[name][1])
                times[name][0].append(s)
                times[name][1].append(x)
        base = (statistics.median(times["Debian swtpm"][0]), statistics.median(times["Debian swtpm"][1]))
        for name in servers:
            s, x = statistics.median(times[name][0]), statistics.median(times[name][1])
            gib = mib / 1024
            print(f"{mib:>5} MiB {name:<22} {s:9.1f} {x:11.1f} {s - base[0]:11.1f} {x - base[1]:14.1f} "
                  f"{(s - base[0]) / gib:12.0f} {(x - base[1]) / gib:15.0f}", flush=True)
        for p, c in running.values():
            c.s.close()
            p.terminate()
            p.wait()
        ram.close()
        os.close(ram_fd)
        os.unlink(mem)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
