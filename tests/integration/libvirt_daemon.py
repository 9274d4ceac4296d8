"""A private libvirt 9.0 daemon for tests, started by hand (no systemd here).

Each daemon runs in its own mount namespace (`unshare -m`) with private
directories bind-mounted over libvirt's, swtpm's and our system paths, its own
host UUID and socket, and a PATH whose first entry is a "tool dir" holding the
`swtpm`, `swtpm_setup` and `swtpm_ioctl` libvirt should run. The qemu.conf
settings are what this machine needs (no cgroups, no namespaces, no security
driver, root QEMU); swtpm_setup and swtpm still run as user tss, as in
production. Everything is stopped at the end.
"""
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import harness as h

# Paths libvirt, swtpm_setup/swtpm-localca and vtpm-setup write to.
PRIVATE = {
    "etc": "/etc/libvirt",
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "log": "/var/log/libvirt",
    "cache": "/var/cache/libvirt",
    "swtpmlog": "/var/log/swtpm",
    "localca": "/var/lib/swtpm-localca",
    "libvtpm": "/var/lib/libvtpm",
    "libvtpmconf": "/etc/libvtpm",
}

QEMU_CONF = """user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
remember_owner = 0
"""


def tool_dir(work, name, swtpm, swtpm_setup, swtpm_ioctl="/usr/bin/swtpm_ioctl"):
    """A directory with the three programs libvirt looks up on PATH."""
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    for n, target in (("swtpm", swtpm), ("swtpm_setup", swtpm_setup), ("swtpm_ioctl", swtpm_ioctl)):
        p = os.path.join(d, n)
        if os.path.lexists(p):
            os.unlink(p)
        os.symlink(os.path.abspath(target), p)
    return d


class LibvirtDaemon:
    def __init__(self, stack, work, name, tools, qemu_conf="", bridge_conf=None):
        """qemu_conf: lines added to qemu.conf; bridge_conf: the text of
        /etc/libvtpm/bridge.conf as the daemon's bridges see it."""
        self.root = os.path.join(work, f"libvirt-{name}")
        self.name = name
        for sub in PRIVATE:
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        # Nothing is created on the host: a mount point that does not exist
        # there is made inside the daemon's mount namespace, in an overlay
        # (upper layer on a private tmpfs) over its parent directory.
        overlay_parents = sorted({os.path.dirname(t) for t in PRIVATE.values() if not os.path.isdir(t)})
        etc = os.path.join(self.root, "etc")
        shutil.rmtree(etc)
        shutil.copytree("/etc/libvirt", etc, symlinks=True)
        self.sock = os.path.join(self.root, "run", "libvirt-sock")
        with open(os.path.join(etc, "libvirtd.conf"), "w") as f:
            f.write(f'host_uuid = "{uuid.uuid4()}"\n'
                    'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
                    'unix_sock_rw_perms = "0770"\n'
                    'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n')
        with open(os.path.join(etc, "qemu.conf"), "w") as f:
            f.write(QEMU_CONF + qemu_conf)
        if bridge_conf is not None:
            with open(os.path.join(self.root, "libvtpmconf", "bridge.conf"), "w") as f:
                f.write(bridge_conf)
        # swtpm_setup / vtpm-setup run as tss and keep their CA here.
        for sub in ("localca", "libvtpm"):
            os.chown(os.path.join(self.root, sub), _tss_uid(), 0)
        ovl = os.path.join(self.root, "ovl")
        os.makedirs(ovl, exist_ok=True)
        lines = [f"mount -t tmpfs -o mode=0700 vtpm-test-ovl {ovl}"] if overlay_parents else []
        for i, parent in enumerate(overlay_parents):
            lines += [f"mkdir {ovl}/u{i} {ovl}/w{i}",
                      f"mount -t overlay vtpm-test-ovl -o lowerdir={parent},upperdir={ovl}/u{i},workdir={ovl}/w{i} "
                      f"{parent}"]
        for k, v in PRIVATE.items():
            if not os.path.isdir(v):
                lines.append(f"mkdir -p {v}")
            lines.append(f"mount --bind {os.path.join(self.root, k)} {v}")
        mounts = "\n".join(lines)
        script = f"set -e\n{mounts}\nexec /usr/sbin/libvirtd -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid\n"
        env = dict(os.environ, PATH=f"{tools}:/usr/sbin:/usr/bin:/sbin:/bin")
        self.log = open(os.path.join(self.root, "daemon.out"), "w")
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        h.register_cleanup("pgid", self.proc.pid)  # it escapes meson's process-group kill
        self.domains = {}  # name -> uuid, destroyed at the end
        stack.callback(self.stop)
        h.wait_for(lambda: self.proc.poll() is not None or self.virsh("version", check_rc=False).returncode == 0,
                   30, f"libvirtd {name}", interval=0.1)
        if self.proc.poll() is not None:
            raise RuntimeError(f"libvirtd {name} exited: {self.daemon_log()}")

    @property
    def uri(self):
        return f"qemu+unix:///system?socket={self.sock}"

    def virsh(self, *args, check_rc=True, timeout=120):
        return h.run(["virsh", "-q", "-c", self.uri] + list(args), check_rc=check_rc, timeout=timeout)

    def path(self, system_path):
        """Host path of a path as the daemon sees it."""
        for k, v in PRIVATE.items():
            if system_path == v or system_path.startswith(v + "/"):
                return os.path.join(self.root, k) + system_path[len(v):]
        return system_path

    def swtpm_state(self, dom_uuid):
        return self.path(f"/var/lib/libvirt/swtpm/{dom_uuid}/tpm2")

    def daemon_log(self):
        out = []
        for p in (os.path.join(self.root, "daemon.out"), os.path.join(self.root, "log", "libvirtd.log")):
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out.append(f.read()[-3000:])
        return "\n".join(out)

    def stop(self):
        if self.proc.poll() is None:
            for d in list(self.domains):
                self.virsh("destroy", d, check_rc=False, timeout=30)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        kill_matching([self.root] + list(self.domains.values()))


def _tss_uid():
    import pwd
    return pwd.getpwnam("tss").pw_uid


def kill_matching(needles):
    """Kill leftover QEMU/swtpm processes whose command line names one of `needles`."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        if ("qemu-system" in cmd or "swtpm" in cmd or "vtpm-bridge" in cmd) and any(n in cmd for n in needles):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


def domain_xml(name, dom_uuid, serial, encryption_secret=None, persistent_state=None, banks=None,
               shared_memory=False):
    kernel, initrd = h.guest_files()
    attrs = f" persistent_state='{persistent_state}'" if persistent_state else ""
    inner = ""
    if encryption_secret:
        inner += f"<encryption secret='{encryption_secret}'/>"
    if banks:
        inner += "<active_pcr_banks>" + "".join(f"<{b}/>" for b in banks) + "</active_pcr_banks>"
    memory_backing = ("\n  <memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>"
                      if shared_memory else "")
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <uuid>{dom_uuid}</uuid>
  <memory unit='MiB'>256</memory>{memory_backing}
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet panic=-1</cmdline>
  </os>
  <features><acpi/></features>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='{serial}' append='on'/><target port='0'/></serial>
    <tpm model='tpm-crb'><backend type='emulator' version='2.0'{attrs}>{inner}</backend></tpm>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def define_secret(daemon, work, value):
    """A libvirt secret of usage type vtpm holding `value`; returns its UUID."""
    sec = str(uuid.uuid4())
    xml = os.path.join(work, f"secret-{sec}.xml")
    with open(xml, "w") as f:
        f.write(f"<secret ephemeral='no' private='yes'><uuid>{sec}</uuid>"
                f"<usage type='vtpm'><name>vtpm-{sec}</name></usage></secret>")
    daemon.virsh("secret-define", xml)
    set_secret(daemon, work, sec, value)
    return sec


def set_secret(daemon, work, sec, value):
    path = os.path.join(work, f"secret-{sec}.bin")
    with open(path, "wb") as f:
        f.write(value)
    daemon.virsh("secret-set-value", sec, "--file", path, "--plain")


class Serial:
    """The guest's serial log (a file libvirt's QEMU appends to)."""

    def __init__(self, path):
        self.path = path

    def text(self):
        """Complete lines only: a line the guest is still writing must not
        match a pattern ending in `$`."""
        return h.complete_lines(self.path)

    def mark(self):
        return len(self.text())

    def wait(self, pattern, timeout=120, after=0):
        rx = re.compile(pattern, re.M)
        return h.wait_for(lambda: rx.search(self.text(), after), timeout, f"guest output {pattern!r}", interval=0.1)

    def pcrs(self, tag, after=0):
        return {int(m.group(1)): m.group(2).lower()
                for m in re.finditer(rf"^PCR {tag} (\d+) ([0-9A-Fa-f]*)\s*$", self.text()[after:], re.M)}

    def ek_cert(self, after=0):
        t = self.text()[after:]
        if re.search(r"^EKCERT none", t, re.M):
            return None
        end = re.search(r"^EKCERT end (\d+)", t, re.M)
        if not end:
            return None
        chunks = re.findall(r"^EKCERT (\d+) ([0-9a-f]+)\s*$", t[:end.start()], re.M)
        data = bytes.fromhex("".join(c[1] for c in chunks))
        return data if len(data) == int(end.group(1)) else None

    def last_tick(self):
        t = h.ticks(self.text())
        return max(t) if t else 0

    def tick_after(self, after, timeout=120):
        """The first TICK line after `after`: (tick, GetRandom rc hex, PCR 9)."""
        m = self.wait(r"^TICK (\d+) ([0-9a-f]+) ([0-9A-Fa-f]+)\s*$", timeout, after)
        return int(m.group(1)), m.group(2)[12:20], m.group(3).lower()


def process_exe_for(needle):
    """Executable paths of running processes whose command line contains `needle`."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            if needle in cmd and "--tpmstate" in cmd:
                out.append(os.path.realpath(f"/proc/{pid}/exe"))
        except OSError:
            continue
    return out


def wait_gone(daemon, dom, timeout=60):
    h.wait_for(lambda: "running" not in daemon.virsh("domstate", dom, check_rc=False).stdout, timeout,
               f"{dom} stopped", interval=0.2)


def time_it(fn):
    t = time.time()
    fn()
    return time.time() - t
