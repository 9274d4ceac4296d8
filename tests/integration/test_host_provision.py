"""vtpm-host and vtpm-hostd against a stand-in hardware TPM (Debian's swtpm,
manufactured by Debian's swtpm_setup with an EK certificate and sha1+sha256
banks, reached through tpm2-tss's swtpm TCTI).

provision creates the host AK and the AuthKey at their documented handles;
the AuthKey (and every secret sealed to the host TPM) is bound by
PolicyAuthorize to the owner's policy key, so it is usable only in host
states the owner approved (host PCRs 0-9: firmware, boot loader, kernel,
initrd, command line). tpm2-tools computes the same policy digest. Then
what an OS update and an attacker do:
- PCR 8 changes (a new kernel): status says so, vtpm-hostd refuses to start,
  naming `vtpm-host authorize`; authorize with the owner key re-enables it,
  and the state key sealed before the update still opens;
- the owner approves a state before booting it (--pcr-digest): the daemon
  starts in it right away;
- authorize with a public key or another owner's key, an edited approval,
  a replaced owner.pem: refused, named, HOSTDIR left as it was.
And how the daemon serves: a client trickling a request, idle connections
and one that never reads its answers do not hold up anyone else's request
and are dropped; a second daemon on the same HOSTDIR (which would leave the
ledger behind the TPM counter), or on a socket another daemon serves, does
not start."""
import hashlib
import os
import select
import shutil
import socket
import stat
import struct
import subprocess
import threading
import time

import harness as h

BIN = os.path.dirname(os.path.realpath(h.server_cmd()[0]))
HOST = os.path.join(BIN, "vtpm-host")
HOSTD = os.path.join(BIN, "vtpm-hostd")
ENV = dict(os.environ, TSS2_LOG="all+none")
UUID = "4d1c7a2e-3b5f-4e6a-9c8d-1f2e3a4b5c6d"


def pcr_values(port, pcrs):
    out = h.tpm2(port, "pcrread", "sha256:" + ",".join(map(str, pcrs))).stdout
    vals = {}
    for line in out.splitlines():
        line = line.strip()
        if ":" in line and line.split(":")[0].strip().isdigit():
            idx, val = line.split(":", 1)
            vals[int(idx)] = bytes.fromhex(val.strip()[2:])
    return [vals[p] for p in pcrs]


def hostd_start(work, hostdir, tcti, stack=None, name="hostd", malloc_perturb=True):
    """Start the daemon; with no stack, run it expecting a refusal and return that."""
    if stack is None:
        sock = os.path.join(work, name + "-refused.sock")
        p = h.run([HOSTD, "--dir", hostdir, "--tcti", tcti, "--socket", sock], check_rc=False, env=ENV, timeout=60)
        return p
    return h.host_daemon(stack, work, hostdir, tcti, name=name, malloc_perturb=malloc_perturb)


def state_key(sock, create):
    st, fields = h.hostd_call(sock, "StateKey", [bytes.fromhex(UUID.replace("-", "")), bytes([1 if create else 0])])
    return st, fields


HOST_INFO = struct.pack(">IHHH", 6, 1, 1, 0)  # a whole HostInfo request frame


def timed_host_info(sock):
    """(seconds HostInfo took, its status), or (None, the error)."""
    start = time.monotonic()
    try:
        status, _ = h.hostd_call(sock, "HostInfo", [])
    except OSError as e:
        return None, e
    return time.monotonic() - start, status


def trickle(sock, out):
    """Send a 1000-byte request's length prefix a byte at a time, then zero
    bytes, one a second, until the daemon closes the connection (out["dropped"]:
    seconds after the first byte) or 90 s pass."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        start = time.monotonic()
        try:
            for b in b"\x00\x00\x03\xe8" + bytes(996):
                s.sendall(bytes([b]))
                if select.select([s], [], [], 1.0)[0] and s.recv(1) == b"":
                    break
                if time.monotonic() - start > 90:
                    return
        except OSError:
            pass
        out["dropped"] = time.monotonic() - start


def run_bounded(args, timeout):
    """A daemon run that should refuse to start: (exit status, stderr), or
    (None, stderr) when it was still running after `timeout` s (killed)."""
    with subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV) as p:
        try:
            _, err = p.communicate(timeout=timeout)
            return p.returncode, err.decode("latin-1")
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            return None, err.decode("latin-1")


def merkle_root(leaves):
    """RFC 6962 MTH over leaf hashes, nodes SHA-256(0x01 || l || r)
    (lib/merkle/merkle.hpp)."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()


def closed_by_peer(conns, timeout):
    """How many of `conns` the daemon closes within `timeout` seconds (each)."""
    n = 0
    for c in conns:
        c.settimeout(timeout)
        try:
            n += c.recv(1) == b""
        except ConnectionResetError:
            n += 1
        except OSError:
            pass
    return n

def serving(work, stack, hostd, sock, hostdir, tcti, owner):
    """The running daemon (hostd on sock) against stalling clients, a second
    daemon on its HOSTDIR, and one on another HOSTDIR given its socket."""
    scale = h.timeout_scale()
    idle = []
    for _ in range(3):
        c = socket.socket(socket.AF_UNIX)
        c.connect(sock)
        idle.append(c)
    idle_since = time.monotonic()
    trickled = {}
    threading.Thread(target=trickle, args=(sock, trickled), daemon=True).start()
    deaf = socket.socket(socket.AF_UNIX)  # asks and asks, never reads an answer
    deaf.connect(sock)
    deaf.settimeout(10 * scale)
    deaf.sendall(HOST_INFO * 3000)
    time.sleep(2)
    took, status = timed_host_info(sock)
    h.check(took is not None and took < 5 * scale and status == 0,
            f"HostInfo is answered at once while one client trickles a request, three sit idle and one does not "
            f"read ({took if took is None else round(took, 2)} s, {status})")
    h.wait_for(lambda: "dropped" in trickled, 40 * scale, "the trickling client to be dropped", interval=0.2)
    h.check(trickled["dropped"] < 30 * scale and "the request was incomplete after 10 s" in hostd.output(),
            f"the client trickling a request is dropped ({trickled['dropped']:.1f} s after its first byte)")
    h.wait_for(lambda: "the answer was not taken within 10 s" in hostd.output(), 40 * scale,
               "the client that does not read to be dropped", interval=0.2)
    answered, closed = b"", False
    try:
        while chunk := deaf.recv(65536):
            answered += chunk
        closed = True
    except ConnectionResetError:  # closed with requests unread: Linux tells the peer so, after the data
        closed = True
    except OSError:
        pass
    deaf.close()
    frames = 0
    while len(answered) >= 4 and len(answered) >= 4 + struct.unpack(">I", answered[:4])[0]:
        answered = answered[4 + struct.unpack(">I", answered[:4])[0]:]
        frames += 1
    h.check(closed and 0 < frames < 3000,
            f"the client that does not read its answers is dropped once its socket is full ({frames} of 3000 "
            f"answers sent)")

    # A second daemon on the same HOSTDIR: refused before it reads or opens anything.
    other_sock = os.path.join(work, "hostd-second.sock")
    rc, err = run_bounded([HOSTD, "--dir", hostdir, "--tcti", tcti, "--socket", other_sock], 30 * scale)
    h.check(rc == 1 and "another vtpm-hostd holds its lock" in err and hostdir in err,
            f"a second vtpm-hostd on the same HOSTDIR does not start ({rc}: {err.strip()[-200:]})")
    h.check(not os.path.exists(other_sock), "and it listens nowhere")
    h.check(state_key(sock, False)[0] == 0, "the first daemon keeps serving")
    # Nor do the vtpm-host commands that rewrite HOSTDIR run beside it.
    before = h.tree_digest(hostdir)
    for cmd in (["provision", "--tcti", tcti, "--dir", hostdir, "--owner-key", owner],
                ["enroll", "--tcti", tcti, "--dir", hostdir, "--ca", os.path.join(work, "no-ca"),
                 "--ek-roots", owner]):
        r = h.run([HOST] + cmd, check_rc=False)
        h.check(r.returncode == 1 and "is in use: a running vtpm-hostd (stop it first)" in r.stderr,
                f"vtpm-host {cmd[0]} refuses while vtpm-hostd serves HOSTDIR: {r.stderr.strip()[-160:]}")
    h.check_eq(h.tree_digest(hostdir), before, "and HOSTDIR is unchanged")

    # A daemon of another HOSTDIR (another host TPM) given the first one's socket.
    _, _, tcti2, _ = h.stand_in_hw_tpm(stack, work, "hwtpm-other")
    hostdir2 = os.path.join(work, "host-other")
    h.run([HOST, "provision", "--tcti", tcti2, "--dir", hostdir2, "--owner-key", owner])
    rc, err = run_bounded([HOSTD, "--dir", hostdir2, "--tcti", tcti2, "--socket", sock], 30 * scale)
    h.check(rc == 1 and "is served by another process" in err and sock in err,
            f"a vtpm-hostd of another HOSTDIR does not take a socket that is served ({rc}: {err.strip()[-200:]})")
    h.check(state_key(sock, False)[0] == 0, "the daemon serving it keeps it")
    # A stale socket (its daemon gone) is replaced, as before.
    stale = os.path.join(work, "hostd-stale.sock")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(stale)
    h.host_daemon(stack, work, hostdir2, tcti2, name="hostd-stale")
    h.check(h.wait_for(lambda: timed_host_info(stale)[1] == 0, 10 * scale, "the daemon on the stale socket"),
            "a stale socket at the path is replaced")
    # The socket is made under a temporary name and renamed once it listens
    # (a bridge that sees the path is never refused): owner and group only,
    # and nothing of the temporary name is left beside it.
    h.check_eq(stat.S_IMODE(os.stat(stale).st_mode), 0o660, "the daemon's socket is rw for owner and group only")
    h.check_eq([n for n in os.listdir(work) if n.startswith(".vtpm-")], [], "no temporary socket name is left")

    # Peers announcing the largest frame (160 MiB, a 16 GiB VM's page hashes)
    # and sending 16 MiB of it each: two frames are read at a time (320 MiB
    # of room), the others wait unread and are dropped after 10 s; memory
    # stays bounded and small requests are answered meanwhile.
    def memory_kib(field):
        return next(int(l.split()[1]) for l in open(f"/proc/{hostd.proc.pid}/status") if l.startswith(field + ":"))
    rss_before = memory_kib("VmRSS")
    big, pushed = [], []
    for _ in range(12):
        c = socket.socket(socket.AF_UNIX)
        c.connect(sock)
        c.setblocking(False)
        big.append(c)
        pushed.append(0)
    chunk = struct.pack(">I", 160 << 20) + bytes(1 << 20)
    until = time.monotonic() + 5 * scale
    while time.monotonic() < until and min(pushed) < 16 << 20:
        progress = False
        for k, c in enumerate(big):
            if pushed[k] < 16 << 20:
                try:
                    n = c.send(chunk[4:] if pushed[k] else chunk)
                    pushed[k] += n - (0 if pushed[k] else 4)
                    progress = True
                except BlockingIOError:
                    pass
        if not progress:
            time.sleep(0.02)
    time.sleep(0.5)  # what was sent is read
    grew = memory_kib("VmHWM") - rss_before
    read_in = sorted(pushed, reverse=True)
    h.check(read_in[1] >= 16 << 20 and read_in[2] < 4 << 20,
            f"two announced 160 MiB frames are read, the others wait unread (MiB sent: "
            f"{[round(p / 2**20, 1) for p in read_in]})")
    h.check(grew < 64 << 10, f"the daemon's memory stays bounded (peak RSS {grew} KiB over the {rss_before} KiB "
                             f"before; 12 frames read would be 192 MiB)")
    took, status = timed_host_info(sock)
    h.check(took is not None and took < 5 * scale and status == 0,
            f"a small request is answered meanwhile ({took}, {status})")
    # A large answer (kept page hashes of a save, 128 KiB here) does not fit
    # while the two frames hold the room: refused, to be asked again.
    leaves = [hashlib.sha256(b"page %d" % i).digest() for i in range(4096)]
    os.makedirs(os.path.join(hostdir, "vms"), mode=0o750, exist_ok=True)
    kept = os.path.join(hostdir, "vms", UUID + ".leaves")
    with open(kept, "wb") as f:
        f.write(b"".join(leaves))
    ask = [bytes.fromhex(UUID.replace("-", "")), merkle_root(leaves), b""]
    st, f = h.hostd_call(sock, "LeavesFor", ask)
    h.check(st == 0x800 and b"too many large messages in memory now; try again" in f[0],
            f"a large answer is refused while the room is taken ({st:#x}: {f[0][:80]!r})")
    shut = closed_by_peer(big[2:], 20 * scale)
    h.check(shut == 10 and "the request waited for room in memory for 10 s" in hostd.output(),
            f"the frames that waited for room are dropped after 10 s ({shut} of 10)")
    for c in big:
        c.close()
    h.wait_for(lambda: "the request was incomplete after 10 s" in hostd.output(), 10 * scale, "the room to be freed")
    st, f = h.hostd_call(sock, "LeavesFor", ask)
    h.check(st == 0 and f[0] == b"".join(leaves), f"once the room is free the same answer is given ({st:#x})")
    os.unlink(kept)

    closed = closed_by_peer(idle, max(5.0, idle_since + 60 * scale - time.monotonic()))
    for c in idle:
        c.close()
    h.check(closed == 3 and "idle for 30 s" in hostd.output(),
            f"idle connections are closed ({closed} of 3, {time.monotonic() - idle_since:.0f} s after they opened)")

    # At most 128 connections are open: the ones beyond are closed at once.
    crowd = []
    for _ in range(130):
        c = socket.socket(socket.AF_UNIX)
        c.connect(sock)
        crowd.append(c)
    shut = closed_by_peer(crowd[-2:], 5 * scale)
    for c in crowd:
        c.close()
    h.check(shut == 2 and "128 connections open already" in hostd.output() and timed_host_info(sock)[1] == 0,
            f"connections beyond 128 are closed at once ({shut} of 2), and the daemon answers when they go")


def test(work, stack):
    hw = os.path.join(work, "hwtpm")
    os.mkdir(hw)
    h.swtpm_setup(work, "--tpm2", "--tpm-state", hw, "--createek", "--create-ek-cert", "--pcr-banks", "sha1,sha256")
    srv, port = h.tcp_server(stack, hw, cmd=[h.SWTPM])
    tcti = f"swtpm:host=127.0.0.1,port={port}"
    hostdir = os.path.join(work, "host")
    owner = h.owner_key(work)
    owner_pub = os.path.join(work, "owner.pub.pem")
    h.run(["openssl", "pkey", "-in", owner, "-pubout", "-out", owner_pub])

    none = h.run([HOST, "provision", "--tcti", tcti, "--dir", hostdir], check_rc=False)
    h.check(none.returncode == 2 and "--owner-key is required" in none.stderr,
            f"provision without an owner key is refused: {none.stderr.strip()}")
    rsa = os.path.join(work, "rsa.pem")
    h.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rsa])
    r = h.run([HOST, "provision", "--tcti", tcti, "--dir", hostdir, "--owner-key", rsa], check_rc=False)
    h.check(r.returncode == 1 and "EC P-256" in r.stderr, f"an owner key of another kind is named: {r.stderr.strip()}")

    # The public owner key only: keys made, nothing approved yet.
    first = h.run([HOST, "provision", "--tcti", tcti, "--dir", hostdir, "--owner-key", owner_pub])
    h.check("(created)" in first.stdout and "no approval written" in first.stdout,
            "provision with the public owner key creates the keys, approves nothing")
    st = h.run([HOST, "status", "--tcti", tcti, "--dir", hostdir], check_rc=False)
    h.check(st.returncode == 1 and "vtpm-host authorize" in st.stdout, "status: no approval yet, says what to run")
    p = hostd_start(work, hostdir, tcti)
    h.check(p.returncode != 0 and "run vtpm-host authorize" in p.stderr,
            f"vtpm-hostd refuses to start without an approval: {p.stderr.strip()[-160:]}")

    # Approving needs the owner's private key, and that very key.
    r = h.run([HOST, "authorize", "--tcti", tcti, "--dir", hostdir, "--owner-key", owner_pub], check_rc=False)
    h.check(r.returncode == 1 and "private key" in r.stderr, "authorize with the public key is refused")
    r = h.run([HOST, "authorize", "--tcti", tcti, "--dir", hostdir, "--owner-key", h.owner_key(work, "intruder")],
              check_rc=False)
    h.check(r.returncode == 1 and "not the owner key this host was provisioned with" in r.stderr,
            "authorize with another private key is refused")
    h.check(not os.path.exists(os.path.join(hostdir, "authorization")), "nothing approved by the refusals")

    again = h.run([HOST, "provision", "--tcti", tcti, "--dir", hostdir, "--owner-key", owner])
    h.check(again.stdout.count("already present") == 2 and "approved the host state" in again.stdout,
            "provision is idempotent; with the private owner key it approves the state now")
    st = h.run([HOST, "status", "--tcti", tcti, "--dir", hostdir], check_rc=False)
    h.check(st.returncode == 0 and "approved, the AuthKey can sign" in st.stdout, f"status: all good")
    with open(os.path.join(hostdir, "host.conf")) as f:
        h.check("authkey_pcrs = 0,1,2,3,4,5,6,7,8,9" in f.read(), "default host PCRs 0-9 (firmware to command line)")

    for name, handle in (("ak", "0x81010010"), ("authkey", "0x81000010")):
        pem = os.path.join(work, f"{name}.pem")
        out = h.tpm2(port, "readpublic", "-c", handle, "-f", "pem", "-o", pem).stdout
        with open(pem) as a, open(os.path.join(hostdir, f"{name}.pem")) as b:
            h.check_eq(a.read(), b.read(), f"{name}.pem in HOSTDIR is the key at {handle}")
        for attr in ("fixedtpm", "fixedparent", "sensitivedataorigin", "sign"):
            h.check(attr in out, f"{name}: {attr}")
        if name == "ak":
            h.check("restricted" in out, "host AK is restricted")
        else:
            h.check("userwithauth" not in out and "restricted" not in out,
                    "AuthKey: use only through its policy, signs arbitrary digests")
            authkey_policy = [l.split(":", 1)[1].strip() for l in out.splitlines()
                              if l.startswith("authorization policy")][0]

    # tpm2-tools, from the owner's public key, computes the same policy:
    # PolicyAuthorize(owner key's name, policyRef "libvtpm authkey policy v1").
    # (The owner key's public area as libvtpm fixes it: sign, userWithAuth, ECDSA-SHA256.)
    h.tpm2(port, "loadexternal", "-C", "o", "-G", "ecc256:ecdsa-sha256", "-a", "sign|userwithauth", "-u", owner_pub, "-c", os.path.join(work, "owner.ctx"),
           "-n", os.path.join(work, "owner.name"))
    ses, pol = os.path.join(work, "trial.ctx"), os.path.join(work, "authorize.policy")
    h.tpm2(port, "flushcontext", "-t")
    h.tpm2(port, "startauthsession", "-S", ses)
    with open(os.path.join(work, "ref"), "wb") as f:
        f.write(b"libvtpm authkey policy v1")
    h.tpm2(port, "policyauthorize", "-S", ses, "-L", pol, "-n", os.path.join(work, "owner.name"),
           "-q", os.path.join(work, "ref"))
    h.tpm2(port, "flushcontext", ses)
    h.tpm2(port, "flushcontext", "-t")
    with open(pol, "rb") as f:
        h.check_eq(f.read().hex(), authkey_policy, "the AuthKey's authPolicy is tpm2-tools' PolicyAuthorize digest")

    # The daemon runs and makes the VM's state key, sealed to the host TPM.
    srv.stop()
    srv, port = h.tcp_server(stack, hw, cmd=[h.SWTPM])
    tcti = f"swtpm:host=127.0.0.1,port={port}"
    hostd, sock = hostd_start(work, hostdir, tcti, stack)
    status, fields = state_key(sock, True)
    h.check(status == 0 and len(fields[1]) == 32, "vtpm-hostd starts and seals a state key")
    key_before = fields[1]
    hostd.stop()

    # A new kernel: PCR 8 changes. The AuthKey cannot be used any more.
    h.tpm2(port, "pcrextend", "8:sha256=" + hashlib.sha256(b"new kernel").hexdigest())
    st = h.run([HOST, "status", "--tcti", tcti, "--dir", hostdir], check_rc=False)
    h.check(st.returncode == 1 and "NOT approved" in st.stdout, "status reports the host state as not approved")
    before = {n: h.sha256_file(os.path.join(hostdir, n)) for n in os.listdir(hostdir) if n != "vms"}
    p = hostd_start(work, hostdir, tcti)
    h.check(p.returncode != 0 and "not approved" in p.stderr and "vtpm-host authorize" in p.stderr,
            f"vtpm-hostd refuses to start: {p.stderr.strip()[-200:]}")
    after = {n: h.sha256_file(os.path.join(hostdir, n)) for n in os.listdir(hostdir) if n != "vms"}
    h.check_eq(after, before, "HOSTDIR unchanged by the refused start")

    # The owner approves the new state; nothing is re-provisioned.
    r = h.run([HOST, "authorize", "--tcti", tcti, "--dir", hostdir, "--owner-key", owner])
    h.check("2 approval(s)" in r.stdout, "authorize adds the new state (the old one kept)")
    hostd, sock = hostd_start(work, hostdir, tcti, stack)
    status, fields = state_key(sock, False)
    h.check(status == 0 and fields[1] == key_before, "after the approval the daemon starts; the sealed state "
                                                      "key made before the update opens")
    hostd.stop()

    # Approved before it is booted: the digest the next OS will measure.
    new9 = hashlib.sha256(b"new initrd").digest()
    vals = pcr_values(port, range(10))
    vals[9] = hashlib.sha256(vals[9] + new9).digest()
    digest = hashlib.sha256(b"".join(vals)).hexdigest()
    r = h.run([HOST, "authorize", "--dir", hostdir, "--owner-key", owner, "--pcr-digest", digest])
    h.check(digest in r.stdout, "a state approved ahead from its predicted digest, without the TPM")
    h.tpm2(port, "pcrextend", f"9:sha256={new9.hex()}")
    hostd, sock = hostd_start(work, hostdir, tcti, stack)
    h.check(state_key(sock, False)[0] == 0, "the daemon starts at once in the pre-approved state")
    hostd.stop()

    # Attacks on the approvals: an edited signature, a swapped owner key.
    auth_file = os.path.join(hostdir, "authorization")
    good = open(auth_file).read()
    lines = good.splitlines()
    last = lines[-1].split(" ")
    last[3] = last[3][:-8] + ("0" if last[3][-8] != "0" else "1") + last[3][-7:]
    with open(auth_file, "w") as f:
        f.write("\n".join(lines[:-1] + [" ".join(last)]) + "\n")
    p = hostd_start(work, hostdir, tcti)
    h.check(p.returncode != 0 and "not signed by the owner key" in p.stderr,
            f"an edited approval refuses the whole file: {p.stderr.strip()[-160:]}")
    with open(auth_file, "w") as f:
        f.write(good)
    owner_file = os.path.join(hostdir, "owner.pem")
    saved = open(owner_file).read()
    shutil.copy(os.path.join(work, "intruder.pem"), os.path.join(work, "intruder-copy.pem"))
    h.run(["openssl", "pkey", "-in", h.owner_key(work, "intruder"), "-pubout", "-out", owner_file])
    p = hostd_start(work, hostdir, tcti)
    h.check(p.returncode != 0 and ("not signed by the owner key" in p.stderr or
                                   "not bound to the owner key" in p.stderr),
            f"a replaced owner.pem is refused: {p.stderr.strip()[-160:]}")
    r = h.run([HOST, "authorize", "--tcti", tcti, "--dir", hostdir, "--owner-key", h.owner_key(work, "intruder"),
               "--replace"], check_rc=False)
    p = hostd_start(work, hostdir, tcti)
    h.check(p.returncode != 0 and "not bound to the owner key" in p.stderr,
            f"approvals by the swapped-in key do not make the AuthKey usable: {p.stderr.strip()[-160:]}")
    with open(owner_file, "w") as f:
        f.write(saved)
    with open(auth_file, "w") as f:
        f.write(good)

    # --replace keeps only the state now: the earlier ones are gone.
    r = h.run([HOST, "authorize", "--tcti", tcti, "--dir", hostdir, "--owner-key", owner, "--replace"])
    h.check("1 approval(s)" in r.stdout, "authorize --replace keeps one approval")
    hostd, sock = hostd_start(work, hostdir, tcti, stack, malloc_perturb=False)  # serving() measures its memory
    h.check(state_key(sock, False)[0] == 0, "the daemon runs on the one approval")
    serving(work, stack, hostd, sock, hostdir, tcti, owner)
    hostd.stop()

    bad = h.run([HOST, "provision", "--tcti", tcti, "--dir", hostdir, "--owner-key", owner, "--pcrs", "0,99"],
                check_rc=False)
    h.check(bad.returncode == 1 and "out of range" in bad.stderr, "a PCR out of range is named")
    other = h.run([HOST, "provision", "--tcti", tcti, "--dir", hostdir, "--owner-key", h.owner_key(work, "other")],
                  check_rc=False)
    h.check(other.returncode == 1 and "another owner key" in other.stderr,
            f"provision with another owner key does not replace the AuthKey: {other.stderr.strip()}")
    down = h.run([HOST, "status", "--tcti", "swtpm:host=127.0.0.1,port=1", "--dir", hostdir], check_rc=False)
    h.check(down.returncode == 1 and "cannot reach the host TPM" in down.stderr + down.stdout,
            "an unreachable TPM is a clear error")
    srv.stop()


if __name__ == "__main__":
    h.main(test, min_checks=54)
