"""Benchmark: the gossip wire format against raw pyzmq and a pickled dict, between two processes.

For parameter pytrees of about 1, 16 and 64 MiB (several float32 leaves of mixed shapes),
a sender process and a receiver process on loopback TCP (DEALER -> ROUTER, as in a peer)
exchange one message and a small acknowledgement, many times. Per size and mode, the
figure is ``size_bytes / median round-trip time``:

- ``gossip``: ``gossip.wire.encode`` + ``send_multipart(copy=False)``, then
  ``recv_multipart(copy=False)`` + ``gossip.wire.decode`` (every check of DESIGN §4,
  NaN/Inf scan included);
- ``raw_zmq``: the same bytes as one frame, ``copy=False`` both ways, no checks;
- ``frames``: the gossip message's frames (header and one per leaf) encoded once before,
  sent and received as in ``gossip`` but not decoded: what the frames cost over raw's one
  (``frames_over_raw``), without the codec;
- ``pickle``: the baseline of the goal, what a naive implementation does (pyzmq's
  ``send_pyobj``/``recv_pyobj``): the dict of numpy arrays pickled with the default protocol
  into one frame, sent and received with copies (``copy=True``), unpickled;
- ``pickle5``: a tuned pickle, for reference: ``pickle.HIGHEST_PROTOCOL`` (5), sent and
  received without copies (``copy=False``) and unpickled from the received buffer.

Nothing in gossip-train pickles what crosses a process boundary: both are baselines only.
``--codec-ref FILE`` adds a mode ``gossip_ref``: the gossip mode with the codec module in
FILE (e.g. ``git show main:gossip/wire/codec.py > /tmp/codec_main.py``), to compare two
versions of the codec in one run.

The modes alternate within each size, so they are compared side by side. ``raw_over_pickle``
is the most any codec over the same sockets can reach against ``pickle``. ``--stages`` adds,
per size, the median milliseconds of each stage of the receive path in one process (no
socket): ``encode``, ``checks`` (``decode`` without the NaN/Inf scan: header, structure,
dtypes, shapes, lengths), ``finite`` (the scan), ``stack`` (``np.stack`` of K = 2 received
messages, what the peer did before) and ``stack_aligned`` (what it does now,
``gossip.peer.buffers``), ``to_device_*`` (each stack handed to JAX) and ``mix_*`` (a
jitted weighted sum of the K messages into the parameters, from each stack).

Prints one JSON object per size and writes them, with the command, machine, versions and
load, to ``OUT/wire.json`` (``--out``; default a new ``runs/bench-wire-YYYYmmdd-HHMMSS``; the
committed figures are ``--out benchmarks/results``).

Usage: ``python benchmarks/wire.py --json [--sizes-mib 1 16 64] [--repeats 30] [--stages]
[--codec-ref FILE] [--out DIR]``
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import itertools
import json
import pickle  # the baseline being compared against, never used by the framework
import subprocess
import sys

import numpy as np
import zmq

from gossip.bench.provenance import provenance, script_out, write_result
from gossip.bench.timing import median_seconds
from gossip.launch.local import free_ports
from gossip.wire import decode, encode, make_template

MODES = ("gossip", "raw_zmq", "frames", "pickle", "pickle5")
ACK = b"ok"


def load_codec(path: str | None) -> object | None:
    """The codec module in file ``path`` (``encode``, ``decode``, ``make_template``), or None."""
    if path is None:
        return None
    spec = importlib.util.spec_from_file_location("codec_ref", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def serve(address: str, size_mib: float, messages: int, codec_ref: str | None) -> None:
    """The receiving process: decodes ``messages`` messages, acknowledging each."""
    template = make_template(make_tree(size_mib))
    ref = load_codec(codec_ref)
    ref_template = ref.make_template(make_tree(size_mib)) if ref else None
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
            elif mode.bytes == b"gossip_ref":
                ref.decode(frames, ref_template, 2)
            elif mode.bytes == b"pickle":  # recv_pyobj: a copying receive, then loads
                pickle.loads(frames[0].bytes)
            elif mode.bytes == b"pickle5":
                pickle.loads(frames[0].buffer)
            else:
                np.frombuffer(frames[0].buffer, np.uint8)
            sock.send_multipart([ident, ACK])
    finally:
        sock.close()
        ctx.term()


def bench(size_mib: float, repeats: int, warmup: int = 3, codec_ref: str | None = None) -> dict:
    tree = make_tree(size_mib)
    template = make_template(tree)
    ref = load_codec(codec_ref)
    ref_template = ref.make_template(tree) if ref else None
    modes = (*MODES, "gossip_ref") if ref else MODES
    flat = np.concatenate([a.reshape(-1).view(np.uint8) for a in
                           (tree["dense"]["kernel"], tree["dense"]["bias"],
                            tree["embed"]["table"], tree["conv"]["kernel"],
                            tree["conv"]["bias"], tree["scale"])])
    address = f"tcp://127.0.0.1:{free_ports(1)[0]}"
    total = (warmup + repeats) * len(modes)
    server = subprocess.Popen([sys.executable, __file__, "--serve", address, str(size_mib),
                               str(total), *([codec_ref] if codec_ref else [])])
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    rounds = itertools.count()
    encoded = encode("gossip", 0, 0, template, tree)

    def exchange(mode: str) -> None:
        copy = False
        if mode == "gossip":
            frames = encode("gossip", 0, next(rounds), template, tree)
        elif mode == "gossip_ref":
            frames = ref.encode("gossip", 0, next(rounds), ref_template, tree)
        elif mode == "frames":
            frames = encoded
        elif mode == "pickle":  # send_pyobj: the default protocol, a copying send
            frames, copy = [pickle.dumps(tree)], True
        elif mode == "pickle5":
            frames = [pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL)]
        else:
            frames = [flat]
        sock.send_multipart([mode.encode(), *frames], copy=copy)
        if not sock.poll(60_000):
            raise RuntimeError(f"no acknowledgement for {mode} at {size_mib} MiB")
        sock.recv()

    try:
        # the modes alternate, the order rotated each repeat: no mode always goes first
        seconds = median_seconds({m: functools.partial(exchange, m) for m in modes}, repeats,
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
    row = {"size_bytes": size, "leaves": len(template.leaves), "repeats": repeats,
           **{f"{m}_gbps": round(gbps[m], 3) for m in modes},
           "gossip_over_raw": round(gbps["gossip"] / gbps["raw_zmq"], 3),
           "frames_over_raw": round(gbps["frames"] / gbps["raw_zmq"], 3),
           "gossip_over_pickle": round(gbps["gossip"] / gbps["pickle"], 3),
           "gossip_over_pickle5": round(gbps["gossip"] / gbps["pickle5"], 3),
           # the ceiling of gossip_over_pickle: raw pyzmq, no encoding and no checks
           "raw_over_pickle": round(gbps["raw_zmq"] / gbps["pickle"], 3)}
    if ref:
        row["gossip_ref_over_raw"] = round(gbps["gossip_ref"] / gbps["raw_zmq"], 3)
        row["gossip_ref_over_pickle"] = round(gbps["gossip_ref"] / gbps["pickle"], 3)
    row["round_trip_ms"] = {m: round(t * 1e3, 3) for m, t in seconds.items()}
    return row


def stages(size_mib: float, repeats: int, k: int = 2,
           codec_ref: str | None = None) -> dict[str, float]:
    """Median milliseconds of each stage of receiving and mixing K messages (no socket);
    with ``codec_ref``, also ``encode_ref`` and ``checks_ref`` of that codec."""
    import jax  # noqa: PLC0415 (only the stage profile needs JAX)
    import jax.numpy as jnp  # noqa: PLC0415

    from gossip.peer.buffers import stack_aligned  # noqa: PLC0415
    from gossip.wire import codec  # noqa: PLC0415

    tree = make_tree(size_mib)
    template = make_template(tree)
    frames = encode("gossip", 0, 0, template, tree)
    # received frames are separate buffers, as libzmq hands them over (16-byte aligned)
    received = [frames[0], *(np.frombuffer(bytes(f), np.uint8) for f in frames[1:])]
    payloads = [decode(received, template, 2).payload for _ in range(k)]
    params = jax.tree.map(jnp.asarray, tree)
    w = jnp.full((k,), 1.0 / (k + 1), jnp.float32)
    mix = jax.jit(lambda p, s: jax.tree.map(lambda a, b: a / (k + 1) + jnp.tensordot(w, b, 1),
                                            p, s))
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *payloads)
    aligned = stack_aligned(payloads)
    scan = codec._all_finite
    calls = {
        "encode": lambda: encode("gossip", 0, 0, template, tree),
        "checks": lambda: decode(received, template, 2),
        "finite": lambda: [scan(a) for a in jax.tree.leaves(payloads[0])],
        "stack": lambda: jax.tree.map(lambda *xs: np.stack(xs), *payloads),
        "stack_aligned": lambda: stack_aligned(payloads),
        "to_device_stacked": lambda: [jax.device_put(a) for a in jax.tree.leaves(stacked)],
        "to_device_aligned": lambda: [jax.device_put(a) for a in jax.tree.leaves(aligned)],
        "mix_stacked": lambda: mix(params, stacked),
        "mix_aligned": lambda: mix(params, aligned),
    }
    ref = load_codec(codec_ref)
    if ref:
        ref_template = ref.make_template(tree)
        calls["encode_ref"] = lambda: ref.encode("gossip", 0, 0, ref_template, tree)
        calls["checks_ref"] = lambda: ref.decode(received, ref_template, 2)
        ref._all_finite = lambda *a: True
    codec._all_finite = lambda *a: True  # "checks" without the scan
    try:
        seconds = median_seconds(calls, repeats, warmup=2)
    finally:
        codec._all_finite = scan
    return {name: round(t * 1e3, 3) for name, t in seconds.items()}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]),
              sys.argv[5] if len(sys.argv) > 5 else None)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object per size")
    parser.add_argument("--sizes-mib", type=float, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--stages", action="store_true",
                        help="also time each stage of the receive path in one process")
    parser.add_argument("--codec-ref", metavar="FILE",
                        help="also time the gossip mode with the codec module in FILE "
                        "(mode gossip_ref)")
    parser.add_argument("--out", help="output directory (default: a new "
                        "runs/bench-wire-YYYYmmdd-HHMMSS)")
    args = parser.parse_args()
    out = script_out("wire", args.out)
    meta = provenance()
    rows = []
    for size in args.sizes_mib:
        row = bench(size, args.repeats, codec_ref=args.codec_ref)
        if args.stages:
            row["stages_ms"] = stages(size, max(5, args.repeats // 3), codec_ref=args.codec_ref)
        rows.append(row)
        print(json.dumps(row) if args.json else
              f"{row['size_bytes'] / 2**20:6.1f} MiB  gossip {row['gossip_gbps']:6.2f} Gbit/s  "
              f"raw {row['raw_zmq_gbps']:6.2f}  pickle {row['pickle_gbps']:6.2f}  "
              f"gossip/raw {row['gossip_over_raw']:.2f}", flush=True)
    meta["load_average_after"] = provenance()["machine"]["load_average"]
    path = write_result(out / "wire.json", {**meta, "results": rows})
    if not args.json:
        print(f"results: {path}")


if __name__ == "__main__":
    main()
