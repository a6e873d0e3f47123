"""Pure-gossip consensus: the measured per-round contraction of consensus distance vs theory.

No training: every peer starts from a random vector and each round replaces it with its row of
W_t applied to the stack, x ← W_t x, in the gather form the simulator uses (float64, numpy).
The consensus distance D_t = 1/n Σ_i ‖x_i − x̄_t‖² then shrinks; for a static symmetric
doubly stochastic W its asymptotic per-round ratio D_{t+1}/D_t is SLEM², where
SLEM = ‖W − 11ᵀ/n‖₂ (``gossip.topology.analysis``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gossip.topology import Topology, average_slem, rounds_to_consensus, slem

FLOOR = 1e-28
"""Relative consensus distance treated as exact consensus (float64 round-off)."""


def gossip_distances(topo: Topology, rounds: int, dim: int, seed: int = 0
                     ) -> tuple[np.ndarray, float]:
    """Mixes random vectors with the topology's W_t for ``rounds`` rounds.

    Args:
        topo: the topology (its own weights).
        rounds: rounds of mixing, T.
        dim: length of each peer's vector, d.
        seed: seeds the initial vectors (standard normal, (n, d)).

    Returns:
        ``(distances, drift)``: float64 (T + 1,) consensus distances D_0..D_T, and the
        relative drift of the average ‖x̄_T − x̄_0‖ / ‖x̄_0‖ (0 for doubly stochastic W).
    """
    x = np.random.default_rng(seed).standard_normal((topo.n, dim))
    mean0 = x.mean(axis=0)
    distances = np.empty(rounds + 1)
    distances[0] = _distance(x)
    for t in range(rounds):
        g = topo.round_graph(t)
        w = g.weights.astype(np.float64)
        # the gossip rules renormalise each row over the messages received
        total = g.self_weight.astype(np.float64) + w.sum(axis=1)
        x = (g.self_weight[:, None] * x + np.einsum("ik,ikd->id", w, x[g.neighbours])) \
            / total[:, None]
        distances[t + 1] = _distance(x)
    drift = float(np.linalg.norm(x.mean(axis=0) - mean0) / np.linalg.norm(mean0))
    return distances, drift


def _distance(x: np.ndarray) -> float:
    return float(np.mean(np.sum((x - x.mean(axis=0)) ** 2, axis=1)))


def contraction_rate(distances: np.ndarray, tail: float = 0.5) -> float:
    """Measured per-round contraction of D_t: the geometric mean of D_{t+1}/D_t over the last
    ``tail`` share of the rounds before D_t / D_0 falls below ``FLOOR``.

    Args:
        distances: (T + 1,) consensus distances.
        tail: share of those rounds to average over (the asymptotic regime).

    Returns:
        The rate in [0, ∞); 0 when consensus is exact within one round.
    """
    d = np.asarray(distances, dtype=np.float64)
    alive = np.nonzero(d > FLOOR * d[0])[0]
    last = int(alive[-1]) if alive.size else 0
    if last + 1 < len(d):  # reached the floor at round last + 1: exact consensus
        if last == 0:
            return 0.0
        return float((d[last + 1] / d[0]) ** (1.0 / (last + 1)))
    first = max(0, min(last - 1, int(math.floor(last * (1 - tail)))))
    return float((d[last] / d[first]) ** (1.0 / (last - first)))


def mean_square_theory(topo: Topology, rounds: int) -> float:
    """λ_max of the mean over rounds of (W_t − J)ᵀ(W_t − J), J = 11ᵀ/n.

    For a static W this is ‖W − J‖₂² = SLEM²; for W_t drawn independently each round it
    bounds E[D_{t+1}] / D_t for doubly stochastic W_t (the random-gossip analysis).

    Args:
        topo: the topology.
        rounds: rounds averaged over (one period suffices for a periodic topology).

    Returns:
        The predicted per-round contraction of D_t.
    """
    n = topo.n
    j = np.full((n, n), 1.0 / n)
    count = 1 if not topo.time_varying else min(rounds, topo.period or rounds)
    m = np.zeros((n, n))
    for t in range(count):
        w = topo.matrix(t)
        w = w / w.sum(axis=1, keepdims=True)
        a = w - j
        m += a.T @ a
    return float(np.linalg.eigvalsh(m / count).max())


def period_theory(topo: Topology) -> float | None:
    """‖W_{τ−1}⋯W_0 − J‖₂^(2/τ) over one period τ: the per-round contraction of D_t that a
    periodic topology guarantees (SLEM² for a static one); None for random topologies."""
    if topo.period is None:
        return None
    p = np.eye(topo.n)
    for t in range(topo.period):
        p = topo.matrix(t) @ p
    return float(slem(p) ** (2.0 / topo.period))


def measure_consensus(topo: Topology, rounds: int, dim: int, seed: int = 0) -> dict[str, Any]:
    """The consensus row of one topology: theory and measurement side by side.

    Args:
        topo: the topology.
        rounds: rounds of pure gossip.
        dim: vector length per peer.
        seed: seeds the initial vectors.

    Returns:
        A dict with ``slem`` (``average_slem``), ``slem_squared``, ``mean_square_theory``,
        ``period_theory`` (None for random topologies), ``rounds_to_consensus`` (analysis, tol
        1e-6, cap 100000),
        ``measured_contraction`` (of D_t per round), ``measured_rate`` (its square root,
        comparable with the SLEM), ``doubly_stochastic``, ``mean_drift`` and ``distances``
        (D_t / D_0, T + 1 floats).
    """
    distances, drift = gossip_distances(topo, rounds, dim, seed)
    measured = contraction_rate(distances)
    s = average_slem(topo)
    sampled = [topo.matrix(t) for t in range(min(rounds, topo.period or 20))]
    doubly = all(np.allclose(w.sum(axis=0), 1, atol=1e-9) and
                 np.allclose(w.sum(axis=1), 1, atol=1e-9) for w in sampled)
    return {
        "topology": topo.name,
        "n": topo.n,
        "weights": topo.weights,
        "time_varying": topo.time_varying,
        "doubly_stochastic": doubly,
        "slem": s,
        "slem_squared": s * s,
        "mean_square_theory": mean_square_theory(topo, rounds),
        "period_theory": period_theory(topo),
        "measured_contraction": measured,
        "measured_rate": math.sqrt(measured),
        "mean_drift": drift,
        "rounds_to_consensus": rounds_to_consensus(topo),
        "distances": [float(v) for v in distances / distances[0]],
    }
