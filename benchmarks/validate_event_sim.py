"""Validation: the event simulator's wall time to round R against real peers.

Runs ``gossip launch --local N`` on a ring with one peer ``--slowdown`` times slower and a
set compute time, ``--step-time S``: every real peer sleeps after its local steps until they
took ``S`` seconds (the slow one ``S × slowdown``), so the run's pace is set by the config,
not by how busy this machine is. Then runs the event simulator (``gossip sim --engine
event``) on the same config and compares the time from the end of round 1 to the end of
round R (each real peer's clock starts at its own first round, so the staggered start-up is
left out). What the simulator does not model shows as the error: a real peer's per-round
work besides its local steps (encoding, sending, receiving, decoding, mixing), reported as
``real_overhead_s`` (the slow peer's mean ``round_time - compute_time - wait_time``).
Prints one JSON object and writes it to ``OUT/validation.json``.

Only sync mode: real peers have no ``--mode async`` yet.

Usage::

    python benchmarks/validate_event_sim.py --out DIR [--peers 8] [--rounds 50]
        [--slowdown 4] [--step-time 0.02]
"""

from __future__ import annotations

import argparse
import json
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


def _collect(times: list[float]) -> Callable[[dict], None]:
    return lambda record: times.append(record["time_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--peers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--slowdown", type=float, default=4.0)
    parser.add_argument("--step-time", type=float, default=0.02)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    config = dict(peers=args.peers, topology="ring", rounds=args.rounds,
                  eval_every=args.rounds, slow_peers=1, slowdown=args.slowdown,
                  step_time=args.step_time)
    real = real_run(args.out, config)
    base = resolve({}, config)
    records = {i: [json.loads(line) for line in
                   (real / f"peer-{i:04d}.jsonl").read_text().splitlines()]
               for i in range(args.peers)}
    slow = [i for i in range(args.peers) if peer_speed(base, i) > 1]
    overhead = statistics.mean(r["round_time"] - r["compute_time"] - r["wait_time"]
                               for i in slow for r in records[i][1:])
    real_s = max(rs[-1]["time"] - rs[0]["time"] for rs in records.values())
    times: list[float] = []
    simulate(build_experiment(resolve({}, {**config, "engine": "event", "eval_every": 1})),
             progress=False, on_eval=_collect(times))
    predicted = times[-1] - times[0]
    result = {"peers": args.peers, "topology": "ring", "rounds": args.rounds,
              "slowdown": args.slowdown, "step_time_s": args.step_time, "mode": "sync",
              "real_s": round(real_s, 3), "predicted_s": round(predicted, 3),
              "error": round(predicted / real_s - 1, 3),
              "real_overhead_s": round(overhead, 5)}
    text = json.dumps(result)
    (args.out / "validation.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
