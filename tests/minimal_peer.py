"""A peer written only from docs/protocol.md: pyzmq, msgpack and NumPy, nothing of ``gossip``.

It joins a synchronous ``dpsgd`` run on a ring as peer ``--id`` and averages (it does not
train): each round it sends its parameters to both ring neighbours, waits for theirs, and
takes the mean of what it has. It says hello, sends heartbeats every second, and bye at the
end. The leaves (path, dtype, shape) are given on the command line as ``path:dtype:d0,d1``.

    python tests/minimal_peer.py --id 2 --addresses tcp://...,tcp://...,tcp://... \\
        --rounds 10 --leaf w:float32:10 --out result.json
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import time

import msgpack
import numpy as np
import zmq

VERSION = 2


def structure_hash(leaves):
    text = "\n".join(f"{p}|{d}|{','.join(str(x) for x in s)}" for p, d, s in leaves)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--id", type=int, required=True)
    ap.add_argument("--addresses", required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--leaf", action="append", required=True)
    ap.add_argument("--deadline", type=float, default=30.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    me, addresses = args.id, args.addresses.split(",")
    n = len(addresses)
    leaves = []
    for spec in args.leaf:
        path, dtype, shape = spec.split(":")
        leaves.append((path, dtype, tuple(int(d) for d in shape.split(",") if d)))
    leaves.sort()  # wire order: paths of nested dicts sort like their keys
    struct = structure_hash(leaves)
    params = [np.full(s, 0.1 * (me + 1), d) for _, d, s in leaves]
    neighbours = sorted({(me - 1) % n, (me + 1) % n})

    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    router.bind(addresses[me])
    dealers = {}
    for j in neighbours:
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 1000)
        d.setsockopt(zmq.SNDHWM, 8)
        d.connect(addresses[j])
        dealers[j] = d

    def send(kind, round_, arrays=None):
        entries = [[p, d, list(s), a.nbytes, "raw"]
                   for (p, d, s), a in zip(leaves, arrays or [], strict=False)]
        header = {"v": VERSION, "kind": kind, "sender": me, "round": round_, "struct": struct,
                  "leaves": entries}
        for d in dealers.values():
            with contextlib.suppress(zmq.Again):
                d.send_multipart([msgpack.packb(header), *(a.tobytes() for a in arrays or [])],
                                 flags=zmq.NOBLOCK)

    inbox: dict[int, dict[int, list[np.ndarray]]] = {}
    said_bye: set[int] = set()

    def receive(timeout_ms):
        if not router.poll(timeout_ms):
            return
        frames = router.recv_multipart()[1:]
        try:
            h = msgpack.unpackb(frames[0], raw=False, strict_map_key=True)
            ok = (isinstance(h, dict) and h.get("v") == VERSION and h.get("struct") == struct
                  and h.get("sender") in neighbours)
        except Exception:
            return
        if not ok:
            return
        if h["kind"] == "bye":
            said_bye.add(h["sender"])
        if h["kind"] != "gossip" or len(frames) != 1 + len(leaves):
            return
        arrays = []
        for (p, d, s), entry, frame in zip(leaves, h["leaves"], frames[1:], strict=True):
            if entry != [p, d, list(s), len(frame), "raw"]:
                return
            a = np.frombuffer(frame, dtype=d).reshape(s)
            if not np.isfinite(a).all():
                return
            arrays.append(a)
        inbox.setdefault(h["round"], {}).setdefault(h["sender"], arrays)

    beat = 0.0
    for t in range(args.rounds):
        send("hello" if t == 0 else "heartbeat", t)
        send("gossip", t, params)
        end = time.monotonic() + args.deadline
        while len(inbox.get(t, {})) < len(neighbours) and time.monotonic() < end:
            if time.monotonic() > beat:
                send("heartbeat", t)
                beat = time.monotonic() + 1.0
            receive(50)
        got = list(inbox.pop(t, {}).values())
        params = [np.mean([own, *(g[k] for g in got)], axis=0).astype(own.dtype)
                  for k, own in enumerate(params)]
    send("bye", args.rounds)
    end = time.monotonic() + args.deadline
    while not set(neighbours) <= said_bye and time.monotonic() < end:
        receive(50)
    for d in dealers.values():
        d.close()
    router.close()
    ctx.term()
    with open(args.out, "w") as f:
        json.dump({"rounds": args.rounds, "params": [a.tolist() for a in params]}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
