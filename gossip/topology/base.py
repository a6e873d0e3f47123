"""The ``Topology`` base class, the ``RoundGraph`` it returns, and graph-packing helpers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, NamedTuple

import numpy as np
import scipy.sparse

from gossip.errors import ConfigError, check_int, resolve_options
from gossip.topology.weights import mixing_weights, resolve_weights


class RoundGraph(NamedTuple):
    """The mixing graph of one round, as fixed-shape arrays (``k`` slots per peer).

    Attributes:
        neighbours: int32 (n, k), in-neighbour ids of each peer; padding slots hold the
            peer's own id.
        weights: float32 (n, k), the mixing weight of each in-neighbour; 0 on padding slots.
        self_weight: float32 (n,), the weight each peer gives itself.
    """

    neighbours: np.ndarray
    weights: np.ndarray
    self_weight: np.ndarray


def sorted_unique(codes: np.ndarray) -> np.ndarray:
    """``np.unique`` of an int array by sort and compare: O(E log E), and many times faster
    than numpy 2.3's hash-based ``unique`` on millions of edge codes."""
    codes = np.sort(codes, kind="stable")
    return codes[np.concatenate([[True], codes[1:] != codes[:-1]])] if codes.size else codes


def pack_edges(n: int, src: np.ndarray, dst: np.ndarray, k: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Packs directed edges ``src -> dst`` into padded in-neighbour arrays.

    Self loops and duplicate edges are dropped. In-neighbours are sorted by id; when a peer
    has more than ``k`` of them, the ``k`` lowest ids are kept.

    Args:
        n: number of peers.
        src: int (E,), senders.
        dst: int (E,), receivers.
        k: number of slots; None uses the largest in-degree (at least 1).

    Returns:
        ``(neighbours, mask)``: int64 (n, k) with own ids on padding slots, bool (n, k).
    """
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    keep = src != dst
    code = sorted_unique(dst[keep] * n + src[keep])  # sorted by (dst, src), deduplicated
    dst, src = code // n, code % n
    counts = np.bincount(dst, minlength=n)
    if k is None:
        k = max(1, int(counts.max(initial=0)))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(dst.size) - starts[dst]
    fits = slot < k
    neighbours = np.repeat(np.arange(n, dtype=np.int64)[:, None], k, axis=1)
    mask = np.zeros((n, k), dtype=bool)
    neighbours[dst[fits], slot[fits]] = src[fits]
    mask[dst[fits], slot[fits]] = True
    return neighbours, mask


def undirected_edges(i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both directions of undirected edges ``i -- j``, as ``(src, dst)``."""
    return np.concatenate([i, j]), np.concatenate([j, i])


def is_undirected(neighbours: np.ndarray, mask: np.ndarray) -> bool:
    """Whether a packed graph has the edge ``j -> i`` for each edge ``i -> j``."""
    n = neighbours.shape[0]
    dst = np.repeat(np.arange(n), neighbours.shape[1])[mask.ravel()]
    src = neighbours[mask]
    forward = sorted_unique(src * n + dst)
    backward = sorted_unique(dst * n + src)
    return bool(np.array_equal(forward, backward))



class Topology:
    """A deterministic function of ``(n, round, seed)`` giving each peer's neighbours and weights.

    Subclasses set the class attributes, validate their options in ``_setup`` (which sets
    ``k``, and ``undirected`` and ``period`` where they differ from the defaults), and give
    the graph of round t with ``_edges(t)``; static subclasses call ``_set_static`` instead.

    Attributes:
        name: the topology's name in ``TOPOLOGIES``.
        n: number of peers.
        k: in-neighbour slots per peer (self excluded), the same in every round.
        seed: the seed every random choice derives from (with the round).
        weights: the weight scheme in use (``"uniform"``, ``"metropolis"`` or ``"push"``).
        options: the topology's options, defaults filled in.
        time_varying: whether the graph changes from round to round.
        undirected: whether every round's graph is undirected.
        symmetric: whether every round's W is symmetric (and so doubly stochastic).
        period: 1 for static graphs, the period of a periodic time-varying one, None when
            random.
    """

    name: ClassVar[str] = ""
    OPTIONS: ClassVar[dict[str, Any]] = {}
    time_varying: ClassVar[bool] = False
    regular: ClassVar[bool] = True  # every edge joins peers of equal degree -> uniform default

    def __init__(self, n: int, *, seed: int = 0, weights: str | None = None,
                 **options: Any) -> None:
        self.n = check_int("n", n, 2)
        self.seed = check_int("seed", seed, 0)
        self.options = resolve_options(f"topology {self.name!r}", options, self.OPTIONS)
        self.k = 1
        self.undirected = True
        self.period: int | None = 1
        self._static: tuple[np.ndarray, np.ndarray] | None = None
        self._setup(**self.options)
        if self._static is not None:
            self.undirected = is_undirected(*self._static)
        default = "uniform" if self.regular or not self.undirected else "metropolis"
        self.weights = resolve_weights(weights, default=default, undirected=self.undirected,
                                       topology=self.name)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self.symmetric = self._is_symmetric()

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return (f"{type(self).__name__}(n={self.n}, seed={self.seed}, "
                f"weights={self.weights!r}{opts})")

    # -- for subclasses ------------------------------------------------------------------------

    def _setup(self, **options: Any) -> None:
        """Validates the options and builds what the graph needs (sets ``k``)."""

    def _edges(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """The packed graph ``(neighbours (n, k), mask (n, k))`` of round t."""
        raise NotImplementedError

    def _set_static(self, src: np.ndarray, dst: np.ndarray) -> None:
        self._static = pack_edges(self.n, src, dst)
        self.k = self._static[0].shape[1]

    def _is_symmetric(self) -> bool:
        if not self.time_varying:
            return is_symmetric_stochastic(self.sparse_matrix(0))
        return self.undirected and (self.weights == "metropolis" or self.regular)

    # -- public --------------------------------------------------------------------------------

    def _mixing(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(neighbours, mask, weights float64, self_weight float64)`` of round t."""
        t = check_int("round", t, 0)
        if self._static is not None:
            t = 0
        if t not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            neighbours, mask = self._static if self._static is not None else self._edges(t)
            weights, self_weight = mixing_weights(self.weights, neighbours, mask)
            self._cache[t] = (neighbours, mask, weights, self_weight)
        return self._cache[t]

    def round_graph(self, t: int) -> RoundGraph:
        """The mixing graph of round t.

        Args:
            t: the round, >= 0.

        Returns:
            A ``RoundGraph`` of int32 (n, k) neighbours, float32 (n, k) weights and float32 (n,)
            self weights. With uniform and Metropolis weights each row's self weight plus its
            weights sum to 1; with push weights the columns of W sum to 1 instead.
        """
        neighbours, _, weights, self_weight = self._mixing(t)
        return RoundGraph(neighbours.astype(np.int32), weights.astype(np.float32),
                          self_weight.astype(np.float32))

    def out_neighbours(self, t: int) -> list[np.ndarray]:
        """Each peer's out-neighbours in round t (where a peer sends its message).

        Args:
            t: the round, >= 0.

        Returns:
            A list of n sorted int64 arrays; entry j holds the peers that have j as an
            in-neighbour in round t.
        """
        neighbours, mask, _, _ = self._mixing(t)
        receivers = np.repeat(np.arange(self.n), self.k)[mask.ravel()]
        senders = neighbours[mask]
        order = np.lexsort((receivers, senders))
        split = np.cumsum(np.bincount(senders, minlength=self.n))[:-1]
        return np.split(receivers[order], split)

    def share(self, t: int, sender: int, receivers: Iterable[int]) -> float:
        """The total weight ``sum_i W_t[i, sender]`` over some of the sender's out-neighbours.

        Args:
            t: the round, >= 0.
            sender: the peer whose message it is.
            receivers: out-neighbours of ``sender`` in round t.

        Returns:
            The weight the sender's message carries to those receivers (float64).
        """
        neighbours, mask, weights, _ = self._mixing(t)
        return float(sum(weights[i][mask[i] & (neighbours[i] == sender)].sum()
                         for i in receivers))

    def sparse_matrix(self, t: int) -> scipy.sparse.csr_array:
        """The mixing matrix W_t as a sparse matrix: O(n·k) memory, at any n.

        Args:
            t: the round, >= 0.

        Returns:
            float64 (n, n) CSR: row i holds the weights peer i gives to each peer j, W[i, i]
            its self weight.
        """
        neighbours, mask, weights, self_weight = self._mixing(t)
        rows = np.repeat(np.arange(self.n), self.k)[mask.ravel()]
        ids = np.arange(self.n)
        return scipy.sparse.csr_array(
            (np.concatenate([weights[mask], self_weight]),
             (np.concatenate([rows, ids]), np.concatenate([neighbours[mask], ids]))),
            shape=(self.n, self.n))

    def matrix(self, t: int) -> np.ndarray:
        """The dense mixing matrix W_t, for analysis only (``sparse_matrix`` at any size).

        Args:
            t: the round, >= 0.

        Returns:
            float64 (n, n): row i holds the weights peer i gives to each peer j, W[i, i] its
            self weight.

        Raises:
            ConfigError: when n > ``DENSE_MAX`` (the matrix would not fit in memory).
        """
        check_dense(self.n, "the dense mixing matrix")
        return self.sparse_matrix(t).toarray()


DENSE_MAX = 16_384
"""The largest n for which dense n×n analysis (``Topology.matrix``) is allowed: 2 GiB of
float64. Runs never build it; beyond this, analysis goes sparse or refuses."""


def check_dense(n: int, what: str) -> None:
    """Raises ``ConfigError`` (one line) when an n×n float64 array would exceed ``DENSE_MAX``.

    Args:
        n: number of peers.
        what: what needs the array, for the message.
    """
    if n > DENSE_MAX:
        raise ConfigError(f"{what} of {n} peers needs {n * n * 8 / 2**30:.1f} GiB "
                          f"(n×n float64); dense analysis is limited to n <= {DENSE_MAX}")


def is_symmetric_stochastic(w: scipy.sparse.sparray, atol: float = 1e-12) -> bool:
    """Whether a sparse W is symmetric with rows summing to 1 (so doubly stochastic).

    Args:
        w: float (n, n) sparse mixing matrix.
        atol: absolute tolerance on each entry and row sum.

    Returns:
        True when ``|W - Wᵀ| <= atol`` entrywise and every row sums to 1 within ``atol``.
    """
    w = scipy.sparse.csr_array(w)
    diff = abs(w - w.T)
    sym = diff.nnz == 0 or float(diff.max()) <= atol
    return bool(sym and np.allclose(w.sum(axis=1), 1.0, atol=atol, rtol=0))
