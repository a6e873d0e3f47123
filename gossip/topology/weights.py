"""Mixing-weight schemes: from a round's packed graph to one row of W_t per peer.

- ``"uniform"``: peer i gives 1/(d_i + 1) to itself and to each of its d_i in-neighbours.
  Row-stochastic; doubly stochastic on regular undirected graphs.
- ``"metropolis"`` (Metropolis–Hastings): w_ij = 1/(1 + max(d_i, d_j)) on each undirected
  edge, the rest to the peer itself. Symmetric and doubly stochastic on any undirected graph;
  not defined on directed graphs.
- ``"push"``: column-stochastic weights for push-sum. Sender j splits its mass evenly over
  itself and its out-neighbours, 1/(outdeg_j + 1) each; row i holds the shares i receives.
  **Rows need not sum to 1** under this scheme, the one exception to the row-stochastic rule.
"""

from __future__ import annotations

import numpy as np

from gossip.errors import ConfigError, unknown

WEIGHTS: tuple[str, ...] = ("uniform", "metropolis", "push")
"""The weight schemes ``make_topology(weights=...)`` accepts (None: the topology's default)."""


def resolve_weights(weights: str | None, *, default: str, undirected: bool, topology: str
                    ) -> str:
    """Checks the weight scheme a user asked for, or picks the topology's default.

    Args:
        weights: one of ``WEIGHTS``, or None / ``"default"`` for ``default``.
        default: the topology's default scheme.
        undirected: whether every round's graph is undirected.
        topology: the topology's name, for messages.

    Returns:
        The scheme, one of ``WEIGHTS``.

    Raises:
        ConfigError: for an unknown scheme, or Metropolis–Hastings on a directed graph.
    """
    if weights is None or weights == "default":
        return default
    if not isinstance(weights, str) or weights not in WEIGHTS:
        raise unknown("weights", weights, ("default", *WEIGHTS))
    if weights == "metropolis" and not undirected:
        raise ConfigError(f"weights 'metropolis' need an undirected graph, but topology "
                          f"{topology!r} is directed; valid choices here: push, uniform")
    return weights


def mixing_weights(scheme: str, neighbours: np.ndarray, mask: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Computes the mixing weights of one round.

    Args:
        scheme: one of ``WEIGHTS``.
        neighbours: int (n, k) in-neighbour ids, own id on padding slots.
        mask: bool (n, k), True on real (non-padding) slots.

    Returns:
        ``(weights, self_weight)``: float64 (n, k) in-neighbour weights (0 on padding slots)
        and float64 (n,) self weights.

    Raises:
        ConfigError: for an unknown scheme.
    """
    n = neighbours.shape[0]
    deg = mask.sum(axis=1)
    if scheme == "uniform":
        share = 1.0 / (deg + 1.0)
        return np.where(mask, share[:, None], 0.0), share
    if scheme == "metropolis":
        weights = np.where(mask, 1.0 / (1.0 + np.maximum(deg[:, None], deg[neighbours])), 0.0)
        return weights, 1.0 - weights.sum(axis=1)
    if scheme == "push":
        out_deg = np.bincount(neighbours[mask], minlength=n)
        share = 1.0 / (out_deg + 1.0)
        return np.where(mask, share[neighbours], 0.0), share
    raise unknown("weights", scheme, WEIGHTS)
