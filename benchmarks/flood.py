"""Benchmark: an honest peer's memory and progress while a neighbour floods it.

Runs the same small run of real peer processes (``gossip peer``, a ring, MLP on digits)
twice: quiet, then with a flooder that, for ``--seconds``, sends peer 0 messages as fast as
it can over one connection: full-size gossip messages that claim to come from an
in-neighbour of peer 0 (rounds around peer 0's current one and far ahead), heartbeats, state
requests and malformed frames (with ``--oversized``, also frames over the receiver's
``MAXMSGSIZE``: libzmq then drops the connection, and each reconnect slows the flooder down,
so they are left out by default). Peer 0's resident memory is sampled from
``/proc`` every 50 ms in both runs; the figures are its peak RSS in each, their difference
(the claim: under 100 MB), whether every peer finished every round, and peer 0's counters.

Prints one JSON object (``--json``: only that) and writes it to ``OUT/flood.json``
(``--out``, default a new ``runs/bench-flood-YYYYmmdd-HHMMSS``), with the command, machine
and versions.

The run must outlast the flood (``flood_covered_seconds`` in the result says whether it
did); raise ``--rounds`` or ``--local-steps`` on a faster machine.

Usage: ``python benchmarks/flood.py --json [--seconds 30] [--rounds 200] [--local-steps 1000]
[--out DIR]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import zmq

from gossip.bench.provenance import provenance, script_out
from gossip.config import resolve
from gossip.launch.local import free_ports
from gossip.launch.peer_task import build_peer_task
from gossip.wire import encode, make_template

PEERS = 3


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def last_round(path: Path) -> int:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        with contextlib.suppress(json.JSONDecodeError):
            return int(json.loads(line)["round"])
    return 0


class Flooder:
    """Sends peer 0 as much as it can, over one DEALER, until stopped."""

    def __init__(self, address: str, template: Any, sender: int, metrics: Path,
                 oversized: bool) -> None:
        self.address, self.template, self.sender, self.metrics = address, template, sender, metrics
        self.oversized = oversized
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 1000)
        sock.connect(self.address)
        rng = np.random.default_rng(0)
        payload = jax.tree.unflatten(self.template.treedef, [
            rng.standard_normal(s.shape).astype(s.dtype) for s in self.template.leaves])
        kinds = ["gossip"] * 6 + ["heartbeat", "state_request", "garbage"]
        kinds += ["oversized"] if self.oversized else []
        oversized = [b"\x00" * (self.template.max_frame_bytes + 8192)]
        try:
            while not self.stop.is_set():
                t = last_round(self.metrics)
                for kind in kinds:
                    if kind == "gossip":
                        r = int(t + rng.integers(-2, 12)) if rng.random() < 0.9 else 2**40
                        frames = encode("gossip", self.sender, max(r, 0), self.template,
                                        payload)
                    elif kind == "oversized":
                        frames = oversized
                    elif kind == "garbage":
                        frames = [rng.bytes(200), rng.bytes(1000)]
                    else:
                        frames = encode(kind, self.sender, t, self.template)
                    with contextlib.suppress(zmq.Again):
                        sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
                        self.sent += 1
        finally:
            sock.close(linger=0)
            ctx.term()


def message_template() -> Any:
    """The gossip-message template of the run's peers (MLP on digits, D-PSGD)."""
    task = build_peer_task(resolve({}, {"peers": PEERS}), 1)
    return make_template(jax.eval_shape(task.rule.message, task.params,
                                        task.rule.init(task.params)))


def run_once(out: Path, args: argparse.Namespace, template: Any | None) -> dict[str, Any]:
    """One run of PEERS peer processes; with a ``template``, peer 0 is flooded meanwhile."""
    flood = template is not None
    out.mkdir(parents=True, exist_ok=True)
    addresses = ",".join(f"tcp://127.0.0.1:{p}" for p in free_ports(PEERS))
    common = ["--peers", addresses, "--out", str(out), "--rounds", str(args.rounds),
              "--local-steps", str(args.local_steps), "--eval-every", str(args.rounds),
              "--round-deadline", "10", "--startup-timeout", "120", "--seed", "0",
              "--set", "checkpoint_every=0"]
    procs = []
    for i in range(PEERS):
        log = (out / f"peer-{i}.log").open("w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "gossip", "peer", "--id", str(i), *common],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    metrics = out / "peer-0000.jsonl"
    flooder = None
    peak, samples, begin = 0, [], time.monotonic()
    flood_start = flood_end = None
    try:
        while procs[0].poll() is None:
            rss = rss_bytes(procs[0].pid)
            peak = max(peak, rss)
            samples.append(rss)
            if flood and flooder is None and last_round(metrics) >= 1:
                flooder = Flooder(addresses.split(",")[0], template, 1, metrics,
                                  args.oversized)
                flooder.thread.start()
                flood_start = time.monotonic()
            if flooder is not None and flood_end is None \
                    and time.monotonic() - flood_start >= args.seconds:
                flooder.stop.set()
                flood_end = time.monotonic()
            time.sleep(0.05)
        if flooder is not None and flood_end is None:
            flooder.stop.set()
            flood_end = time.monotonic()
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        if flooder is not None:
            flooder.stop.set()
            flooder.thread.join(timeout=10)
    records = [json.loads(x) for x in metrics.read_text().splitlines()]
    last = records[-1]
    return {
        "flooded": flood,
        "exit_codes": codes,
        "rounds_done": [last_round(out / f"peer-{i:04d}.jsonl") for i in range(PEERS)],
        "wall_s": round(time.monotonic() - begin, 2),
        "flood_s": round(flood_end - flood_start, 2) if flooder is not None else 0.0,
        "messages_flooded": flooder.sent if flooder is not None else 0,
        "peer0_peak_rss_mb": round(peak / 2**20, 1),
        "peer0_median_rss_mb": round(float(np.median(samples)) / 2**20, 1) if samples else 0,
        "peer0_max_round_time_s": max(r["round_time"] for r in records),
        "peer0_counters": {k: last[k] for k in (
            "messages_received", "messages_missing", "messages_rejected",
            "rejected_malformed", "rejected_duplicate", "messages_throttled",
            "messages_stale", "messages_ahead", "transport_disconnects", "params_finite")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="how long to flood")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--local-steps", type=int, default=1000,
                    help="enough that the run outlasts the flood")
    ap.add_argument("--oversized", action="store_true",
                    help="also send frames over MAXMSGSIZE (each costs the flooder a reconnect)")
    ap.add_argument("--out", help="output directory (default: a new "
                    "runs/bench-flood-YYYYmmdd-HHMMSS)")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    args = ap.parse_args()
    args.out = script_out("flood", args.out)
    meta = provenance()
    quiet = run_once(args.out / "quiet", args, None)
    flooded = run_once(args.out / "flood", args, message_template())
    result = {
        "benchmark": "flood", "peers": PEERS, "rounds": args.rounds,
        "local_steps": args.local_steps, "seconds": args.seconds, "oversized": args.oversized,
        **meta,
        "quiet": quiet, "flood": flooded,
        "rss_delta_mb": round(flooded["peer0_peak_rss_mb"] - quiet["peer0_peak_rss_mb"], 1),
        "completed": flooded["exit_codes"] == [0] * PEERS
        and flooded["rounds_done"] == [args.rounds] * PEERS,
        "flood_covered_seconds": flooded["flood_s"] >= args.seconds,
    }
    (args.out / "flood.json").write_text(json.dumps(result, indent=2) + "\n")
    if not args.json:
        print(f"peak RSS of peer 0: quiet {quiet['peer0_peak_rss_mb']} MB, flooded "
              f"{flooded['peer0_peak_rss_mb']} MB ({flooded['messages_flooded']} messages in "
              f"{flooded['flood_s']} s); completed: {result['completed']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
