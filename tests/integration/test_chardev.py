#!/usr/bin/env python3
"""`swtpm chardev`: the data channel on an open fd (here one end of a
socketpair, as a character device would give one command per read) and the
control channel on --ctrl. The server under test and Debian's swtpm get the
same bytes and must answer the same: INIT over the control channel,
TPM2_Startup and TPM2_GetRandom(0) over the fd, swtpm_ioctl's queries; both
end when the fd's peer closes. Options of the other front end are refused,
and --vtpm-proxy without /dev/vtpmx fails with a message (this machine has
no vTPM proxy driver)."""
import os
import socket
import subprocess

import harness as h

SERVER = h.server_cmd()


def run_one(work, stack, tag, cmd):
    state = os.path.join(work, f"state-{tag}")
    os.mkdir(state)
    ctrl = os.path.join(work, f"{tag}.ctrl")
    ours_end, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    srv = h.Server(stack, ["--tpm2", "--tpmstate", f"dir={state}", "--fd", str(theirs.fileno()),
                           "--ctrl", f"type=unixio,path={ctrl}"],
                   cmd=cmd, subcommand="chardev", wait_path=ctrl, pass_fds=[theirs.fileno()])
    theirs.close()
    out = []
    out.append(h.ioctl("--unix", ctrl, "-i").stdout.strip())            # CMD_INIT
    ours_end.settimeout(5)
    out.append(h.transact(ours_end, h.tpm2_startup(0))[:10].hex())      # TPM2_Startup(CLEAR)
    rsp = h.transact(ours_end, bytes.fromhex("80010000000c0000017b0000"))  # GetRandom(0)
    out.append(rsp.hex())
    out.append(h.ioctl("--unix", ctrl, "-e").stdout.strip())            # tpmEstablished
    ours_end.close()
    try:
        srv.wait(5 * h.timeout_scale())
    except Exception:
        pass
    return out, srv.alive()


def test(work, stack):
    ours, alive_ours = run_one(work, stack, "ours", SERVER)
    ref, alive_ref = run_one(work, stack, "swtpm", [h.SWTPM])
    h.check_eq(ours, ref, "the same answers as swtpm chardev --fd")
    h.check_eq(ours[1], "80010000000a00000000", "TPM2_Startup over the fd succeeds")
    h.check(not alive_ours and not alive_ref, "both end when the fd's peer closes")

    def refused(*args):
        p = h.run(SERVER + ["chardev"] + list(args), check_rc=False, timeout=20)
        return p.returncode, (p.stdout + p.stderr).strip()
    for opt in (["--port", "2321"], ["--server", "type=tcp,port=2321"], ["--terminate"]):
        rc, msg = refused("--tpm2", "--tpmstate", f"dir={work}", *opt)
        h.check(rc != 0 and "unrecognized option" in msg, f"chardev refuses the socket option {opt[0]}: {msg[:100]}")
    rc, msg = refused("--tpm2", "--tpmstate", f"dir={work}", "--ctrl", f"type=unixio,path={work}/x.sock")
    h.check(rc != 0 and "--chardev" in msg, f"chardev without a device or fd: {msg[:120]}")
    if not os.path.exists("/dev/vtpmx"):
        rc, msg = refused("--tpm2", "--tpmstate", f"dir={work}", "--vtpm-proxy")
        h.check(rc != 0 and "/dev/vtpmx" in msg, f"--vtpm-proxy without the driver: {msg[:120]}")
    with open(os.path.join(work, "plain"), "w") as f:
        fd = f.fileno()
        p = subprocess.run(SERVER + ["chardev", "--tpm2", "--tpmstate", f"dir={work}", "--fd", str(fd)],
                           capture_output=True, text=True, pass_fds=[fd], timeout=20)
    h.check(p.returncode != 0 and "not supported" in p.stderr, "an fd of a regular file is refused, as by swtpm")
    rc, msg = refused("--help")
    h.check(rc == 0 and "chardev" in msg, "--help describes chardev")


if __name__ == "__main__":
    h.main(test, min_checks=9)
