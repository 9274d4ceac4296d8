#!/usr/bin/env python3
"""Regenerate text-order.txt: the code sections vtpm-bridge runs, linked together.

Every page of code a vTPM process runs stays mapped (RSS), and the kernel maps
a whole 64 KiB window around each page it faults in. Scattered over the binary,
the ~250 KiB that a start and a session run pulled in about three times that.
The linker (gold, --section-ordering-file) puts the sections named here first,
so the code that runs shares as few windows as it can.

How: the side-by-side benchmark (bench/vtpm-bench --quick, which goes through
start, the control channel, the TPM commands, NV writes, the migration cycle,
checkpoints and stop) runs with our server under callgrind; every function of
vtpm-bridge that ran is listed, by its section name. A stale list costs only
memory, never correctness: sections it does not name are linked after it.

    swtpm-bridge/layout/gen-text-order.py [BUILD_DIR]     (needs valgrind)
"""
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "build"))
exe = os.path.join(build, "swtpm-bridge", "vtpm-bridge")
bench = os.path.join(build, "bench", "vtpm-bench")

# The section of a constructor or destructor is named after its base-object
# variant (C2/D2); the complete-object symbols (C1/D1) are aliases of it, and
# the deleting destructor (D0), which has a section of its own, runs it too.
ALIASES = (("C1E", "C2E"), ("D1E", "D2E"), ("C1I", "C2I"), ("D0E", "D2E"))
# Where GCC puts a function: plain, hot (VTPM_HOT), cold, start-up.
PREFIXES = (".text.", ".text.hot.", ".text.unlikely.", ".text.startup.")


def functions_run(profiles):
    """Mangled names of the functions callgrind saw run in vtpm-bridge."""
    names = set()
    for path in profiles:
        objects, functions, current = {}, {}, None
        with open(path) as f:
            for line in f:
                m = re.match(r"^(c?ob)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
                if m:
                    if m.group(3):
                        objects[m.group(2)] = m.group(3)
                    if m.group(1) == "ob":
                        current = objects[m.group(2)]
                    continue
                m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
                if m:
                    if m.group(3):
                        functions[m.group(2)] = m.group(3)
                    if m.group(1) == "fn" and current == exe:
                        names.add(functions[m.group(2)])
    return names


def tools_session(wrapper, tmp):
    """What the benchmark does not send: tpm2-tools (SET_LOCALITY before every
    command, sessions, NV define and undefine) and swtpm_ioctl's messages."""
    state = os.path.join(tmp, "state")
    os.mkdir(state)
    port = 47000 + os.getpid() % 1000 * 2
    server = subprocess.Popen([wrapper, "socket", "--tpm2", "--tpmstate", "dir=" + state,
                               "--server", f"type=tcp,port={port}", "--ctrl", f"type=tcp,port={port + 1}",
                               "--flags", "not-need-init,startup-clear"])
    env = dict(os.environ, TPM2TOOLS_TCTI=f"swtpm:host=127.0.0.1,port={port}")
    ioctl = ["swtpm_ioctl", "--tcp", f"127.0.0.1:{port + 1}"]
    run = lambda *argv: subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd=tmp)
    for _ in range(600):  # callgrind starts slowly
        if subprocess.run(ioctl + ["-g"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            break
        time.sleep(0.05)
    run("tpm2_getrandom", "32")
    run("tpm2_pcrextend", "16:sha256=" + "00" * 32)
    run("tpm2_pcrread", "sha256:16")
    run("tpm2_createprimary", "-C", "o", "-G", "ecc256", "-c", "primary.ctx")
    run("tpm2_flushcontext", "-t")
    run("tpm2_nvdefine", "0x1500016", "-C", "o", "-s", "32", "-a", "ownerread|ownerwrite")
    with open(os.path.join(tmp, "nv.bin"), "wb") as f:
        f.write(bytes(32))
    run("tpm2_nvwrite", "0x1500016", "-C", "o", "-i", "nv.bin")
    run("tpm2_nvread", "0x1500016", "-C", "o", "-s", "32")
    run("tpm2_nvundefine", "0x1500016", "-C", "o")
    for args in (["--info", "1"], ["-v"], ["-e"], ["--stop"], ["-i"], ["-s"]):
        run(*ioctl, *args)
    server.wait(timeout=60)


def main():
    for tool in (exe, bench):
        if not os.access(tool, os.X_OK):
            sys.exit(f"gen-text-order: {tool} not built")
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = os.path.join(tmp, "bridge-under-callgrind")
        with open(wrapper, "w") as w:
            # seccomp off: valgrind's own syscalls are not in the bridge's policy.
            w.write("#!/bin/sh\nexec valgrind -q --tool=callgrind --demangle=no "
                    f"--callgrind-out-file={tmp}/cg.%p {exe} \"$@\" --seccomp action=none\n")
        os.chmod(wrapper, 0o755)
        subprocess.run([bench, "--ours", wrapper, "--quick", "--mode", "unpinned"], check=True,
                       stdout=subprocess.DEVNULL)
        tools_session(wrapper, tmp)
        names = functions_run(glob.glob(os.path.join(tmp, "cg.*")))
    if not names:
        sys.exit("gen-text-order: callgrind saw no function of vtpm-bridge run")
    symbols = subprocess.run(["nm", "--defined-only", exe], capture_output=True, text=True, check=True).stdout
    defined = {line.split()[-1] for line in symbols.splitlines() if len(line.split()) == 3}
    sections = []
    for name in sorted(n for n in names if n in defined):
        for variant in {name, *(name.replace(a, b, 1) for a, b in ALIASES if a in name)}:
            sections += [p + variant for p in PREFIXES]
    with open(os.path.join(here, "text-order.txt"), "w") as out:
        out.write("\n".join(sorted(set(sections))) + "\n")
    print(f"gen-text-order: {len(names)} functions, {len(set(sections))} section names")


if __name__ == "__main__":
    main()
