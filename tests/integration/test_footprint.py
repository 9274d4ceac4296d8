#!/usr/bin/env python3
"""A plain `socket` bridge maps only what swtpm's features need: libtpms,
OpenSSL, libseccomp and the C library. tpm2-tss's marshalling (used by the
snapshot and identity features), tpm2-tss's ESYS stack (the host daemon's),
libfuse3 (cuse), GLib (vtpm-setup) and a shared libstdc++ stay out of the
process, checked in /proc/PID/maps after TPM commands, control messages and
an NV write have run. With OpenSSL's RAND routed to getrandom(2), two
GetRandom answers differ and libtpms makes an ECC key."""
import os
import socket

import harness as h

# What a plain bridge must not map, by the library's file name prefix.
NOT_MAPPED = ["libtss2-mu", "libtss2-esys", "libtss2-tctildr", "libtss2-sys", "libfuse3", "libglib-2.0",
              "libgio-2.0", "libgobject-2.0", "libjson-glib", "libstdc++"]
# What it does map (the test is not vacuous: the maps are read and hold these).
MAPPED = ["libtpms", "libcrypto", "libseccomp"]


def mapped_libraries(pid):
    libs = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and ".so" in parts[5]:
                libs.add(os.path.basename(parts[5]))
    return libs


def test(work, stack):
    state = os.path.join(work, "state")
    os.mkdir(state)
    srv, port = h.tcp_server(stack, state)
    with socket.create_connection(("127.0.0.1", port)) as s:
        a = h.transact(s, h.tpm2_getrandom(32))
        b = h.transact(s, h.tpm2_getrandom(32))
    h.check_eq((h.tpm_rc(a), h.tpm_rc(b)), (0, 0), "GetRandom answers")
    h.check(a[12:] != b[12:] and len(a) == 12 + 32, "two GetRandom answers differ")
    # A primary key and an NV write: the state store's journal, libtpms' RSA
    # and ECC, all through the bridge.
    h.tpm2(port, "createprimary", "-C", "o", "-G", "ecc256", "-c", os.path.join(work, "p.ctx"))
    h.tpm2(port, "flushcontext", "-t")
    h.tpm2(port, "nvdefine", "0x1500020", "-C", "o", "-s", "8", "-a", "ownerread|ownerwrite")
    h.tpm2(port, "nvwrite", "0x1500020", "-C", "o", "-i", "-", input_data=b"12345678")
    out = h.tpm2(port, "nvread", "0x1500020", "-C", "o", "-s", "8")
    h.check_eq(out.stdout, "12345678", "the NV index reads back")
    h.ioctl("--tcp", f"127.0.0.1:{port + 1}", "-g")
    libs = mapped_libraries(srv.proc.pid)
    print(f"# mapped: {' '.join(sorted(libs))}")
    for name in MAPPED:
        h.check(any(lib.startswith(name) for lib in libs), f"the bridge maps {name}")
    if not h.is_ours():
        return
    # The sanitizer runtimes bring a shared libstdc++ of their own.
    for name in [n for n in NOT_MAPPED if not (n == "libstdc++" and h.is_sanitizer_build())]:
        h.check(not any(lib.startswith(name) for lib in libs), f"a plain bridge does not map {name}")
    srv.stop()


if __name__ == "__main__":
    h.main(test, min_checks=3 + len(MAPPED) + len(NOT_MAPPED) - 1, min_checks_swtpm=3 + len(MAPPED))
