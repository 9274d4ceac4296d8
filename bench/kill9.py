#!/usr/bin/env python3
"""kill -9 durability, by the thousand: the trials of
tests/integration/test_kill9.py (nv_client.Kill9Trials). A client writes an
increasing 64-bit counter to an NV index; the server is SIGKILLed 0-15 ms
after a write was sent, started again on the same state directory, and the
index must hold the last acknowledged value or the one in flight.

  bench/kill9.py [--trials N] [--server PATH] [--seed S] [--max-delay-ms MS]

--server defaults to our bridge: $BUILD_DIR/swtpm-bridge/vtpm-bridge
(BUILD_DIR defaults to build); --server /usr/bin/swtpm runs Debian's swtpm.
Prints the trial count, how many trials ended with the last acknowledged
value and how many with the one in flight, and every violation; exits 1 on
any violation."""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness as h  # noqa: E402
import nv_client as nv  # noqa: E402


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--server", default=h.built_bridge())
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--max-delay-ms", type=float, default=15.0)
    return ap.parse_args()


def run(work, stack, args):
    state = os.path.join(work, "state")
    os.mkdir(state)
    trials = nv.Kill9Trials(stack, state, cmd=[args.server], seed=args.seed, max_delay=args.max_delay_ms / 1000)
    print(f"# server {args.server}, {args.trials} trials, kill 0-{args.max_delay_ms:g} ms after a write, "
          f"seed {trials.seed}", flush=True)
    t0 = time.monotonic()
    r = trials.run(args.trials)
    print(f"trials: {r.trials}")
    print(f"ended with the last acknowledged value: {r.last_acked}")
    print(f"ended with the value in flight: {r.in_flight}")
    print(f"kills inside a write: {r.kills_in_write}")
    print(f"acknowledged writes: {r.writes}, refused writes: {r.errors}")
    print(f"violations: {len(r.violations)}")
    for v in r.violations:
        print(f"VIOLATION {v}")
    print(f"# {time.monotonic() - t0:.1f} s", flush=True)
    if r.violations:
        raise SystemExit(1)  # the harness still cleans up; no server logs dumped
    h.check(r.trials == args.trials, f"{r.trials} trials without a violation")


def main():
    args = parse()
    if not os.access(args.server, os.X_OK):
        print(f"no server at {args.server} (build it, or give --server)", file=sys.stderr)
        return 2
    os.environ["VTPM_SERVER"] = args.server
    del sys.argv[1:]
    h.main(lambda work, stack: run(work, stack, args), min_checks=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
