"""Spectral analysis: SLEM, spectral gap, rounds to consensus (closed form vs brute force)."""

import math
import time

import numpy as np
import pytest

from gossip.topology import (
    average_slem,
    make_topology,
    rounds_to_consensus,
    slem,
    spectral_gap,
)

TOL = 1e-6


def brute_rounds(topo, tol: float = TOL, cap: int = 10_000) -> int:
    """Iterates the product W_t ... W_1 and measures the exact spectral norm every round."""
    n = topo.n
    p = np.eye(n)
    for t in range(1, cap + 1):
        p = topo.matrix(t - 1) @ p
        if np.linalg.norm(p - 1.0 / n, 2) <= tol:
            return t
    return cap


@pytest.mark.parametrize("n", [3, 5, 16, 33])
def test_uniform_ring_slem_closed_form(n):
    w = make_topology("ring", n).matrix(0)
    assert slem(w) == pytest.approx(1 / 3 + 2 / 3 * math.cos(2 * math.pi / n), abs=1e-12)
    assert spectral_gap(w) == pytest.approx(1 - slem(w))


def test_complete_graph_mixes_in_one_round():
    topo = make_topology("complete", 12)
    assert slem(topo.matrix(0)) == pytest.approx(0, abs=1e-12)
    assert rounds_to_consensus(topo) == 1


@pytest.mark.parametrize("name, n", [("ring", 8), ("star", 9), ("torus", 16),
                                     ("random_regular", 12), ("erdos_renyi", 10)])
def test_closed_form_matches_brute_force_symmetric(name, n):
    topo = make_topology(name, n, seed=1)
    assert topo.symmetric and not topo.time_varying
    assert rounds_to_consensus(topo) == brute_rounds(topo)


@pytest.mark.parametrize("n", [6, 12, 13])
def test_doubling_search_matches_brute_force_non_symmetric(n):
    topo = make_topology("exponential", n)
    assert not topo.symmetric
    assert rounds_to_consensus(topo) == brute_rounds(topo)
    assert rounds_to_consensus(topo, tol=1e-3) == brute_rounds(topo, tol=1e-3)


@pytest.mark.parametrize("name, n", [("one_peer_exponential", 12), ("random_matching", 10),
                                     ("random_matching", 7)])
def test_time_varying_matches_brute_force(name, n):
    topo = make_topology(name, n, seed=5)
    assert rounds_to_consensus(topo) == brute_rounds(topo)


def test_one_peer_exponential_is_exact_for_powers_of_two():
    assert rounds_to_consensus(make_topology("one_peer_exponential", 16)) == 4


def test_cap_when_consensus_is_not_the_average():
    start = time.perf_counter()
    assert rounds_to_consensus(make_topology("star", 8, weights="uniform"), cap=500) == 500
    assert rounds_to_consensus(make_topology("epidemic", 16, seed=1)) == 100_000
    assert rounds_to_consensus(make_topology("ring", 64), cap=50) == 50
    assert time.perf_counter() - start < 5  # the fixed points are detected, not iterated to cap


def test_average_slem():
    ring = make_topology("ring", 10)
    assert average_slem(ring) == pytest.approx(slem(ring.matrix(0)))
    one = make_topology("one_peer_exponential", 12)
    brute = np.mean([slem(one.matrix(t)) for t in range(50)])
    assert average_slem(one) == pytest.approx(brute)
    matching = make_topology("random_matching", 8, seed=2)
    brute = np.mean([slem(matching.matrix(t)) for t in range(7)])
    assert average_slem(matching, rounds=7) == pytest.approx(brute)


def test_large_ring_like_graphs_are_fast():
    start = time.perf_counter()
    assert rounds_to_consensus(make_topology("ring", 512)) == 100_000  # slem^t too slow
    assert rounds_to_consensus(make_topology("one_peer_exponential", 512)) == 9
    assert rounds_to_consensus(make_topology("exponential", 256)) > 1
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize("name", ["ring", "exponential", "erdos_renyi", "star"])
def test_sparse_slem_matches_the_dense_one(name):
    from gossip.topology.analysis import sparse_slem
    topo = make_topology(name, 40)
    assert sparse_slem(topo.sparse_matrix(0)) == pytest.approx(slem(topo.matrix(0)), abs=1e-8)


def test_above_the_dense_limit_analysis_goes_sparse_or_refuses_in_one_line(monkeypatch):
    from gossip.errors import ConfigError
    from gossip.topology import analysis, base
    monkeypatch.setattr(analysis, "DENSE_MAX", 32)
    monkeypatch.setattr(base, "DENSE_MAX", 32)
    ring = make_topology("ring", 48)
    expected = (1 + 2 * math.cos(2 * math.pi / 48)) / 3
    assert average_slem(ring) == pytest.approx(expected, abs=1e-9)
    assert rounds_to_consensus(ring) == math.ceil(math.log(TOL) / math.log(expected))
    with pytest.raises(ConfigError, match="rounds to consensus of a non-symmetric.*48 peers"):
        rounds_to_consensus(make_topology("exponential", 48))
