#!/usr/bin/env python3
"""--key and --migration-key, every way swtpm 0.7.1 takes them, both
directions with Debian's swtpm: key from file= or fd= (hex or binary,
format=), passphrase from pwdfile= or pwdfd= (kdf=pbkdf2 or kdf=sha512),
remove=true. For each: the source encrypts the state at rest with the key
and hands out the volatile blob encrypted with the migration key; the
destination, given the same options, opens the state (CMD_INIT) and takes
the blob (SET_STATEBLOB). A wrong key is refused with swtpm's result code
and changes nothing on disk."""
import os
import struct

import harness as h

SERVER = h.server_cmd()


def cmd(code, body=b""):
    return struct.pack(">I", code) + body


KEY = bytes(range(32))
PASS = b"correct horse battery staple"


class Opt:
    """One way of giving a key; materialises the secret afresh per process
    (remove=true deletes a file, an fd is read once)."""

    def __init__(self, kind, fmt=None, kdf=None, remove=False):
        self.kind, self.fmt, self.kdf, self.remove = kind, fmt, kdf, remove

    def name(self):
        return ",".join(x for x in (self.kind, self.fmt, self.kdf and f"kdf={self.kdf}",
                                    "remove=true" if self.remove else None) if x)

    def secret(self, other):
        if self.kind in ("pwdfile", "pwdfd"):
            return PASS + (b"x" if other else b"")
        key = bytes([KEY[0] ^ (1 if other else 0)]) + KEY[1:]
        return key.hex().encode() if self.fmt == "hex" else key

    def make(self, work, tag, other=False):
        """(option text, fds to pass, path or None)."""
        path = os.path.join(work, f"{tag}.secret")
        with open(path, "wb") as f:
            f.write(self.secret(other))
        parts = []
        fds = []
        if self.kind in ("file", "pwdfile"):
            parts.append(f"{self.kind}={path}")
        else:
            fd = os.open(path, os.O_RDONLY)
            os.set_inheritable(fd, True)
            fds.append(fd)
            parts.append(f"{self.kind}={fd}")
        if self.kind in ("file", "fd"):
            parts.append(f"format={self.fmt}")
        if self.kdf:
            parts.append(f"kdf={self.kdf}")
        if self.remove:
            parts.append("remove=true")
        parts.append("mode=aes-256-cbc")
        return ",".join(parts), fds, path


def start(stack, work, cmd_, state, tag, opt, other=False, flags=True):
    sock = os.path.join(work, f"{tag}.sock")
    key, fds1, path1 = opt.make(work, tag + "-key", other)
    mig, fds2, path2 = opt.make(work, tag + "-mig", other)
    srv = h.Server(stack, ["--tpm2", "--tpmstate", f"dir={state}", "--ctrl", f"type=unixio,path={sock}",
                           "--key", key, "--migration-key", mig]
                   + (["--flags", "not-need-init,startup-clear"] if flags else []),
                   cmd=cmd_, wait_path=sock, pass_fds=fds1 + fds2)
    for fd in fds1 + fds2:
        os.close(fd)
    return srv, h.Ctrl(path=sock), (path1, path2)


def encrypted(state):
    with open(os.path.join(state, "tpm2-00.permall"), "rb") as f:
        return int.from_bytes(f.read(6)[4:6], "big") & 1


def round_trip(stack, work, opt, src_cmd, dst_cmd, tag):
    state = os.path.join(work, f"state-{tag}")
    os.mkdir(state)
    src, c, paths = start(stack, work, src_cmd, state, f"{tag}-src", opt)
    hdr = c.cmd(0x0c, struct.pack(">III", 0, 2, 0), 16)  # GET_STATEBLOB volatile, not decrypted
    blob = c.recv(h.u32(hdr, 8))
    flags = h.u32(hdr, 4)
    h.check_eq(c.cmd(0x03), b"\0\0\0\0", f"{tag}: source shut down")
    src.wait(10)
    removed = all(not os.path.exists(p) for p in paths) if opt.remove else None
    ok = encrypted(state) and flags & 2  # PTM_STATE_FLAG_ENCRYPTED
    if opt.remove:
        ok = ok and removed
    digest = h.dir_digest(state)
    # Another key, on either implementation: CMD_INIT refused alike, nothing changed.
    wrong = []
    for n, impl in enumerate((dst_cmd, src_cmd)):
        bad, cb, _ = start(stack, work, impl, state, f"{tag}-bad{n}", opt, other=True, flags=False)
        wrong.append(cb.cmd(0x02, struct.pack(">I", 0)))
        cb.cmd(0x03)
        bad.wait(10)
    same_after_wrong = h.dir_digest(state) == digest
    dst, cd, _ = start(stack, work, dst_cmd, state, f"{tag}-dst", opt)
    init = cd.cmd(0x02, struct.pack(">I", 0))
    cd.cmd(0x0e)  # STOP before SET_STATEBLOB
    setb = cd.cmd(0x0d, struct.pack(">III", flags, 2, len(blob)) + blob)
    init2 = cd.cmd(0x02, struct.pack(">I", 0))
    cd.cmd(0x03)
    dst.wait(10)
    return ok, wrong, same_after_wrong, init + setb + init2


def version_flips(stack, work, opt):
    """An encrypted state file whose header version byte has one bit
    flipped: refused at CMD_INIT by both, with the same result."""
    import shutil
    state = os.path.join(work, "state-k0-swtpm-to-ours")
    for bit in range(8):
        results = []
        for n, impl in enumerate((SERVER, [h.SWTPM])):
            d = os.path.join(work, f"flip{bit}-{n}")
            shutil.copytree(state, d)
            path = os.path.join(d, "tpm2-00.permall")
            with open(path, "r+b") as f:
                b0 = f.read(1)[0]
                f.seek(0)
                f.write(bytes([b0 ^ (1 << bit)]))
            srv, c, _ = start(stack, work, impl, d, f"flip{bit}-{n}", opt, flags=False)
            results.append(c.cmd(0x02, struct.pack(">I", 0)))
            c.cmd(0x03)
            srv.wait(10)
        h.check(results[0] != b"\0\0\0\0" and results[0] == results[1],
                f"encrypted state, bit {bit} of the header's version flipped: refused as swtpm refuses it "
                f"({results[0].hex()}, {results[1].hex()})")


def test(work, stack):
    opts = [Opt("file", "hex"), Opt("file", "binary"), Opt("file", "binary", remove=True), Opt("fd", "hex"),
            Opt("fd", "binary"), Opt("pwdfile", kdf="pbkdf2"), Opt("pwdfile", kdf="sha512"),
            Opt("pwdfile", kdf="sha512", remove=True), Opt("pwdfd", kdf="pbkdf2"), Opt("pwdfd", kdf="sha512")]
    for i, opt in enumerate(opts):
        for direction, (a, b) in (("swtpm->ours", ([h.SWTPM], SERVER)), ("ours->swtpm", (SERVER, [h.SWTPM]))):
            tag = f"k{i}-{direction.replace('->', '-to-')}"
            ok, wrong, unchanged, answers = round_trip(stack, work, opt, a, b, tag)
            what = f"{opt.name()} {direction}"
            h.check(ok, f"{what}: state and volatile blob encrypted at the source"
                        + (", key files removed" if opt.remove else ""))
            h.check(wrong[0] != b"\0\0\0\0" and wrong[0] == wrong[1] and unchanged,
                    f"{what}: another key refused as swtpm refuses it (results {wrong[0].hex()}, "
                    f"{wrong[1].hex()}), state unchanged")
            h.check_eq(answers.hex(), "00000000" * 3, f"{what}: INIT, SET_STATEBLOB, INIT at the destination")
        if i == 0:
            version_flips(stack, work, opt)


if __name__ == "__main__":
    h.main(test, min_checks=88)
