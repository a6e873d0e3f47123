"""Benchmark: the gossip wire format against raw pyzmq and a pickled dict, between two processes.

For parameter pytrees of about 1, 16 and 64 MiB (several float32 leaves of mixed shapes),
a sender process and a receiver process on loopback TCP (DEALER -> ROUTER, as in a peer)
exchange one message and a small acknowledgement, many times. Per size and mode, the
figure is ``size_bytes / median round-trip time``:

- ``gossip``: ``gossip.wire.encode`` + ``send_multipart(copy=False)``, then
  ``recv_multipart(copy=False)`` + ``gossip.wire.decode`` (every check of DESIGN §4,
  NaN/Inf scan included);
- ``raw_zmq``: the same bytes as one frame, ``copy=False`` both ways, no checks;
- ``pickle``: the dict of numpy arrays pickled into one frame and unpickled (a baseline
  only: nothing in gossip-train pickles what crosses a process boundary).

The modes alternate within each size, so they are compared side by side. Prints one JSON
object per size and writes them to ``benchmarks/results/wire.json``.

Usage: ``python benchmarks/wire.py --json [--sizes-mib 1 16 64] [--repeats 30]``
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import pickle  # the baseline being compared against, never used by the framework
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import zmq

from gossip.bench.timing import median_seconds
from gossip.launch.local import free_ports
from gossip.wire import decode, encode, make_template

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("gossip", "raw_zmq", "pickle")
ACK = b"ok"


def make_tree(size_mib: float) -> dict[str, np.ndarray]:
    """A parameter-like pytree of about ``size_mib`` MiB: dense, conv, embedding, biases."""
    floats = int(size_mib * 2**20 / 4)
    width = 512
    rows = max(1, int(floats * 0.6) // width)
    emb = max(1, int(floats * 0.3) // 128)
    channels = max(1, int((floats * 0.1 / 9) ** 0.5))
    rng = np.random.default_rng(0)
    return {
        "dense": {"kernel": rng.standard_normal((rows, width), np.float32),
                  "bias": rng.standard_normal(width, np.float32)},
        "embed": {"table": rng.standard_normal((emb, 128), np.float32)},
        "conv": {"kernel": rng.standard_normal((3, 3, channels, channels), np.float32),
                 "bias": rng.standard_normal(channels, np.float32)},
        "scale": np.asarray(1.0, np.float32),
    }


def serve(address: str, size_mib: float, messages: int) -> None:
    """The receiving process: decodes ``messages`` messages, acknowledging each."""
    template = make_template(make_tree(size_mib))
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, template.nbytes + 2**20)
    sock.bind(address)
    try:
        for _ in range(messages):
            ident, mode, *frames = sock.recv_multipart(copy=False)
            if mode.bytes == b"gossip":
                decode(frames, template, 2)
            elif mode.bytes == b"pickle":
                pickle.loads(frames[0].buffer)
            else:
                np.frombuffer(frames[0].buffer, np.uint8)
            sock.send_multipart([ident, ACK])
    finally:
        sock.close()
        ctx.term()


def bench(size_mib: float, repeats: int, warmup: int = 3) -> dict:
    tree = make_tree(size_mib)
    template = make_template(tree)
    flat = np.concatenate([a.reshape(-1).view(np.uint8) for a in
                           (tree["dense"]["kernel"], tree["dense"]["bias"],
                            tree["embed"]["table"], tree["conv"]["kernel"],
                            tree["conv"]["bias"], tree["scale"])])
    address = f"tcp://127.0.0.1:{free_ports(1)[0]}"
    total = (warmup + repeats) * len(MODES)
    server = subprocess.Popen([sys.executable, __file__, "--serve", address, str(size_mib),
                               str(total)])
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    rounds = itertools.count()

    def exchange(mode: str) -> None:
        if mode == "gossip":
            frames = encode("gossip", 0, next(rounds), template, tree)
        elif mode == "pickle":
            frames = [pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL)]
        else:
            frames = [flat]
        sock.send_multipart([mode.encode(), *frames], copy=False)
        if not sock.poll(60_000):
            raise RuntimeError(f"no acknowledgement for {mode} at {size_mib} MiB")
        sock.recv()

    try:
        # the modes alternate, the order rotated each repeat: no mode always goes first
        seconds = median_seconds({m: functools.partial(exchange, m) for m in MODES}, repeats,
                                 warmup)
        server.wait(timeout=60)
    finally:
        sock.close()
        ctx.term()
        if server.poll() is None:
            server.kill()
            server.wait()
    size = template.nbytes
    gbps = {m: size * 8 / t / 1e9 for m, t in seconds.items()}
    return {"size_bytes": size, "leaves": len(template.leaves), "repeats": repeats,
            "gossip_gbps": round(gbps["gossip"], 3), "raw_zmq_gbps": round(gbps["raw_zmq"], 3),
            "pickle_gbps": round(gbps["pickle"], 3),
            "gossip_over_raw": round(gbps["gossip"] / gbps["raw_zmq"], 3)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object per size")
    parser.add_argument("--sizes-mib", type=float, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rows = []
    for size in args.sizes_mib:
        row = bench(size, args.repeats)
        rows.append(row)
        print(json.dumps(row) if args.json else
              f"{row['size_bytes'] / 2**20:6.1f} MiB  gossip {row['gossip_gbps']:6.2f} Gbit/s  "
              f"raw {row['raw_zmq_gbps']:6.2f}  pickle {row['pickle_gbps']:6.2f}  "
              f"gossip/raw {row['gossip_over_raw']:.2f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "wire.json").write_text(json.dumps({
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                   f"python {platform.python_version()}, pyzmq {zmq.pyzmq_version()}, "
                   f"libzmq {zmq.zmq_version()}",
        "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
