"""Spectral analysis of mixing matrices: SLEM, spectral gap, rounds to consensus.

These functions work on dense (n, n) matrices and are meant for analysis, not training. They
stay fast up to n of about 1024 for ring-like graphs: static symmetric graphs use a closed
form, other static graphs a doubling search over matrix powers (O(n^3 log t)), and
time-varying ones iterate the product with the gather form of W_t (O(n^2 k) a round) and
compute an exact spectral norm only when cheap bounds cannot decide. Beyond
``DENSE_MAX`` peers nothing dense is built: the SLEM of a static W (and the rounds to
consensus of a symmetric one) comes from ARPACK on the sparse W, and what needs a dense
product (rounds to consensus of a non-symmetric or time-varying W) refuses in one line.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from gossip.errors import ConfigError
from gossip.topology.base import DENSE_MAX, Topology, check_dense, is_symmetric_stochastic


def _norm2(a: np.ndarray) -> float:
    """Spectral norm of a dense matrix (via the top eigenvalue of AᵀA for large ones)."""
    n = a.shape[0]
    if n <= 128:
        return float(np.linalg.norm(a, 2))
    top = scipy.linalg.eigh(a.T @ a, eigvals_only=True, subset_by_index=[n - 1, n - 1])
    return math.sqrt(max(float(top[0]), 0.0))


ROUNDING = 1e-9
"""A spectral gap above ``-ROUNDING`` and below 0 is float rounding of 0 (``gap_of``)."""


def slem(w: np.ndarray) -> float:
    """Second largest eigenvalue modulus, ‖W − 11ᵀ/n‖₂ (the spectral norm).

    Args:
        w: float (n, n) mixing matrix.

    Returns:
        The norm; for a symmetric doubly stochastic W it is the largest |eigenvalue| after 1.
    """
    w = np.asarray(w, dtype=np.float64)
    a = w - 1.0 / w.shape[0]
    if np.allclose(a, a.T, rtol=0, atol=1e-12):
        return float(np.abs(np.linalg.eigvalsh((a + a.T) / 2)).max())
    return _norm2(a)


ARPACK_ITERATIONS = 50
"""Restarts ARPACK may take for a sparse SLEM before ``sparse_slem`` gives up in one line."""


def sparse_slem(w: scipy.sparse.sparray) -> float:
    """``slem`` of a sparse W without building ``W − 11ᵀ/n`` densely (ARPACK, O(n·k) a step).

    Args:
        w: float (n, n) sparse mixing matrix.

    Returns:
        ‖W − 11ᵀ/n‖₂.

    Raises:
        ConfigError: when ARPACK does not converge (a gap too small to resolve at this n).
    """
    w = scipy.sparse.csr_array(w, dtype=np.float64)
    n = w.shape[0]
    wt = w.T.tocsr()

    def matvec(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x).reshape(-1)
        return w @ x - x.mean()

    def rmatvec(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x).reshape(-1)
        return wt @ x - x.mean()

    a = scipy.sparse.linalg.LinearOperator((n, n), matvec=matvec, rmatvec=rmatvec,
                                           dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(n)
    try:
        if is_symmetric_stochastic(w):
            vals = scipy.sparse.linalg.eigsh(a, k=1, which="LM", v0=v0, tol=1e-9,
                                             ncv=min(n - 1, 40), maxiter=ARPACK_ITERATIONS,
                                             return_eigenvectors=False)
            return float(abs(vals[0]))
        vals = scipy.sparse.linalg.svds(a, k=1, v0=v0, tol=1e-9, ncv=min(n - 1, 40),
                                        maxiter=ARPACK_ITERATIONS,
                                        return_singular_vectors=False)
        return float(vals[0])
    except scipy.sparse.linalg.ArpackNoConvergence as e:
        raise ConfigError(f"the SLEM of a {n}-peer W did not converge (ARPACK); its spectral "
                          "gap is too small to resolve at this size") from e


def _slem_of(topo: Topology, t: int) -> float:
    """The SLEM of W_t: dense up to ``DENSE_MAX`` peers, sparse beyond."""
    if topo.n <= DENSE_MAX:
        return slem(topo.matrix(t))
    return sparse_slem(topo.sparse_matrix(t))


def spectral_gap(w: np.ndarray) -> float:
    """``1 - slem(w)``.

    Args:
        w: float (n, n) mixing matrix.

    Returns:
        The spectral gap (larger mixes faster): ``gap_of(slem(w))``.
    """
    return gap_of(slem(w))


def gap_of(s: float) -> float:
    """``1 - s`` for a SLEM ``s``, with 0 where float rounding alone makes it negative (a SLEM
    of exactly 1 computed as 1 + 1e-16). A SLEM clearly above 1 (weights that are not doubly
    stochastic) keeps its negative gap."""
    gap = 1.0 - s
    return 0.0 if -ROUNDING < gap < 0.0 else gap


def _dist(p: np.ndarray, tol: float) -> tuple[bool, bool]:
    """``(‖P − J‖₂ <= tol, P has reached a consensus other than J)``."""
    n = p.shape[0]
    a = p - 1.0 / n
    frob = float(np.linalg.norm(a))
    if frob <= tol:
        return True, False
    lower = float(np.sqrt(max((a * a).sum(axis=0).max(), (a * a).sum(axis=1).max())))
    upper = math.sqrt(float(np.abs(a).sum(axis=0).max() * np.abs(a).sum(axis=1).max()))
    if upper <= tol or (lower <= tol and _norm2(a) <= tol):
        return True, False
    # rows (or columns) all equal: products of row- (column-) stochastic W stay there
    rows = float(np.linalg.norm(p - p.mean(axis=0)))
    cols = float(np.linalg.norm(p - p.mean(axis=1, keepdims=True)))
    return False, min(rows, cols) <= tol * 1e-3


def rounds_to_consensus(topo: Topology, tol: float = 1e-6, cap: int = 100_000) -> int:
    """Smallest t with ‖W_t ⋯ W_1 − 11ᵀ/n‖₂ <= tol, W_1 being the matrix of round 0.

    Only meaningful for row-stochastic weights whose products tend to 11ᵀ/n (doubly
    stochastic ones, e.g. uniform on regular or Metropolis on undirected graphs). Products
    that settle on another consensus (e.g. uniform weights on a star, epidemic graphs, push
    weights) are detected and return ``cap``. The doubling search for static non-symmetric W
    assumes the distance does not grow with t (true for doubly stochastic W).

    Args:
        topo: the topology (its weights are used).
        tol: the tolerance on the spectral norm.
        cap: returned when the tolerance is not reached within ``cap`` rounds.

    Returns:
        The number of rounds, in ``[1, cap]``.
    """
    if topo.n > DENSE_MAX and not topo.time_varying and topo.symmetric:
        return _symmetric_rounds(sparse_slem(topo.sparse_matrix(0)), tol, cap)
    check_dense(topo.n, "rounds to consensus of a non-symmetric or time-varying W")
    if not topo.time_varying:
        return _static_rounds(topo.matrix(0), tol, cap)
    n = topo.n
    p = np.eye(n)
    for t in range(1, cap + 1):
        neighbours, _, weights, self_weight = topo._mixing(t - 1)
        p = self_weight[:, None] * p + np.einsum("ik,ikj->ij", weights, p[neighbours])
        done, stuck = _dist(p, tol)
        if done:
            return t
        if stuck:
            return cap
    return cap


def _symmetric_rounds(s: float, tol: float, cap: int) -> int:
    """Rounds to consensus of a static symmetric doubly stochastic W of SLEM s: s^t <= tol."""
    if s <= 1e-300:
        return 1
    if s >= 1 - 1e-15:
        return cap
    return int(min(cap, max(1, math.ceil(math.log(tol) / math.log(s) - 1e-9))))


def _static_rounds(w: np.ndarray, tol: float, cap: int) -> int:
    if np.allclose(w, w.T, rtol=0, atol=1e-12) and np.allclose(w.sum(axis=1), 1, atol=1e-12):
        return _symmetric_rounds(slem(w), tol, cap)
    powers = [w]  # powers[i] = W^(2^i)
    done, stuck = _dist(w, tol)
    if done:
        return 1
    while not done:
        if stuck or 2 ** len(powers) > 2 * cap:
            return cap
        powers.append(powers[-1] @ powers[-1])
        done, stuck = _dist(powers[-1], tol)
    # the answer lies in (2^(m-1), 2^m] with m = len(powers) - 1: binary search from below
    lo, p = 2 ** (len(powers) - 2), powers[-2]
    for i in reversed(range(len(powers) - 2)):
        q = p @ powers[i]
        if not _dist(q, tol)[0]:
            lo, p = lo + 2**i, q
    return min(cap, lo + 1)


def average_slem(topo: Topology, rounds: int | None = None) -> float:
    """SLEM of W_t averaged over rounds (just the SLEM of W for a static graph).

    Args:
        topo: the topology.
        rounds: how many rounds from round 0; default max(period, 50).

    Returns:
        The mean of ``slem(topo.matrix(t))``.
    """
    if not topo.time_varying:
        return _slem_of(topo, 0)
    rounds = rounds or max(topo.period or 1, 50)
    if topo.period is None:
        return float(np.mean([_slem_of(topo, t) for t in range(rounds)]))
    # periodic: each phase once, weighted by how often it occurs in the first `rounds` rounds
    phases = min(rounds, topo.period)
    counts = np.bincount(np.arange(rounds) % topo.period, minlength=phases)[:phases]
    return float(np.average([_slem_of(topo, t) for t in range(phases)], weights=counts))
