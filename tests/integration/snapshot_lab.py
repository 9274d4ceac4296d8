"""The setup the snapshot-verification tests share (test_snapshot.py,
test_verify_before_run.py): a stand-in host TPM (Debian's swtpm) with a
provisioned and enrolled host AK and AuthKey, a vTPM state with a vAIK, and
bridges and QEMUs with guest RAM in a shared memory-backend-file."""
import hashlib
import os
import re

import harness as h

BIN = os.path.dirname(os.path.realpath(h.server_cmd()[0]))
HOST = os.path.join(BIN, "vtpm-host")
ATTEST = os.path.join(BIN, "vtpm-attest")
SETUP = os.environ.get("VTPM_SETUP", os.path.join(BIN, "vtpm-setup"))
UUID = "3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6"
UUID_OTHER = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"
ENV = dict(os.environ, TSS2_LOG="all+none")
PATTERN = b"SNAPPAT-00000042-0123456789abcdef"
EXTENDED9 = hashlib.sha256(b"\0" * 32 + b"\x42" * 32).hexdigest()


class Lab:
    def __init__(self, work, stack, before_daemon=None):
        """before_daemon(lab): checks that need the stand-in host TPM itself,
        run before vtpm-hostd holds it."""
        self.work, self.stack = work, stack
        self.n = 0
        self.hw, self.hw_port, self.tcti, roots = h.stand_in_hw_tpm(stack, work, "hwtpm")
        self.hw_dir = os.path.join(work, "hwtpm")
        self.host = os.path.join(work, "host")
        cadir = os.path.join(work, "privacy-ca")
        self.owner = h.owner_key(work)
        h.run([HOST, "provision", "--tcti", self.tcti, "--dir", self.host, "--owner-key", self.owner], env=ENV)
        h.run([HOST, "enroll", "--tcti", self.tcti, "--dir", self.host, "--ca", cadir, "--ek-roots", roots], env=ENV)
        if before_daemon:
            before_daemon(self)
        self.hostd, self.sock = h.host_daemon(stack, work, self.host, self.tcti, ek_ca=os.path.join(work, "localca"))
        self.state = os.path.join(work, "vm")
        os.mkdir(self.state)
        conf = os.path.join(work, "vtpm-setup.conf")
        with open(conf, "w") as f:
            f.write(f"localca_dir = {os.path.join(work, 'localca')}\n")
        h.run([SETUP, "--tpm2", "--tpm-state", self.state, "--createek", "--create-ek-cert", "--config", conf])
        self.user = os.path.join(work, "tenant.pem")
        h.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
               "-keyout", os.path.join(work, "tenant.key"), "-out", self.user, "-subj", "/CN=tenant", "-days", "3"])
        self.nonce = os.urandom(20).hex()
        # The VM gets a vAIK, so records also carry its quote over the vPCRs.
        h.run([ATTEST, "issue", "--hostd", self.sock, "--state-dir", self.state, "--vm-uuid", UUID,
               "--user-cert", self.user, "--nonce", self.nonce, "--out", os.path.join(work, "identity")], env=ENV)
        self.append = f"vtpm.nonce={self.nonce}"

    def restart_hw(self):
        """Stop the stand-in host TPM and start it again on the same ports
        (the daemon's TCTI string names them), on what is in hw_dir now."""
        self.hw.stop()
        args = ["--tpm2", "--tpmstate", f"dir={self.hw_dir}", "--server", f"type=tcp,port={self.hw_port}",
                "--ctrl", f"type=tcp,port={self.hw_port + 1}", "--flags", "not-need-init,startup-clear"]
        self.hw = h.Server(self.stack, args, cmd=[h.SWTPM], wait_port=self.hw_port + 1)

    def mem(self):
        self.n += 1
        path = f"/dev/shm/vtpm-it-{os.getpid()}-{self.n}.ram"
        h.register_cleanup("file", path)
        return path

    def ledger(self):
        """HOSTDIR: the ledger file and the kept page hashes (vms/)."""
        return self.host

    def ledger_file(self):
        return os.path.join(self.host, "ledger")

    def bridge(self, name, mem_path, policy="refuse", uuid=UUID, required=False, state=None, extra=(), mem_opts=""):
        """extra: more bridge options; mem_opts: more --vm-memory sub-options (",verify=before-run")."""
        ctrl = os.path.join(self.work, f"{name}.sock")
        log = os.path.join(self.work, f"{name}.log")
        # mem_path None: no mapping, QEMU's own digest (a patched QEMU).
        where = "peer," if mem_path == "memfd" else f"path={mem_path}," if mem_path else ""
        args = ["--vm-memory", f"{where}policy={policy}" + (",required" if required else "") + mem_opts,
                "--vm-uuid", uuid, "--vtpm-host", f"socket={self.sock}"] + list(extra) if policy else []
        srv = h.libvirt_style_server(self.stack, state or self.state, ctrl, log, extra=args)
        srv.log_path = log
        return srv, ctrl

    def qemu(self, name, ctrl, mem_path, incoming=None, **kw):
        """kw: more h.Qemu arguments (binary, extra, mem)."""
        if mem_path and mem_path != "memfd":
            self.stack.callback(lambda: os.path.exists(mem_path) and os.unlink(mem_path))
        return h.Qemu(self.stack, self.work, name, ctrl, incoming=incoming, mem_path=mem_path, append=self.append,
                      **kw)


def log_of(srv):
    with open(srv.log_path, errors="replace") as f:
        return f.read()


def ignore_shared(vm, on=True):
    vm.qmp.cmd("migrate-set-capabilities", capabilities=[{"capability": "x-ignore-shared", "state": on}])


def save(vm, image, shared=False):
    if shared:
        ignore_shared(vm)
    vm.qmp.cmd("stop")
    vm.qmp.cmd("migrate", uri=f"exec:cat > {image}")
    vm.qmp.wait_migration()


def last_tick(vm):
    return max(int(t) for t in re.findall(r"^TICK (\d+) ", vm.output(), re.M))


def restore(lab, name, image, mem_path, shared=False, policy="refuse", uuid=UUID, required=False, bridge_mem=None,
            resume=True, extra=(), mem_opts="", qemu=None):
    """A fresh bridge and QEMU take the saved image. Returns (srv, vm, ok).
    bridge_mem: the bridge checks another memory file than QEMU's; resume:
    `cont` once loaded (else the VM stays paused); extra, mem_opts: as
    Lab.bridge; qemu: more Lab.qemu arguments."""
    srv, ctrl = lab.bridge(name, bridge_mem or mem_path, policy=policy, uuid=uuid, required=required, extra=extra,
                           mem_opts=mem_opts)
    vm = lab.qemu(name, ctrl, mem_path, incoming="defer", **(qemu or {}))
    if shared:
        ignore_shared(vm)
    vm.qmp.cmd("migrate-incoming", uri=f"exec:cat {image}")

    def settled():
        if vm.proc.poll() is not None:
            return "exited"
        try:
            st = vm.qmp.cmd("query-migrate").get("status")
            if st == "failed":
                return "failed"
            paused = vm.qmp.cmd("query-status")["status"] == "paused"
        except (OSError, EOFError, RuntimeError, ValueError):
            return "exited" if vm.proc.poll() is not None else None
        return "paused" if paused and st in (None, "completed") else None
    how = h.wait_for(settled, 120, f"{name}: incoming migration to settle", interval=0.1)
    if how != "paused":
        srv.wait(15)
        why = re.findall(r"snapshot verification (?:failed|required).*", log_of(srv))
        print(f"# {name}: incoming migration {how}: {vm.qemu_log().strip()[-200:]} / bridge: {why}", flush=True)
        return srv, vm, False
    if resume:
        vm.qmp.cmd("cont")
    return srv, vm, True


def running_on(vm, what, last=None):
    """The guest's next tick: its TPM answers; with `last` (the last tick
    seen before the save) it must be a restore, not a fresh boot."""
    m = vm.wait_output(r"(?m)^TICK (\d+) ([0-9a-f]+) ([0-9A-Fa-f]+)\s*$", timeout=60, after=len(vm.output()))
    h.check_eq(m.group(2)[12:20], "00000000", f"{what}: the guest's TPM answers")
    if last is not None:
        h.check_resumed(vm.output(), last, what)
    return m.group(3).lower()


def fingerprint(lab, image):
    """The vTPM state dir, the host's ledger dir and the saved image."""
    return {"state": h.tree_digest(lab.state), "ledger": h.tree_digest(lab.ledger()), "image": h.sha256_file(image)}
