"""The topology registry and the ``make_topology`` factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gossip.errors import unknown
from gossip.topology.base import Topology
from gossip.topology.edge_list import EdgeList
from gossip.topology.static import (
    Complete,
    ErdosRenyi,
    Exponential,
    RandomRegular,
    Ring,
    Star,
    Torus,
)
from gossip.topology.time_varying import Epidemic, OnePeerExponential, RandomMatching

TOPOLOGIES: dict[str, Callable[..., Topology]] = {
    cls.name: cls
    for cls in (Ring, Torus, Exponential, OnePeerExponential, Complete, Star, ErdosRenyi,
                RandomRegular, RandomMatching, Epidemic, EdgeList)
}
"""Topology name -> factory ``(n, *, seed, weights, **options) -> Topology``."""


def make_topology(name: str, n: int, *, seed: int = 0, weights: str | None = None,
                  **options: Any) -> Topology:
    """Builds a topology by name.

    Args:
        name: one of ``TOPOLOGIES``.
        n: number of peers, >= 2.
        seed: seed of every random choice (combined with the round), >= 0.
        weights: ``"uniform"``, ``"metropolis"``, ``"push"``, or None / ``"default"`` for the
            topology's default (uniform on regular graphs, Metropolis–Hastings on irregular
            undirected ones).
        **options: the topology's own options (e.g. ``p`` for ``erdos_renyi``).

    Returns:
        The topology; the same arguments always give the same graphs.

    Raises:
        ConfigError: unknown name, weights or option, or a bad value.
    """
    if name not in TOPOLOGIES:
        raise unknown("topology", name, TOPOLOGIES)
    return TOPOLOGIES[name](n, seed=seed, weights=weights, **options)
