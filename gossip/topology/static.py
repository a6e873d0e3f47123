"""Static topologies: the same graph in every round."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gossip.errors import ConfigError, check_int
from gossip.topology.base import Topology, sorted_unique, undirected_edges

MAX_TRIES = 100
"""How many graphs a random static topology draws before giving up on a connected one."""

DENSE_DRAW_MAX = 4096
"""Up to this n, random graphs draw one number per pair of peers (O(n²), the draws every
earlier run used); beyond it, only the edges (O(n + E)), a different random stream."""


def sparse_pairs(n: int, p: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The edges ``i < j`` of one G(n, p) draw in O(n + E) memory: E ~ Binomial(n(n-1)/2, p)
    distinct pairs, uniformly at random."""
    edges = int(rng.binomial(n * (n - 1) // 2, p))
    codes = np.empty(0, dtype=np.int64)
    while codes.size < edges:
        more = int((edges - codes.size) * 1.1) + 16
        a, b = rng.integers(0, n, more), rng.integers(0, n, more)
        keep = a != b
        a, b = a[keep], b[keep]
        codes = sorted_unique(np.concatenate([codes, np.minimum(a, b) * n + np.maximum(a, b)]))
    if codes.size > edges:
        codes = np.sort(rng.choice(codes, edges, replace=False))
    return codes // n, codes % n


def is_connected(n: int, src: np.ndarray, dst: np.ndarray) -> bool:
    """Whether the graph with edges ``src -> dst`` on n peers is (weakly) connected."""
    adj = coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    return connected_components(adj, directed=False)[0] == 1


def _circulant(n: int, shifts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Edges ``i -> i + s (mod n)`` for each shift s."""
    i = np.arange(n)
    src = np.concatenate([i for _ in shifts])
    dst = np.concatenate([(i + s) % n for s in shifts])
    return src, dst


class Ring(Topology):
    """Each peer exchanges with its two ring neighbours i-1 and i+1 (one when n = 2)."""

    name = "ring"

    def _setup(self) -> None:
        self._set_static(*_circulant(self.n, [1, self.n - 1]))


class Torus(Topology):
    """A 2-D torus of side sqrt(n): each peer exchanges with its 4 grid neighbours (wrapping)."""

    name = "torus"

    def _setup(self) -> None:
        m = math.isqrt(self.n)
        if m * m != self.n:
            raise ConfigError(f"torus needs a square number of peers, got n={self.n}")
        r, c = np.divmod(np.arange(self.n), m)
        right = r * m + (c + 1) % m
        down = ((r + 1) % m) * m + c
        i = np.arange(self.n)
        self._set_static(*undirected_edges(np.concatenate([i, i]), np.concatenate([right, down])))


class Exponential(Topology):
    """Static exponential graph: peer i sends to i + 2^k (mod n), k = 0..floor(log2(n-1)).

    Directed (except for small n where the shifts are closed under negation); every peer has
    the same in-degree, so uniform weights make W doubly stochastic (circulant).
    """

    name = "exponential"

    def _setup(self) -> None:
        shifts = sorted({2**e % self.n for e in range((self.n - 1).bit_length())})
        self._set_static(*_circulant(self.n, shifts))


class Complete(Topology):
    """Every peer exchanges with every other peer."""

    name = "complete"

    def _setup(self) -> None:
        i, j = np.triu_indices(self.n, 1)
        self._set_static(*undirected_edges(i, j))


class Star(Topology):
    """Peer 0 is the hub; every other peer exchanges only with it (Metropolis by default)."""

    name = "star"
    regular = False

    def _setup(self) -> None:
        leaves = np.arange(1, self.n)
        self._set_static(*undirected_edges(np.zeros_like(leaves), leaves))


class ErdosRenyi(Topology):
    """Erdős–Rényi G(n, p), redrawn (seeds ``[seed, 0, try]``) until connected.

    Above ``DENSE_DRAW_MAX`` peers the edges are drawn sparsely (``sparse_pairs``).

    Options:
        p: edge probability in (0, 1]; default min(1, 2 ln(n) / n).
    """

    name = "erdos_renyi"
    OPTIONS = {"p": None}
    regular = False

    def _setup(self, p: Any) -> None:
        if p is None:
            p = min(1.0, 2 * math.log(self.n) / self.n)
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p <= 1:
            raise ConfigError(f"p must be a number in (0, 1], got {p!r}")
        self.options["p"] = p
        for attempt in range(MAX_TRIES):
            rng = np.random.default_rng([self.seed, 0, attempt])
            if self.n <= DENSE_DRAW_MAX:
                i, j = np.nonzero(np.triu(rng.random((self.n, self.n)) < p, 1))
            else:
                i, j = sparse_pairs(self.n, p, rng)
            if is_connected(self.n, i, j):
                self._set_static(*undirected_edges(i, j))
                return
        raise ConfigError(f"erdos_renyi with n={self.n}, p={p} drew no connected graph in "
                          f"{MAX_TRIES} tries; raise p")


def _random_regular_edges(n: int, d: int, rng: np.random.Generator
                          ) -> tuple[np.ndarray, np.ndarray] | None:
    """One try of the Steger–Wormald pairing for a simple d-regular graph; None when stuck."""
    stubs = list(np.repeat(np.arange(n), d))
    edges: set[tuple[int, int]] = set()
    while stubs:
        for _ in range(100):
            a, b = rng.choice(len(stubs), 2, replace=False)
            u, v = int(stubs[a]), int(stubs[b])
            if u != v and (min(u, v), max(u, v)) not in edges:
                break
        else:
            return None
        edges.add((min(u, v), max(u, v)))
        for idx in sorted((a, b), reverse=True):
            stubs[idx] = stubs[-1]
            stubs.pop()
    pairs = np.array(sorted(edges), dtype=np.int64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


class RandomRegular(Topology):
    """A random connected d-regular graph, drawn with seeds ``[seed, 0, try]``.

    Options:
        d: the degree, 1 <= d <= n-1 (default 4, clipped to n-1); n*d must be even.
    """

    name = "random_regular"
    OPTIONS = {"d": None}

    def _setup(self, d: Any) -> None:
        d = min(4, self.n - 1) if d is None else check_int("d", d, 1, self.n - 1)
        if self.n * d % 2:
            raise ConfigError(f"random_regular needs n*d even, got n={self.n}, d={d}")
        if d == 1 and self.n > 2:
            raise ConfigError(f"random_regular with d=1 and n={self.n} is never connected; "
                              "use d >= 2")
        self.options["d"] = d
        for attempt in range(MAX_TRIES):
            edges = _random_regular_edges(self.n, d, np.random.default_rng([self.seed, 0, attempt]))
            if edges is not None and is_connected(self.n, *edges):
                self._set_static(*undirected_edges(*edges))
                return
        raise ConfigError(f"random_regular with n={self.n}, d={d} drew no connected graph in "
                          f"{MAX_TRIES} tries")
