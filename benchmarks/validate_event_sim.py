"""Validation: the event simulator's wall time to round R against real peers.

Runs ``gossip launch --local N`` on a ring with one peer ``--slowdown`` times slower and a
set compute time, ``--step-time S``: every real peer sleeps after its local steps until they
took ``S`` seconds (the slow one ``S × slowdown``), so the run's pace is set by the config,
not by how busy this machine is. Then runs the event simulator (``gossip sim --engine
event``) on the same config and compares the time to round R. What the simulator does not
model shows as the error: a real peer's per-round work besides its local steps (encoding,
sending, receiving, decoding, mixing), reported as ``real_overhead_s`` (sync: the slow
peer's mean ``round_time - compute_time - wait_time``; async: the fast peers' mean
``round_time - compute_time``, as their pace sets the run's).

"Time to round R", the same definition for both sides:

- ``--mode sync``: from the end of round 1 to the end of round R (each real peer's clock
  starts at its own first round, so the staggered start-up is left out; the slowest peer's).
- ``--mode async``: from when the peers together have done N rounds to when they together
  have done N × R (the event simulator takes its async record of round R when the peers'
  total passes N × R). Each real peer's rounds are placed on its own clock (``time``:
  seconds since its first round started), as the simulator starts every peer at 0: an async
  peer waits for nobody, so its pace does not depend on when the others started, and the
  staggered start-up (a second or more on a loaded machine) is left out as in sync mode. A
  real async peer stops after ``rounds`` of its own rounds, or earlier once its
  in-neighbours stopped (the slow one, and a peer that started late), so the real run is
  given twice the rounds its total needs to pass N × R (``rounds = 2 ceil(N R / (N - 1 +
  1/F))``): no peer stops before the window ends (``stopped_in_window`` says if one did).

Prints one JSON object (with the load average before and after the runs) and writes it to
``OUT/validation.json``.

Usage::

    python benchmarks/validate_event_sim.py --out DIR [--mode sync|async] [--peers 8]
        [--rounds 50] [--slowdown 4] [--step-time 0.02]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from gossip.config import resolve
from gossip.experiment import build_experiment
from gossip.launch.peer_task import peer_speed
from gossip.simulate import simulate


def real_run(out: Path, config: dict) -> Path:
    """``gossip launch --local`` of the validation config; returns its output directory."""
    real = out / "real"
    cmd = [sys.executable, "-m", "gossip", "launch", "--local", str(config["peers"]),
           "--out", str(real), "--no-plot"]
    for key, value in config.items():
        if key != "peers":
            cmd += ["--set", f"{key}={value!r}" if isinstance(value, str) else
                    f"{key}={value}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return real


def _collect(records: list[dict]) -> Callable[[dict], None]:
    return records.append


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _real_async_s(records: dict[int, list[dict]], n: int, rounds: int) -> tuple[float, bool]:
    """Seconds from the peers' total of N rounds to their total of N × R (real run), on
    each peer's own clock; and whether a peer stopped before that."""
    ran = {i: [r["time"] for r in rs if not r.get("final")] for i, rs in records.items()}
    ends = sorted(t for times in ran.values() for t in times)
    if len(ends) < n * rounds:
        raise SystemExit(f"validate_event_sim: error: the real async run did only "
                         f"{len(ends)} rounds in all, fewer than {n * rounds}")
    end = ends[n * rounds - 1]
    return end - ends[n - 1], any(times[-1] < end for times in ran.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--mode", choices=("sync", "async"), default="sync")
    parser.add_argument("--peers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--slowdown", type=float, default=4.0)
    parser.add_argument("--step-time", type=float, default=0.02)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    n, rounds, sync = args.peers, args.rounds, args.mode == "sync"
    config = dict(peers=n, topology="ring", rounds=rounds, eval_every=rounds, slow_peers=1,
                  slowdown=args.slowdown, step_time=args.step_time)
    if not sync:
        config.update(rule="push_sum", mode="async")
    load_before = _load()
    real_rounds = rounds if sync else 2 * math.ceil(n * rounds / (n - 1 + 1 / args.slowdown))
    real = real_run(args.out, {**config, "rounds": real_rounds, "eval_every": real_rounds})
    base = resolve({}, config)
    records = {i: [json.loads(line) for line in
                   (real / f"peer-{i:04d}.jsonl").read_text().splitlines()]
               for i in range(n)}
    slow = [i for i in range(n) if peer_speed(base, i) > 1]
    if sync:
        overhead = statistics.mean(r["round_time"] - r["compute_time"] - r["wait_time"]
                                   for i in slow for r in records[i][1:])
        real_s = max(rs[-1]["time"] - rs[0]["time"] for rs in records.values())
        stopped = False
    else:
        overhead = statistics.mean(r["round_time"] - r["compute_time"]
                                   for i in range(n) if i not in slow
                                   for r in records[i][1:] if not r.get("final"))
        real_s, stopped = _real_async_s(records, n, rounds)
    reports: list[dict] = []
    simulate(build_experiment(resolve({}, {**config, "engine": "event", "eval_every": 1})),
             progress=False, on_eval=_collect(reports))
    def reached(k: int) -> float:  # simulated seconds at the first record of round >= k
        return next(r["time_s"] for r in reports if r["round"] >= k)

    predicted = reached(rounds) - reached(1)
    result = {"peers": n, "topology": "ring", "rounds": rounds, "mode": args.mode,
              "slowdown": args.slowdown, "step_time_s": args.step_time,
              "real_rounds": real_rounds, "real_s": round(real_s, 3),
              "predicted_s": round(predicted, 3), "error": round(predicted / real_s - 1, 3),
              "real_overhead_s": round(overhead, 5), "stopped_in_window": stopped,
              "load_before": load_before,
              "load_after": _load()}
    text = json.dumps(result)
    (args.out / "validation.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
