#!/usr/bin/env python3
"""QEMU live migration between two QEMU processes on loopback, each with its
own server and state directory: the vTPM state travels in QEMU's stream
(GET_STATEBLOB on the source, SET_STATEBLOB + INIT on the destination), the
guest keeps its PCRs and its TPM keeps answering. Then back again."""
import os
import re

import harness as h


def test(work, stack):
    states = [os.path.join(work, f"state{i}") for i in range(2)]
    for s in states:
        os.mkdir(s)
    ctrl0 = os.path.join(work, "src.sock")
    srv0 = h.libvirt_style_server(stack, states[0], ctrl0, os.path.join(work, "src.log"))
    src = h.Qemu(stack, work, "src", ctrl0)
    src.wait_output(r"VTPM-GUEST ready", timeout=120)
    extended = src.pcrs("extended")
    src.wait_output(r"TICK 1 ", timeout=30)

    hops = [(src, srv0)]
    for hop in range(2):
        cur, cur_srv = hops[-1]
        ctrl = os.path.join(work, f"dst{hop}.sock")
        state = states[(hop + 1) % 2]
        # Each destination starts on an empty state dir, as libvirt's (re)created one.
        for f in os.listdir(state):
            os.unlink(os.path.join(state, f))
        srv = h.libvirt_style_server(stack, state, ctrl, os.path.join(work, f"dst{hop}.log"))
        port = h.free_port()
        dst = h.Qemu(stack, work, f"dst{hop}", ctrl, incoming=f"tcp:127.0.0.1:{port}")
        cur.qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
        cur.qmp.wait_migration()
        h.check_eq(cur.qmp.cmd("query-migrate").get("status"), "completed", f"hop {hop}: live migration completed")
        h.wait_for(lambda: dst.qmp.cmd("query-status")["status"] == "running", 60, "destination running")
        ticks_before = [int(t) for t in re.findall(r"^TICK (\d+) ", cur.output(), re.M)]
        m = dst.wait_output(r"^TICK (\d+) ([0-9a-f]+) ([0-9A-Fa-f]+)\s*$", timeout=60)
        h.check_eq(m.group(2)[12:20], "00000000", f"hop {hop}: TPM answers on the destination")
        h.check_eq(m.group(3).lower(), extended[9], f"hop {hop}: PCR 9 migrated")
        h.check_resumed(dst.output(), max(ticks_before), f"hop {hop}: guest carries on from the source (no reboot)")
        cur.quit()
        h.check_eq(cur_srv.wait(10), 0, f"hop {hop}: source server exits 0 with its QEMU")
        hops.append((dst, srv))
        stack.callback(dst.kill)


if __name__ == "__main__":
    h.main(test, min_checks=14)
