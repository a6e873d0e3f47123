"""Helpers for tests with a lying neighbour: real peers in threads, and an impostor socket set.

The impostor speaks the wire format with a plain pyzmq ROUTER (optionally bound at a peer's
address, so it receives what the real peers send that peer) and one DEALER per target. It
learns the real peers' rounds from their messages and can relabel, mutate and forge them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq

from gossip.config import resolve
from gossip.launch.local import free_ports
from gossip.launch.peer_task import build_peer_task, run_digest
from gossip.peer.runtime import Peer, PeerOptions
from gossip.wire import CurveKeys


def peers_config(n: int, **overrides: Any):
    """A small, fast run config of ``n`` peers (MLP with one hidden layer of 16)."""
    values = {"peers": n, "rounds": 20, "model_options": {"hidden": [16]}, "eval_every": 1000,
              "round_deadline": 1.0, "startup_timeout": 5.0, "checkpoint_every": 0}
    return resolve({}, values | overrides)


def make_peers(config, ids: list[int], out: Path, addresses: list[str] | None = None,
               keys: dict[int, CurveKeys] | None = None, **options: Any) -> list[Peer]:
    """Real peers ``ids`` of the run ``config`` (not started)."""
    addresses = addresses or [f"tcp://127.0.0.1:{p}" for p in free_ports(config.peers)]
    peers = []
    for i in ids:
        opts = PeerOptions(addresses, out / f"peer{i}", round_deadline=config.round_deadline,
                           startup_timeout=config.startup_timeout, checkpoint_every=0,
                           run_digest=run_digest(config),
                           keys=(keys or {}).get(i), **options)
        peers.append(Peer(build_peer_task(config, i), opts))
    return peers


@contextlib.contextmanager
def running(peers: list[Peer]) -> Iterator[dict[int, Any]]:
    """Runs each peer in a daemon thread; on exit joins them and re-raises a peer's error.

    Yields:
        ``{peer id: last record or exception}``, filled as the peers finish.
    """
    results: dict[int, Any] = {}

    def run(peer: Peer) -> None:
        try:
            results[peer.i] = peer.run()
        except BaseException as e:  # reported by the test
            results[peer.i] = e

    threads = [threading.Thread(target=run, args=(p,), daemon=True) for p in peers]
    for t in threads:
        t.start()
    try:
        yield results
    finally:
        for t in threads:
            t.join(timeout=300)
        for p in peers:  # a peer stuck past the join: its sockets are closed anyway
            if p.transport is not None and not p.transport.router.closed:
                p.inbox.stop()
                p.transport.close()
    for value in results.values():
        if isinstance(value, BaseException):
            raise value


def relabel(frames: list[Any], **changes: Any) -> list[bytes]:
    """A copy of ``frames`` whose header has ``changes`` applied."""
    header = msgpack.unpackb(bytes(frames[0]))
    header.update(changes)
    return [msgpack.packb(header), *(bytes(f) for f in frames[1:])]


class Impostor:
    """A lying neighbour: a ROUTER (bound at ``bind``, or none) and DEALERs to ``targets``.

    Args:
        addresses: every peer's address.
        targets: the peers it sends to.
        bind: the address it listens on (a peer's address it takes over), or None.
        curve: ``(public, secret)`` CURVE key pair to connect with, and the run's keys.
    """

    def __init__(self, addresses: list[str], targets: list[int], bind: str | None = None,
                 curve: tuple[bytes, bytes, tuple[bytes, ...]] | None = None) -> None:
        self.ctx = zmq.Context()
        self.router = None
        if bind is not None:
            self.router = self.ctx.socket(zmq.ROUTER)
            self.router.setsockopt(zmq.LINGER, 0)
            if curve is not None:
                self.router.setsockopt(zmq.CURVE_SERVER, 1)
                self.router.setsockopt(zmq.CURVE_PUBLICKEY, curve[0])
                self.router.setsockopt(zmq.CURVE_SECRETKEY, curve[1])
            self.router.bind(bind)
        self.dealers = {}
        for j in targets:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 100000)
            if curve is not None:
                sock.setsockopt(zmq.CURVE_PUBLICKEY, curve[0])
                sock.setsockopt(zmq.CURVE_SECRETKEY, curve[1])
                sock.setsockopt(zmq.CURVE_SERVERKEY, curve[2][j])
            sock.connect(addresses[j])
            self.dealers[j] = sock
        self.rounds: dict[int, int] = {}  # latest round each peer said or sent
        self.gossip: dict[int, list[bytes]] = {}  # latest gossip frames of each peer
        self.sent = 0

    def listen(self, timeout_ms: int = 0) -> None:
        """Reads whatever the real peers sent us (their rounds and gossip messages)."""
        while self.router is not None and self.router.poll(timeout_ms):
            timeout_ms = 0
            frames = self.router.recv_multipart()[1:]
            try:
                header = msgpack.unpackb(frames[0])
                sender, round_ = header["sender"], header["round"]
            except Exception:
                continue
            self.rounds[sender] = max(self.rounds.get(sender, 0), round_)
            if header["kind"] == "gossip":
                self.gossip[sender] = frames

    def send(self, dest: int, frames: list[Any]) -> bool:
        """Sends without blocking; True when queued."""
        try:
            self.dealers[dest].send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        self.sent += 1
        return True

    def wait_for_gossip(self, beat: list[Any] | None = None, timeout: float = 120.0) -> None:
        """Listens until a real peer's gossip message has arrived, sending ``beat`` (a
        heartbeat, so the peers keep the impostor alive while they compile) to every target
        every half second."""
        end = time.monotonic() + timeout
        next_beat = 0.0
        while not self.gossip:
            if time.monotonic() > end:
                raise AssertionError("no gossip message reached the impostor")
            if beat is not None and time.monotonic() >= next_beat:
                for j in self.dealers:
                    self.send(j, beat)
                next_beat = time.monotonic() + 0.5
            self.listen(50)

    def close(self) -> None:
        for sock in self.dealers.values():
            sock.close(linger=0)
        if self.router is not None:
            self.router.close(linger=0)
        self.ctx.term()


def max_abs(tree: Any) -> float:
    import jax

    return max(float(np.max(np.abs(np.asarray(x)))) for x in jax.tree.leaves(tree))
