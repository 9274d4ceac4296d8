#!/usr/bin/env python3
"""Durability across a simulated power cut. The state directory lives on
powercut-fs (tests/tools/powercut_fs.cpp): an in-memory FUSE filesystem where
a file's content survives a cut only once fsync'ed and a directory entry only
once its directory was fsync'ed. Scenarios, each on its own state directory:

 a. kill -9 trials as in test_kill9.py, with a power cut after each kill: the
    NV index holds the last acknowledged value or the one in flight, and the
    state always opens. Also reports the flushes per NV write.
 b. file fsync failing (EIO): an NV_Write is not acknowledged; once fsync
    works again, kill, cut, restart: an acknowledged value is there.
 c. directory fsync failing: whatever the server acknowledged survives a cut
    (it may refuse the writes, or accept them if it needs no directory sync).
 d. CMD_INIT with the delete-volatile flag: a used tpm2-00.volatilestate must
    not come back after a power cut.
 e. when the server under test is not Debian's swtpm and /usr/bin/swtpm
    exists: a few trials of (a) against swtpm, reported (not checked).

The filesystem binary: $VTPM_POWERCUT_FS, else $VTPM_BUILD_DIR/../tools/powercut-fs;
the test is skipped without it or without /dev/fuse. The mount is always
undone (the filesystem's own watchdog unmounts it even if this test is
SIGKILLed)."""
import os
import shutil
import signal
import struct
import subprocess
import traceback

import harness as h
import nv_client as nv

TRIALS = int(os.environ.get("VTPM_POWERCUT_TRIALS", "20"))
SWTPM_TRIALS = int(os.environ.get("VTPM_POWERCUT_SWTPM_TRIALS", "8"))
VOLATILE = "tpm2-00.volatilestate"
CMD_INIT = 0x02
CMD_STORE_VOLATILE = 0x0A
PTM_INIT_FLAG_DELETE_VOLATILE = 0x1


def powercut_binary():
    path = os.environ.get("VTPM_POWERCUT_FS")
    if not path and os.environ.get("VTPM_BUILD_DIR"):
        path = os.path.join(os.environ["VTPM_BUILD_DIR"], "..", "tools", "powercut-fs")
    if not path or not os.access(path, os.X_OK):
        h.skip(f"the powercut-fs binary is missing ({path or 'neither VTPM_POWERCUT_FS nor VTPM_BUILD_DIR is set'}); "
               "it is built from tests/tools when libfuse3-dev is installed")
    if not os.path.exists("/dev/fuse"):
        h.skip("no /dev/fuse: FUSE is not available here")
    return os.path.realpath(path)


def mounted(path):
    """Is `path` a mount point (also when its FUSE server is gone and stat fails)?"""
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            target = line.split()[1].encode().decode("unicode_escape")
            if target == path:
                return True
    return False


class PowercutFs:
    """powercut-fs mounted on `mnt` for the test's lifetime."""

    def __init__(self, stack, binary, mnt, log):
        os.makedirs(mnt)
        self.mnt = mnt
        self.ctl = os.path.join(mnt, ".powercut")
        self.log = open(log, "w")
        self.proc = subprocess.Popen([binary, mnt], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        stack.callback(self.unmount)
        h.wait_for(lambda: mounted(mnt) or self.proc.poll() is not None, 10, f"powercut-fs on {mnt}")
        if not mounted(mnt):
            with open(log, errors="replace") as f:
                out = f.read().strip()
            h.skip(f"powercut-fs could not mount (exit {self.proc.poll()}): {out[-300:]}")

    def cmd(self, text):
        with open(self.ctl, "w") as f:
            f.write(text + "\n")

    def cut(self):
        self.cmd("cut")

    def stats(self):
        with open(self.ctl) as f:
            return {k: int(v) for k, v in (line.split() for line in f if line.strip())}

    def sync_dir(self, path):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def state_dir(self, name):
        """A fresh directory for a server's state, made durable."""
        d = os.path.join(self.mnt, name)
        os.mkdir(d)
        self.sync_dir(self.mnt)
        return d

    def unmount(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)   # it unmounts and exits
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if mounted(self.mnt):
            tool = shutil.which("fusermount3") or shutil.which("fusermount")
            cmds = ([[tool, "-u", "-z", self.mnt]] if tool else []) + [["umount", "-l", self.mnt]]
            for c in cmds:
                subprocess.run(c, capture_output=True, timeout=20)
                if not mounted(self.mnt):
                    break
        self.log.close()
        if mounted(self.mnt):
            raise RuntimeError(f"{self.mnt} is still mounted")
        with open(self.log.name, errors="replace") as f:
            out = f.read()
        bad = [line for line in out.splitlines() if h.SANITIZER_RX.search(line)]
        if bad or self.proc.returncode != 0:
            raise AssertionError(f"powercut-fs exited with {self.proc.returncode}; log: {out[-3000:]}")


def rc_text(rc):
    return rc if isinstance(rc, str) else f"{rc:#x}"


def try_write(sock, value):
    """NV_Write of `value`: the response code, or 'closed' if the server
    dropped the connection or exited."""
    try:
        return nv.write_counter(sock, value)
    except (OSError, EOFError):
        return "closed"


def judge_restart(trials, where):
    """Start the server on the trial's state and check the read-back."""
    srv, port, rc, value = trials.open_and_read()
    ok, what = trials.judge(rc, value, where)
    h.check(ok, what)
    trials.acked, trials.in_flight = value, None
    return srv, port


# ------------------------------------------------------------ scenarios

def flush_counts(fs, port, trials, n=20):
    """Flushes per acknowledged NV write on a quiet server: (text, rcs)."""
    rcs = []
    with nv.connect(port) as s:
        fs.cmd("reset-stats")
        for _ in range(n):
            rcs.append(nv.write_counter(s, trials.acked + 1))
            if rcs[-1] == 0:
                trials.acked += 1
        st = fs.stats()
    text = (f"{(st['fsync'] + st['fdatasync']) / n:.2f} file syncs, {st['fsyncdir'] / n:.2f} directory syncs, "
            f"{st['renames'] / n:.2f} renames, {st['creates'] / n:.2f} creates per NV write")
    return text, rcs


def scenario_a(work, stack, fs):
    trials = nv.Kill9Trials(stack, fs.state_dir("state-a"), after_kill=fs.cut)
    print(f"# (a) seed {trials.seed} (VTPM_KILL9_SEED repeats the kill timing)")
    srv, port = trials.setup()
    flushes, rcs = flush_counts(fs, port, trials)
    h.check_eq(rcs, [0] * len(rcs), f"(a) {len(rcs)} NV_Writes on a quiet server")
    print(f"# (a) {flushes}")
    for t in range(TRIALS):
        trials.write_then_kill(srv, port)
        fs.cut()
        srv, port = judge_restart(trials, f"(a) kill -9 + power cut, trial {t + 1}")
    srv.stop()
    r = trials.result
    h.check(r.writes >= TRIALS, f"(a) the trials acknowledged writes ({r.writes})")
    return f"{r.summary()}; {flushes}"


def scenario_b(work, stack, fs):
    trials = nv.Kill9Trials(stack, fs.state_dir("state-b"), after_kill=fs.cut)
    srv, port = trials.setup()
    before = trials.acked
    with nv.connect(port) as s:
        fs.cmd("fail-fsync on")
        try:
            rc = try_write(s, before + 1)
        finally:
            fs.cmd("fail-fsync off")
        h.check(rc != 0, f"(b) with fsync failing, NV_Write is not acknowledged (answer: {rc_text(rc)})")
        after = try_write(s, before + 2) if rc != "closed" else "closed"
        if after == 0:
            trials.acked = before + 2
        refused = try_write(s, before + 3) if after == 0 else after
        if refused == 0:
            trials.acked = before + 3
    state = "alive" if srv.alive() else f"exited ({srv.proc.returncode})"
    if not srv.alive() and srv.proc.returncode == 0:
        srv.expected_exit = True
    nv.kill9(srv)
    fs.cut()
    srv, port = judge_restart(trials, "(b) after failed fsyncs, kill -9 + power cut")
    srv.stop()
    return (f"write with fsync failing answered {rc_text(rc)}; once fsync worked again the next write answered "
            f"{rc_text(after)}; server {state}; after the cut the index holds {trials.acked}")


def scenario_c(work, stack, fs):
    """Rounds 1-2: directory fsync fails while the server writes; rounds 3-4:
    also while it starts (opening the state may rewrite files). A server that
    refuses to start then is fine; it is started again with working syncs."""
    trials = nv.Kill9Trials(stack, fs.state_dir("state-c"), after_kill=fs.cut)
    srv, port = trials.setup()
    rounds, acked_writes, refused, no_start = 4, 0, 0, 0
    for k in range(rounds):
        before = trials.acked
        fs.cmd("fail-dirsync on")
        try:
            w = trials.write_then_kill(srv, port, delay=trials.rng.uniform(0.003, 0.015))
            fs.cut()
            if k >= 2:
                try:
                    srv, port, rc, value = trials.open_and_read()
                except AssertionError as e:
                    print(f"# (c) round {k + 1}: the server did not start while directory fsync fails: {e}")
                    srv = None
                    no_start += 1
                else:
                    ok, what = trials.judge(rc, value, f"(c) round {k + 1}, started while directory fsync fails")
                    h.check(ok, what)
                    trials.acked, trials.in_flight = value, None
                    # whatever the start changed must survive a cut too
                    nv.kill9(srv)
                    fs.cut()
        finally:
            fs.cmd("fail-dirsync off")
        acked_writes += w.writes
        refused += len(w.failed)
        srv, port = judge_restart(trials, f"(c) directory fsync failing, kill -9 + power cut, round {k + 1} "
                                          f"({w.writes} writes acknowledged from {before + 1} on, {len(w.failed)} refused)")
    srv.stop()
    return (f"{rounds} rounds: {acked_writes} writes acknowledged, {refused} refused, all acknowledged writes survived; "
            f"refused to start while directory fsync fails: {no_start} of {rounds - 2}")


def scenario_d(work, stack, fs):
    state = fs.state_dir("state-d")
    trials = nv.Kill9Trials(stack, state)
    srv, port = trials.setup()
    ctrl = h.Ctrl(port=port + 1)
    rc = h.u32(ctrl.cmd(CMD_STORE_VOLATILE))
    h.check_eq(rc, 0, "(d) CMD_STORE_VOLATILE")
    path = os.path.join(state, VOLATILE)
    h.check(os.path.exists(path), f"(d) {VOLATILE} exists")
    fs.cmd("sync")  # the premise: the volatile state is on disk, whatever the server synced
    rc = h.u32(ctrl.cmd(CMD_INIT, struct.pack(">I", PTM_INIT_FLAG_DELETE_VOLATILE)))
    h.check_eq(rc, 0, "(d) CMD_INIT with PTM_INIT_FLAG_DELETE_VOLATILE")
    h.check(not os.path.exists(path), f"(d) {VOLATILE} is deleted")
    ctrl.close()
    nv.kill9(srv)
    fs.cut()
    back = os.path.exists(path)
    h.check(not back, f"(d) after kill -9 + power cut, the used {VOLATILE} stays deleted "
                      f"(state directory: {sorted(os.listdir(state))})")
    srv, port, rc, value = trials.open_and_read()
    h.check_eq((rc, value), (0, trials.acked), "(d) the state opens and holds the value written")
    srv.stop()
    return f"{VOLATILE} after the cut: {'present' if back else 'absent'}"


def scenario_e(work, stack, fs):
    """Debian's swtpm on the same trials: reported, not checked."""
    trials = nv.Kill9Trials(stack, fs.state_dir("state-swtpm"), cmd=[h.SWTPM], after_kill=fs.cut,
                            log=lambda m: print(m.replace("VIOLATION", "swtpm:")))
    srv, port = trials.setup()
    flushes, _ = flush_counts(fs, port, trials)
    srv.stop()
    r = trials.run(SWTPM_TRIALS)
    return f"swtpm {r.summary()}; {flushes}"


SCENARIOS = [("a", scenario_a), ("b", scenario_b), ("c", scenario_c), ("d", scenario_d)]


def test(work, stack):
    fs = PowercutFs(stack, powercut_binary(), os.path.join(work, "mnt"), os.path.join(work, "powercut-fs.log"))
    h.check(os.path.exists(fs.ctl), f"powercut-fs mounted on {fs.mnt}")
    results, failed = [], []
    for name, fn in SCENARIOS:
        print(f"# ---- scenario ({name})", flush=True)
        try:
            results.append((name, "ok", fn(work, stack, fs)))
        except AssertionError as e:
            traceback.print_exc()
            results.append((name, "FAILED", str(e)))
            failed.append(name)
    swtpm_info = None
    if h.is_ours() and os.path.exists(h.SWTPM):
        print("# ---- scenario (e): Debian's swtpm, for information", flush=True)
        try:
            swtpm_info = scenario_e(work, stack, fs)
        except Exception as e:  # noqa: BLE001 - information only
            swtpm_info = f"swtpm run did not complete: {e}"
    print("# ---- results")
    for name, status, text in results:
        print(f"# ({name}) {status}: {text}")
    if swtpm_info:
        print(f"# (e) information: {swtpm_info}")
    if failed:
        raise AssertionError(f"scenarios failed: {', '.join(failed)}")


if __name__ == "__main__":
    h.main(test, min_checks=TRIALS + 14)
