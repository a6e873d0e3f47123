"""Time-varying topologies: a different graph each round, a function of ``(seed, round)``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gossip.errors import check_int
from gossip.topology.base import Topology, pack_edges, undirected_edges
from gossip.topology.static import DENSE_DRAW_MAX


def distinct_draws(rows: int, m: int, s: int, rng: np.random.Generator) -> np.ndarray:
    """For each of ``rows`` rows, s distinct values of ``range(m)`` uniformly at random
    (Floyd's algorithm, vectorised over rows): int64 (rows, s), O(rows · s²)."""
    pick = np.empty((rows, s), dtype=np.int64)
    for col, j in enumerate(range(m - s, m)):
        r = rng.integers(0, j + 1, rows)
        taken = (pick[:, :col] == r[:, None]).any(axis=1)
        pick[:, col] = np.where(taken, j, r)
    return pick


class OnePeerExponential(Topology):
    """One-peer exponential graph: in round t peer i sends to i + 2^(t mod tau) (mod n).

    tau = ceil(log2 n) is the period; one in-neighbour per round (k = 1). With n a power of
    two, tau rounds of uniform weights average exactly.
    """

    name = "one_peer_exponential"
    time_varying = True

    def _setup(self) -> None:
        self.period = max(1, math.ceil(math.log2(self.n)))
        self.k = 1
        self.undirected = all(2 * 2**e % self.n == 0 for e in range(self.period))

    def _edges(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        i = np.arange(self.n)
        return pack_edges(self.n, i, (i + 2 ** (t % self.period)) % self.n, self.k)


class RandomMatching(Topology):
    """Random pairwise gossip: each round a random perfect matching (rng ``[seed, t]``).

    Matched peers exchange with each other (k = 1); with n odd one peer sits out the round
    (its slot is padding and its self weight is 1).
    """

    name = "random_matching"
    time_varying = True

    def _setup(self) -> None:
        self.period = None
        self.k = 1

    def _edges(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        perm = np.random.default_rng([self.seed, t]).permutation(self.n)
        m = self.n // 2 * 2
        return pack_edges(self.n, *undirected_edges(perm[0:m:2], perm[1:m:2]), self.k)


class Epidemic(Topology):
    """Epidemic s-out gossip: each round every peer sends to s distinct random others.

    The draws of round t use rng ``[seed, t]`` (one number per pair of peers up to
    ``DENSE_DRAW_MAX`` peers, ``distinct_draws`` beyond). The in-degree is random, so each
    peer has a fixed number k = ``max_in`` of slots. When more than k peers send to one peer
    in a round, it keeps the k lowest sender ids: the other edges are removed from that
    round's graph (the senders compute this from the seed and skip them, and
    ``out_neighbours`` reflects it), which is the same as a lost message with the row renormalised.

    Options:
        s: messages each peer sends per round, 1 <= s <= n-1 (default 2).
        max_in: in-neighbour slots k, 1 <= max_in <= n-1
            (default min(n-1, s + ceil(4 sqrt(s)) + 4)).
    """

    name = "epidemic"
    time_varying = True
    OPTIONS = {"s": 2, "max_in": None}

    def _setup(self, s: Any, max_in: Any) -> None:
        self.s = check_int("s", s, 1, self.n - 1)
        if max_in is None:
            max_in = min(self.n - 1, self.s + math.ceil(4 * math.sqrt(self.s)) + 4)
        self.k = check_int("max_in", max_in, 1, self.n - 1)
        self.options.update(s=self.s, max_in=self.k)
        self.period = None
        self.undirected = self.s == self.n - 1 and self.k == self.n - 1  # complete graph

    def _edges(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        n, s = self.n, self.s
        rng = np.random.default_rng([self.seed, t])
        if s == n - 1:
            pick = np.broadcast_to(np.arange(n - 1), (n, n - 1))
        elif n <= DENSE_DRAW_MAX:
            pick = np.argpartition(rng.random((n, n - 1)), s - 1, axis=1)[:, :s]
        else:
            pick = distinct_draws(n, n - 1, s, rng)
        i = np.repeat(np.arange(n)[:, None], s, axis=1)
        dst = pick + (pick >= i)
        return pack_edges(n, i.ravel(), dst.ravel(), self.k)
