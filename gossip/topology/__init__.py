"""Topologies: each peer's in-neighbours, out-neighbours and mixing weights for round t.

A topology is a deterministic function of ``(n, round, seed)``, computed on the host with numpy,
so every peer can compute its own row of W_t from the seed alone.
"""

from gossip.topology.analysis import (
    average_slem,
    gap_of,
    rounds_to_consensus,
    slem,
    spectral_gap,
)
from gossip.topology.base import RoundGraph, Topology
from gossip.topology.edge_list import EdgeList, read_edge_list
from gossip.topology.registry import TOPOLOGIES, make_topology
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
from gossip.topology.weights import WEIGHTS

__all__ = [
    "TOPOLOGIES",
    "WEIGHTS",
    "Complete",
    "EdgeList",
    "Epidemic",
    "ErdosRenyi",
    "Exponential",
    "OnePeerExponential",
    "RandomMatching",
    "RandomRegular",
    "Ring",
    "RoundGraph",
    "Star",
    "Topology",
    "Torus",
    "average_slem",
    "gap_of",
    "make_topology",
    "read_edge_list",
    "rounds_to_consensus",
    "slem",
    "spectral_gap",
]
