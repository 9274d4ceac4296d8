#!/usr/bin/env python3
"""Durability under kill -9: a client writes an increasing 64-bit counter to
an NV index (owner authorization, password session); the server is SIGKILLed
a random moment (0-15 ms) after a write was sent, while writes go on; it is
started again on the same state directory and the index read back. It must
hold the last acknowledged value or the one in flight: never an older one,
never garbage; and the state must always open. bench/kill9.py runs the same
trials by the thousand (nv_client.Kill9Trials)."""
import os

import harness as h
import nv_client as nv

TRIALS = int(os.environ.get("VTPM_KILL9_TRIALS", "40"))


def test(work, stack):
    state = os.path.join(work, "state")
    os.mkdir(state)
    trials = nv.Kill9Trials(stack, state, seed=os.environ.get("VTPM_KILL9_SEED"))
    print(f"# seed {trials.seed} (VTPM_KILL9_SEED repeats it)")
    srv, port = trials.setup()
    h.check(srv.alive(), f"the index {nv.NV_INDEX:#x} is defined and holds {trials.acked}")
    srv.stop()
    # Each trial: start, read back (checked), write until the SIGKILL.
    srv, port, rc, value = trials.open_and_read()
    h.check_eq((rc, value), (0, trials.acked), "a clean restart reads the value written")
    for t in range(TRIALS):
        trials.write_then_kill(srv, port)
        srv, port, rc, value = trials.open_and_read()
        ok, what = trials.judge(rc, value, f"kill -9 trial {t + 1}")
        h.check(ok, what)
        trials.acked, trials.in_flight = value, None
    srv.stop()
    r = trials.result
    print(f"# {r.summary()}")
    h.check(r.writes > TRIALS, f"the trials acknowledged writes ({r.writes})")


if __name__ == "__main__":
    h.main(test, min_checks=TRIALS + 3)
