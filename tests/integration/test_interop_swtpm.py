#!/usr/bin/env python3
"""Both ways with Debian's swtpm on one state directory: a TPM manufactured
by Debian's swtpm_setup (EK + EK certificate) and used by swtpm opens in the
server under test with the same EK certificate, NV data and PCRs; what the
server under test writes opens again in swtpm. Plain and encrypted at rest
(--key pwdfile=, aes-256-cbc), and state blobs carried with a migration key
from one to the other via swtpm_ioctl --save / --load."""
import os

import harness as h

SWTPM = [h.SWTPM]
EK_CERT_NV = "0x01c00002"


def nv_read(port, index, size=None):
    args = ["nvread", index, "-C", "o"] if index != EK_CERT_NV else ["nvread", index, "-C", "o"]
    if size:
        args += ["-s", str(size)]
    return h.tpm2(port, *args).stdout


def use(stack, state, cmd, keyopts, flags, actions):
    srv, port = h.tcp_server(stack, state, extra=keyopts, cmd=cmd, flags=flags)
    try:
        return actions(port)
    finally:
        srv.stop()


def round_trip(work, stack, label, keyopts, setup_opts):
    state = os.path.join(work, f"state-{label}")
    os.mkdir(state)
    h.swtpm_setup(work, "--tpm2", "--tpm-state", state, "--createek", "--create-ek-cert",
                  "--overwrite", "--logfile", os.path.join(work, f"setup-{label}.log"), *setup_opts, timeout=120)
    h.check(os.path.exists(os.path.join(state, "tpm2-00.permall")), f"{label}: swtpm_setup manufactured a TPM")

    def by_swtpm(port):
        cert = h.tpm2(port, "nvread", EK_CERT_NV, "-C", "o").stdout.encode("latin-1", "replace")
        h.tpm2(port, "nvdefine", "0x1500020", "-C", "o", "-s", "16", "-a", "ownerread|ownerwrite")
        h.tpm2(port, "nvwrite", "0x1500020", "-C", "o", "-i", "-", input_data=b"written by swtpm")
        h.tpm2(port, "pcrextend", "10:sha256=" + "11" * 32)
        pcr = h.tpm2(port, "pcrread", "sha256:10").stdout
        h.tpm2(port, "shutdown")
        return cert, pcr
    cert, pcr = use(stack, state, SWTPM, keyopts, "not-need-init,startup-clear", by_swtpm)

    def by_ours(port):
        got_cert = h.tpm2(port, "nvread", EK_CERT_NV, "-C", "o").stdout.encode("latin-1", "replace")
        h.check(len(got_cert) > 500 and got_cert == cert, f"{label}: same EK certificate read by the server under test")
        h.check_eq(h.tpm2(port, "nvread", "0x1500020", "-C", "o", "-s", "16").stdout, "written by swtpm",
                   f"{label}: NV written by swtpm is read back")
        h.check_eq(h.tpm2(port, "pcrread", "sha256:10").stdout, pcr, f"{label}: PCR 10 resumed from swtpm's state")
        h.tpm2(port, "nvdefine", "0x1500021", "-C", "o", "-s", "16", "-a", "ownerread|ownerwrite")
        h.tpm2(port, "nvwrite", "0x1500021", "-C", "o", "-i", "-", input_data=b"written by vtpm!")
        h.tpm2(port, "pcrextend", "10:sha256=" + "22" * 32)
        pcr2 = h.tpm2(port, "pcrread", "sha256:10").stdout
        h.tpm2(port, "shutdown")
        return pcr2
    pcr2 = use(stack, state, None, keyopts, "not-need-init,startup-state", by_ours)

    def back_in_swtpm(port):
        h.check_eq(h.tpm2(port, "nvread", "0x1500021", "-C", "o", "-s", "16").stdout, "written by vtpm!",
                   f"{label}: swtpm reads NV written by the server under test")
        h.check_eq(h.tpm2(port, "pcrread", "sha256:10").stdout, pcr2, f"{label}: swtpm resumes the PCRs")
    use(stack, state, SWTPM, keyopts, "not-need-init,startup-state", back_in_swtpm)
    return state


def idle_checkpoint(work, stack):
    """A bridge copies what it journaled into the state file once the TPM
    stops writing: an NV write is in tpm2-00.permall a moment later, even
    while commands that write nothing keep coming (a guest reading PCRs),
    and after a SIGKILL the directory opens in Debian's swtpm (which reads
    no journal) with it."""
    state = os.path.join(work, "state-idle")
    os.mkdir(state)
    permall = os.path.join(state, "tpm2-00.permall")
    srv, port = h.tcp_server(stack, state)
    h.tpm2(port, "nvdefine", "0x1500022", "-C", "o", "-s", "16", "-a", "ownerread|ownerwrite")
    h.tpm2(port, "nvwrite", "0x1500022", "-C", "o", "-i", "-", input_data=b"kept while idle!")

    def checkpointed():
        h.tpm2(port, "pcrread", "sha256:0")  # keeps the TPM busy, writes nothing
        with open(permall, "rb") as f:
            return b"kept while idle!" in f.read()
    h.wait_for(lambda: os.path.exists(permall) and checkpointed(), 10 * h.timeout_scale(), "the checkpoint")
    h.check(srv.alive(), "checkpoint: the NV write reached tpm2-00.permall while PCR reads went on")
    srv.expected_exit = True
    srv.proc.kill()
    srv.proc.wait()
    use(stack, state, SWTPM, [], "not-need-init,startup-clear", lambda port: h.check_eq(
        nv_read(port, "0x1500022", 16), "kept while idle!", "checkpoint: swtpm reads it after a SIGKILL"))


def blob_transfer(work, stack, state, keyopts, migkey, src_cmd, dst_cmd, label):
    """--save permanent from one server, --load into the other on a fresh dir."""
    port = h.free_port(2)
    src = h.Server(stack, ["--tpm2", "--tpmstate", f"dir={state}", "--server", f"type=tcp,port={port}",
                           "--ctrl", f"type=tcp,port={port + 1}", "--flags", "not-need-init"] + keyopts + migkey,
                   cmd=src_cmd, wait_port=port + 1)
    blob = os.path.join(work, f"perm-{label}.blob")
    h.ioctl("--tcp", f"127.0.0.1:{port + 1}", "--save", "permanent", blob)
    src.stop()
    with open(blob, "rb") as f:
        raw = f.read()
    h.check(raw[5] & 0x02, f"{label}: blob is migration-key encrypted")
    h.check(b"written by" not in raw, f"{label}: no plaintext NV data in the blob")
    dst_state = os.path.join(work, f"dst-{label}")
    os.mkdir(dst_state)
    dport = h.free_port(2)
    dst = h.Server(stack, ["--tpm2", "--tpmstate", f"dir={dst_state}", "--server", f"type=tcp,port={dport}",
                           "--ctrl", f"type=tcp,port={dport + 1}"] + keyopts + migkey, cmd=dst_cmd,
                   wait_port=dport + 1)
    h.ioctl("--tcp", f"127.0.0.1:{dport + 1}", "--load", "permanent", blob)
    h.ioctl("--tcp", f"127.0.0.1:{dport + 1}", "-i")
    h.tpm2(dport, "startup", "-c")
    h.check_eq(h.tpm2(dport, "nvread", "0x1500021", "-C", "o", "-s", "16").stdout, "written by vtpm!",
               f"{label}: state moved by migration blob")
    dst.stop()


def linear_round_trip(work, stack):
    """swtpm's file:// backend: one file holding all blobs, both ways."""
    path = os.path.join(work, "linear", "tpm.state")
    os.makedirs(os.path.dirname(path))

    def serve(cmd, flags):
        port = h.free_port(2)
        args = ["--tpm2", "--tpmstate", f"backend-uri=file://{path}", "--server", f"type=tcp,port={port}",
                "--ctrl", f"type=tcp,port={port + 1}", "--flags", flags]
        return h.Server(stack, args, cmd=cmd, wait_port=port + 1), port

    srv, port = serve(SWTPM, "not-need-init,startup-clear")
    h.tpm2(port, "nvdefine", "0x1500030", "-C", "o", "-s", "16", "-a", "ownerread|ownerwrite")
    h.tpm2(port, "nvwrite", "0x1500030", "-C", "o", "-i", "-", input_data=b"linear by swtpm!")
    h.tpm2(port, "shutdown")
    srv.stop()
    with open(path, "rb") as f:
        h.check(f.read(8) == b"nilmptws", "file:// state written by swtpm has the linear magic")
    srv, port = serve(None, "not-need-init,startup-state")
    h.check_eq(h.tpm2(port, "nvread", "0x1500030", "-C", "o", "-s", "16").stdout, "linear by swtpm!",
               "file://: the server under test reads swtpm's linear state")
    h.tpm2(port, "nvdefine", "0x1500031", "-C", "o", "-s", "16", "-a", "ownerread|ownerwrite")
    h.tpm2(port, "nvwrite", "0x1500031", "-C", "o", "-i", "-", input_data=b"linear by vtpm!!")
    h.tpm2(port, "shutdown")
    srv.stop()
    srv, port = serve(SWTPM, "not-need-init,startup-state")
    h.check_eq(h.tpm2(port, "nvread", "0x1500031", "-C", "o", "-s", "16").stdout, "linear by vtpm!!",
               "file://: swtpm reads what the server under test wrote")
    h.check_eq(h.tpm2(port, "nvread", "0x1500030", "-C", "o", "-s", "16").stdout, "linear by swtpm!",
               "file://: and its own earlier data")
    srv.stop()
    states = h.run(h.server_cmd() + ["socket", "--tpm2", "--print-states", "--tpmstate",
                                     f"backend-uri=file://{path}"]).stdout
    ref = h.run([h.SWTPM, "socket", "--tpm2", "--print-states", "--tpmstate", f"backend-uri=file://{path}"]).stdout
    h.check_eq(states, ref, "file://: --print-states as swtpm prints it")


def test(work, stack):
    linear_round_trip(work, stack)
    idle_checkpoint(work, stack)
    plain = round_trip(work, stack, "plain", [], [])
    pw = os.path.join(work, "pass")
    with open(pw, "wb") as f:
        f.write(b"correct horse battery staple")
    keyopts = ["--key", f"pwdfile={pw},mode=aes-256-cbc"]
    enc = round_trip(work, stack, "encrypted", keyopts, ["--pwdfile", pw, "--cipher", "aes-256-cbc"])
    with open(os.path.join(enc, "tpm2-00.permall"), "rb") as f:
        data = f.read()
    h.check(data[5] & 0x01 and b"written by" not in data, "encrypted: state file is encrypted at rest")

    mk = os.path.join(work, "mig.key")
    with open(mk, "w") as f:
        f.write("a5" * 32)
    migkey = ["--migration-key", f"file={mk},mode=aes-256-cbc"]
    blob_transfer(work, stack, plain, [], migkey, None, SWTPM, "ours-to-swtpm")
    blob_transfer(work, stack, plain, [], migkey, SWTPM, None, "swtpm-to-ours")
    blob_transfer(work, stack, enc, keyopts, migkey, None, SWTPM, "encrypted-ours-to-swtpm")


if __name__ == "__main__":
    h.main(test, min_checks=29)
