"""A per-round time model of synchronous gossip on a network of identical links.

Round t of a synchronous run, for every peer i (documented in ``docs/benchmarks.md``):

1. i runs H local steps: ``H · c`` seconds (c = one local step, measured on this machine);
2. i sends its message (``m`` bytes) to each of its ``out_deg_i(t)`` out-neighbours; the
   messages share i's uplink, so the last one arrives ``send_i = L + out_deg_i · 8m / B``
   seconds later (L: per-link latency, B: bandwidth in bit/s);
3. i mixes once the messages of all its in-neighbours have arrived:
   ``finish_i = H · c + max(send_j for j in in(i))``, or ``H · c`` with no in-neighbour.

The round ends when the slowest peer finishes (a synchronous round is a barrier):
``T_t = max_i finish_i``. Downlinks, contention inside the network and compute/communication
overlap are not modelled. Everything here is numpy on the topology's graph (no JAX).
"""

from __future__ import annotations

import numpy as np

from gossip.topology import Topology


def out_degrees(topo: Topology, rounds: int) -> np.ndarray:
    """Messages each peer sends in each round.

    Args:
        topo: the topology.
        rounds: number of rounds R.

    Returns:
        int64 (R, n).
    """
    count = 1 if not topo.time_varying else rounds
    deg = np.array([[len(o) for o in topo.out_neighbours(t)] for t in range(count)],
                   dtype=np.int64)
    return np.broadcast_to(deg, (rounds, topo.n)) if count == 1 else deg


def send_times(out_deg: np.ndarray, message_bytes: int, latency_s: float,
               bandwidth_bit_s: float) -> np.ndarray:
    """Seconds until a peer's last message of a round has arrived: L + d · 8m / B.

    Args:
        out_deg: int (..., n) out-degrees.
        message_bytes: bytes of one message, m.
        latency_s: per-link latency L.
        bandwidth_bit_s: uplink bandwidth B, shared by a peer's messages.

    Returns:
        float64 (..., n); 0 for a peer that sends nothing.
    """
    out_deg = np.asarray(out_deg)
    t = latency_s + out_deg * (8.0 * message_bytes / bandwidth_bit_s)
    return np.where(out_deg > 0, t, 0.0)


def peer_finish_times(in_neighbours: list[np.ndarray], out_deg: np.ndarray, compute_s: float,
                      message_bytes: int, latency_s: float, bandwidth_bit_s: float
                      ) -> np.ndarray:
    """When each peer can mix in one round: H·c + its slowest in-neighbour's send time.

    Args:
        in_neighbours: n int arrays, each peer's in-neighbours in the round.
        out_deg: int (n,) out-degrees in the round.
        compute_s: local compute of the round, H · c.
        message_bytes: bytes of one message.
        latency_s: per-link latency.
        bandwidth_bit_s: uplink bandwidth (bit/s).

    Returns:
        float64 (n,) seconds from the start of the round.
    """
    send = send_times(out_deg, message_bytes, latency_s, bandwidth_bit_s)
    wait = np.array([send[np.asarray(nb, dtype=np.int64)].max(initial=0.0)
                     for nb in in_neighbours])
    return compute_s + wait


def round_times(topo: Topology, rounds: int, compute_s: float, message_bytes: int,
                latency_s: float, bandwidth_bit_s: float) -> np.ndarray:
    """Modelled duration of every round: ``T_t = max_i finish_i(t)``.

    Args:
        topo: the topology.
        rounds: number of rounds R.
        compute_s: local compute per round, H · c (seconds).
        message_bytes: bytes of one message.
        latency_s: per-link latency (seconds).
        bandwidth_bit_s: uplink bandwidth (bit/s).

    Returns:
        float64 (R,) seconds.
    """
    count = 1 if not topo.time_varying else rounds
    times = np.empty(count)
    for t in range(count):
        neighbours = topo.round_graph(t).neighbours
        mask = neighbours != np.arange(topo.n)[:, None]  # padding slots hold the peer itself
        in_nb = [neighbours[i][mask[i]] for i in range(topo.n)]
        out_deg = np.bincount(neighbours[mask], minlength=topo.n)
        times[t] = peer_finish_times(in_nb, out_deg, compute_s, message_bytes, latency_s,
                                     bandwidth_bit_s).max()
    return np.broadcast_to(times, (rounds,)).copy() if count == 1 else times
