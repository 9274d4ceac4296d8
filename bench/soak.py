#!/usr/bin/env python3
"""Many vTPMs on one host: N of our bridges and N of Debian's swtpm side by
side, each serving a slow trickle of TPM commands for a while, as the
vTPMs of running VMs do. Reports, per server kind, the server CPU time per
command (user + system of every thread, /proc/PID/task/*/schedstat, summed
over all instances; split into user space and kernel by utime/stime, in
clock ticks, so only long runs resolve the split), the client-side round
trip, and the memory a host pays per instance: RSS, and PSS (file pages
shared between instances of the same program counted once across them),
from /proc/PID/smaps_rollup.

  bench/soak.py [--instances N] [--seconds S] [--rate R] [--ours PATH] [--theirs PATH]

N defaults to 20, S to 30, R (commands per second per instance) to 20;
`--instances 100 --seconds 180` is the issue's setting. The client visits
the instances round robin, ours and swtpm alternating, and sends
GetRandom(32), PCR_Extend and PCR_Read in turn; every response code is
checked. Both kinds start from the same state (a copy of one made by
swtpm). No process is pinned."""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness as h  # noqa: E402


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rate", type=float, default=20, help="commands per second per instance")
    ap.add_argument("--ours", default=h.built_bridge())
    ap.add_argument("--theirs", default="/usr/bin/swtpm")
    return ap.parse_args()


COMMANDS = [h.tpm2_getrandom(32), h.tpm2_pcr_extend(16, bytes(range(32))), h.tpm2_pcr_read(16)]


class Instance:
    def __init__(self, kind, exe, work, n, permall):
        self.kind = kind
        self.dir = os.path.join(work, f"{kind}-{n}")
        os.mkdir(self.dir)
        if permall:
            shutil.copy(permall, self.dir)
        self.data = os.path.join(self.dir, "data.sock")
        ctrl = os.path.join(self.dir, "ctrl.sock")
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(
            [exe, "socket", "--tpm2", "--tpmstate", f"dir={self.dir}", "--server", f"type=unixio,path={self.data}",
             "--ctrl", f"type=unixio,path={ctrl}", "--flags", "not-need-init,startup-clear"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.sock = None
        self.commands = 0
        self.rtt = []

    def connect(self, deadline):
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {open(os.path.join(self.dir, 'log')).read()[-500:]}")
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.data)
                self.sock = s
                return
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.kind} at {self.data} did not answer")
                time.sleep(0.005)

    def transact(self, cmd):
        t0 = time.perf_counter()
        rsp = h.transact(self.sock, cmd)
        self.rtt.append(time.perf_counter() - t0)
        rc = h.tpm_rc(rsp)
        if rc != 0:
            raise RuntimeError(f"{self.kind}: TPM command {cmd[6:10].hex()} answered {rc:#x}")
        self.commands += 1

    def cpu_ns(self):
        total = 0
        task = f"/proc/{self.proc.pid}/task"
        for t in os.listdir(task):
            with open(f"{task}/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        return total

    def user_system_ticks(self):
        """utime and stime of the whole process (fields 14 and 15 of
        /proc/PID/stat, in clock ticks): which side of the system-call
        boundary the CPU time is spent on."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]), int(fields[12])

    def memory_kib(self):
        out = {}
        with open(f"/proc/{self.proc.pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in ("Rss:", "Pss:"):
                    out[parts[0][:-1]] = int(parts[1])
        return out

    def stop(self):
        if self.sock:
            self.sock.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def make_permall(theirs, work):
    """A state made by Debian's swtpm: started on an empty directory with
    startup-clear, asked for one GetRandom, stopped."""
    inst = Instance("init", theirs, work, 0, None)
    inst.connect(time.monotonic() + 10)
    inst.transact(h.tpm2_getrandom(8))
    inst.stop()
    path = os.path.join(work, "tpm2-00.permall")
    shutil.copy(os.path.join(inst.dir, "tpm2-00.permall"), path)
    return path


def run(args, work):
    permall = make_permall(args.theirs, work)
    pairs = []
    for n in range(args.instances):
        pairs.append((Instance("ours", args.ours, work, n, permall), Instance("swtpm", args.theirs, work, n, permall)))
    everyone = [i for p in pairs for i in p]
    try:
        deadline = time.monotonic() + 30
        for inst in everyone:
            inst.connect(deadline)
        # One command each before the clock starts (first-use work is not the soak's).
        for inst in everyone:
            inst.transact(h.tpm2_getrandom(8))
            inst.commands, inst.rtt = 0, []
        cpu0 = {id(i): i.cpu_ns() for i in everyone}
        ticks0 = {id(i): i.user_system_ticks() for i in everyone}
        period = 1.0 / args.rate
        start = time.monotonic()
        rounds = 0
        while time.monotonic() - start < args.seconds:
            round_start = time.monotonic()
            cmd = COMMANDS[rounds % len(COMMANDS)]
            for k, (a, b) in enumerate(pairs):
                first, second = (a, b) if (rounds + k) % 2 == 0 else (b, a)
                first.transact(cmd)
                second.transact(cmd)
            rounds += 1
            idle = period - (time.monotonic() - round_start)
            if idle > 0:
                time.sleep(idle)
        elapsed = time.monotonic() - start
        cpu1 = {id(i): i.cpu_ns() for i in everyone}
        ticks1 = {id(i): i.user_system_ticks() for i in everyone}
        mem = {id(i): i.memory_kib() for i in everyone}
    finally:
        for inst in everyone:
            inst.stop()

    def summary(kind):
        insts = [i for i in everyone if i.kind == kind]
        cmds = sum(i.commands for i in insts)
        cpu = sum(cpu1[id(i)] - cpu0[id(i)] for i in insts)
        rtt = [t for i in insts for t in i.rtt]
        user = sum(ticks1[id(i)][0] - ticks0[id(i)][0] for i in insts)
        system = sum(ticks1[id(i)][1] - ticks0[id(i)][1] for i in insts)
        tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
        return {
            "user_us": user * tick_us / cmds,
            "system_us": system * tick_us / cmds,
            "commands": cmds,
            "cpu_us": cpu / 1000 / cmds,
            "rtt_med": statistics.median(rtt) * 1e6,
            "rtt_p99": statistics.quantiles(rtt, n=100)[98] * 1e6,
            "rss": statistics.mean(mem[id(i)]["Rss"] for i in insts),
            "pss": statistics.mean(mem[id(i)]["Pss"] for i in insts),
        }

    o, t = summary("ours"), summary("swtpm")
    achieved = o["commands"] / elapsed / args.instances
    print(f"{args.instances} instances of each, {elapsed:.0f} s, {achieved:.1f} commands/s per instance "
          f"({o['commands']} + {t['commands']} commands)")
    print(f"{'':34} {'ours':>10} {'swtpm':>10} {'ratio':>7}")
    for key, label in (("cpu_us", "server CPU per command (us)"), ("user_us", "  of it in user space (us)"),
                       ("system_us", "  of it in the kernel (us)"), ("rtt_med", "round trip, median (us)"),
                       ("rtt_p99", "round trip, p99 (us)"), ("rss", "RSS per instance (KiB)"),
                       ("pss", "PSS per instance (KiB)")):
        # A short run may see no clock tick on one side of the split.
        ratio = f"{o[key] / t[key]:7.2f}" if t[key] else f"{'-':>7}"
        print(f"{label:34} {o[key]:10.1f} {t[key]:10.1f} {ratio}")
    print(f"ours = {args.ours}, swtpm = {args.theirs}")


def main():
    args = parse()
    for exe in (args.ours, args.theirs):
        if not os.access(exe, os.X_OK):
            sys.exit(f"soak.py: {exe} is not an executable")
    work = tempfile.mkdtemp(prefix="vtpm-soak-")
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
