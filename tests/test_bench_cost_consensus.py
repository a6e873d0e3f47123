"""The benchmark suite's cost model and pure-gossip consensus measurement (hand-computed)."""

import numpy as np
import pytest

from gossip.bench.consensus import contraction_rate, gossip_distances, measure_consensus
from gossip.bench.cost_model import out_degrees, peer_finish_times, round_times, send_times
from gossip.topology import make_topology, slem

# 1 MB messages on 1 Gbit/s: 8 ms per message on the uplink; 1 ms latency; 2 ms compute
MSG, BW, LAT, COMPUTE = 1_000_000, 1e9, 1e-3, 2e-3


def test_send_time_is_latency_plus_shared_uplink():
    np.testing.assert_allclose(send_times(np.array([0, 1, 2, 7]), MSG, LAT, BW),
                               [0.0, 0.009, 0.017, 0.057])


def test_ring_vs_star_round_time():
    ring = make_topology("ring", 8)
    star = make_topology("star", 8)
    # ring: every peer sends 2 messages -> 2 + 1 + 2 * 8 = 19 ms
    np.testing.assert_allclose(round_times(ring, 3, COMPUTE, MSG, LAT, BW), [0.019] * 3)
    # star: the hub sends 7 messages -> the leaves wait 2 + 1 + 7 * 8 = 59 ms
    np.testing.assert_allclose(round_times(star, 3, COMPUTE, MSG, LAT, BW), [0.059] * 3)


def test_slowest_in_neighbour_dominates():
    star = make_topology("star", 8)
    nb = star.round_graph(0).neighbours
    in_nb = [row[row != i] for i, row in enumerate(nb)]
    finish = peer_finish_times(in_nb, out_degrees(star, 1)[0], COMPUTE, MSG, LAT, BW)
    # the hub hears from leaves (1 message each: 9 ms); the leaves wait for the hub (57 ms)
    np.testing.assert_allclose(finish, [0.011] + [0.059] * 7)
    # a peer with a fast and a slow in-neighbour waits for the slow one
    finish = peer_finish_times([np.array([1, 2]), np.array([], int), np.array([0])],
                               np.array([1, 1, 5]), COMPUTE, MSG, LAT, BW)
    np.testing.assert_allclose(finish, [0.002 + 0.041, 0.002, 0.002 + 0.009])


def test_time_varying_round_times_and_degrees():
    topo = make_topology("random_matching", 10, seed=3)
    np.testing.assert_allclose(round_times(topo, 5, COMPUTE, MSG, LAT, BW), [0.011] * 5)
    epi = make_topology("epidemic", 16, s=3, seed=1)
    deg = out_degrees(epi, 6)
    assert deg.shape == (6, 16) and deg.max() <= 3
    for t in range(6):
        assert deg[t].sum() == (epi.round_graph(t).neighbours != np.arange(16)[:, None]).sum()


def test_complete_graph_contracts_to_zero_in_one_round():
    d, drift = gossip_distances(make_topology("complete", 16), 3, 8)
    assert d[0] > 1 and d[1] < 1e-24 * d[0] and drift < 1e-12
    assert contraction_rate(d) == 0.0


def test_ring_contraction_approaches_slem_squared():
    ring = make_topology("ring", 16)
    s = slem(ring.matrix(0))
    d, _ = gossip_distances(ring, 300, 16, seed=1)
    ratios = d[1:] / d[:-1]
    assert ratios[0] < s**2 - 0.05  # early rounds contract faster (fast modes die out)
    assert ratios[-1] == pytest.approx(s**2, abs=1e-4)
    assert contraction_rate(d) == pytest.approx(s**2, abs=1e-3)


def test_contraction_rate_of_a_geometric_sequence():
    assert contraction_rate(0.5 ** np.arange(40)) == pytest.approx(0.5)
    assert contraction_rate(0.2 ** np.arange(60)) == pytest.approx(0.2, rel=0.05)


def test_measure_consensus_rows():
    one_peer = measure_consensus(make_topology("one_peer_exponential", 16), 20, 4)
    assert one_peer["distances"][4] < 1e-24 and one_peer["period_theory"] < 1e-6
    assert one_peer["doubly_stochastic"] and one_peer["rounds_to_consensus"] == 4
    matching = measure_consensus(make_topology("random_matching", 16, seed=2), 100, 8)
    assert matching["slem"] == pytest.approx(1.0) and matching["period_theory"] is None
    assert matching["measured_contraction"] < matching["mean_square_theory"] + 0.1 < 1
    epidemic = measure_consensus(make_topology("epidemic", 16, s=4, seed=0), 100, 8)
    assert not epidemic["doubly_stochastic"] and epidemic["mean_drift"] > 1e-3
    assert epidemic["rounds_to_consensus"] == 100_000  # the analysis' cap
    star = measure_consensus(make_topology("star", 16), 200, 8)
    assert star["measured_contraction"] == pytest.approx(star["slem_squared"], abs=1e-3)
