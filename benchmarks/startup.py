"""Benchmark: how long ``gossip launch --local N`` takes to its first round, and each peer's RSS.

Runs ``gossip launch --local N`` (default 16 peers, a ring, the MLP on digits, a few rounds)
and measures, from the moment the launcher starts:

- ``first_round_s``: until every peer has written its first metrics line (all N peers have
  imported, loaded their data, compiled and finished round 1);
- ``first_peer_s``: until the first peer did;
- ``total_s``: until the launcher exited;
- ``peer_rss_mib``: the median, over peers, of each peer's peak resident memory
  (``VmHWM`` in ``/proc``, sampled every 50 ms while the peers live), and the largest.

With ``--runs 2`` (the default) the same command runs twice into the same ``OUT/run``: the
first with a cold compilation cache, the second with the cache the first wrote
(``compile_cache = "auto"``, ``OUT/run/compile-cache``); ``--compile-cache off`` measures
without it. Prints one JSON object per run and writes them, with the command, machine,
versions and load, to ``OUT/startup.json`` (``--out``; default a new
``runs/bench-startup-YYYYmmdd-HHMMSS``).

Usage: ``python benchmarks/startup.py --json [--peers 16] [--rounds 3] [--runs 2]
[--compile-cache auto|off|DIR] [--out DIR]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from gossip.bench.provenance import provenance, script_out, write_result


def peak_rss(pid: int) -> int:
    """A process's peak resident memory in bytes so far (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peer_pids(launcher: int) -> list[int]:
    """The ``gossip peer`` processes the launcher started (its children)."""
    pids = []
    for task in Path(f"/proc/{launcher}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in task.read_text().split()]
    return pids


def first_lines(out: Path, n: int) -> int:
    """How many of the n peers have written a metrics line."""
    done = 0
    for i in range(n):
        with contextlib.suppress(OSError):
            done += (out / f"peer-{i:04d}.jsonl").stat().st_size > 0
    return done


def run_once(args: argparse.Namespace, out: Path) -> dict:
    command = [sys.executable, "-m", "gossip", "launch", "--local", str(args.peers),
               "--rounds", str(args.rounds), "--out", str(out), "--no-progress", "--no-plot",
               "--eval-every", str(args.rounds),
               *([] if args.compile_cache == "none" else ["--compile-cache", args.compile_cache]),
               "--set", f"model_options={{hidden=[{args.hidden}]}}"]
    for old in out.glob("peer-*.jsonl"):  # the launcher clears them too, but after we start
        old.unlink()
    start = time.perf_counter()
    launcher = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
    rss: dict[int, int] = {}
    first_peer = first_round = None
    try:
        while launcher.poll() is None:
            for pid in peer_pids(launcher.pid):
                rss[pid] = max(rss.get(pid, 0), peak_rss(pid))
            done = first_lines(out, args.peers)
            now = time.perf_counter() - start
            if done and first_peer is None:
                first_peer = now
            if done == args.peers and first_round is None:
                first_round = now
            time.sleep(0.05)
        total = time.perf_counter() - start
        err = launcher.stderr.read()
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    if launcher.returncode != 0:
        raise RuntimeError(f"gossip launch failed ({launcher.returncode}): {err[-2000:]}")
    peaks = [v / 2**20 for v in rss.values() if v]
    return {"peers": args.peers, "rounds": args.rounds, "hidden": args.hidden,
            "compile_cache": args.compile_cache,
            "first_peer_s": round(first_peer, 2) if first_peer else None,
            "first_round_s": round(first_round, 2) if first_round else None,
            "total_s": round(total, 2), "peers_sampled": len(peaks),
            "peer_rss_mib": round(statistics.median(peaks), 1) if peaks else None,
            "peer_rss_max_mib": round(max(peaks), 1) if peaks else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=64, help="MLP width (default 64)")
    parser.add_argument("--runs", type=int, default=2,
                        help="runs into the same OUT/run: cold, then warm cache (default 2)")
    parser.add_argument("--compile-cache", default="auto",
                        help="auto, off or a directory; none: pass no flag (code before it)")
    parser.add_argument("--json", action="store_true", help="print only JSON")
    parser.add_argument("--out", help="output directory (default: a new "
                        "runs/bench-startup-YYYYmmdd-HHMMSS)")
    args = parser.parse_args()
    out = script_out("startup", args.out)
    meta = provenance()
    rows = []
    for k in range(args.runs):
        row = {"run": k + 1, **run_once(args, out / "run")}
        rows.append(row)
        print(json.dumps(row) if args.json else
              f"run {k + 1}: first round of all {args.peers} peers after "
              f"{row['first_round_s']} s, peer RSS {row['peer_rss_mib']} MiB (max "
              f"{row['peer_rss_max_mib']})", flush=True)
    path = write_result(out / "startup.json", {**meta, "results": rows})
    if not args.json:
        print(f"results: {path}")


if __name__ == "__main__":
    main()
