"""Conformance suite: every topology in TOPOLOGIES must pass every test here."""

from pathlib import Path

import numpy as np
import pytest

from gossip.errors import ConfigError
from gossip.topology import TOPOLOGIES, RoundGraph, Topology, make_topology

N = 16
ROUNDS = (0, 1, 2, 5, 17)
RANDOM = ("erdos_renyi", "random_regular", "random_matching", "epidemic")
DIRECTED = ("exponential", "one_peer_exponential", "epidemic")
# a connected irregular graph on 16 peers: a ring plus chords
EDGES = "\n".join([f"{i} {(i + 1) % N}" for i in range(N)] + ["0 8", "3 11  # chord", "0 5"])


@pytest.fixture(scope="module")
def edge_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("edges") / "graph.txt"
    path.write_text("# test graph\n" + EDGES + "\n\n")
    return path


def build(name: str, edge_file: Path, seed: int = 0, **kw) -> Topology:
    if name == "edge_list":
        kw.setdefault("path", str(edge_file))
    return make_topology(name, N, seed=seed, **kw)


def own() -> np.ndarray:
    return np.arange(N)[:, None]


@pytest.fixture(params=sorted(TOPOLOGIES))
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_shapes_and_dtypes_fixed_across_rounds(name, edge_file):
    topo = build(name, edge_file)
    assert topo.name == name and topo.n == N and 1 <= topo.k <= N - 1
    for t in ROUNDS:
        g = topo.round_graph(t)
        assert isinstance(g, RoundGraph)
        assert g.neighbours.shape == (N, topo.k) and g.neighbours.dtype == np.int32
        assert g.weights.shape == (N, topo.k) and g.weights.dtype == np.float32
        assert g.self_weight.shape == (N,) and g.self_weight.dtype == np.float32
        assert topo.matrix(t).shape == (N, N) and topo.matrix(t).dtype == np.float64


def test_padding_slots_and_no_self_loops(name, edge_file):
    topo = build(name, edge_file)
    for t in ROUNDS:
        g = topo.round_graph(t)
        pad = g.neighbours == own()
        assert np.all(g.weights[pad] == 0)
        assert np.all(g.weights[~pad] > 0)
        assert np.all((g.neighbours >= 0) & (g.neighbours < N))
        real = [set(row[row != i]) for i, row in enumerate(g.neighbours)]
        assert all(len(r) == int((g.neighbours[i] != i).sum()) for i, r in enumerate(real))


def test_default_weights_are_row_stochastic(name, edge_file):
    topo = build(name, edge_file)
    assert topo.weights in ("uniform", "metropolis")
    for t in ROUNDS:
        g = topo.round_graph(t)
        np.testing.assert_allclose(g.self_weight + g.weights.sum(axis=1), 1.0, atol=1e-6)
        assert np.all(g.self_weight > 0)


def test_symmetric_topologies_are_doubly_stochastic(name, edge_file):
    topo = build(name, edge_file)
    assert topo.symmetric == (name not in DIRECTED)
    if not topo.symmetric:
        return
    for t in ROUNDS:
        w = topo.matrix(t)
        np.testing.assert_allclose(w, w.T, atol=1e-12)
        np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-12)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("weights", ["uniform", "metropolis", "push"])
def test_matrix_matches_round_graph(name, edge_file, weights):
    if weights == "metropolis" and name in DIRECTED:
        pytest.skip("metropolis needs an undirected graph")
    topo = build(name, edge_file, weights=weights)
    for t in ROUNDS:
        g = topo.round_graph(t)
        w = np.zeros((N, N))
        np.add.at(w, (np.repeat(np.arange(N), topo.k), g.neighbours.ravel()), g.weights.ravel())
        w[np.arange(N), np.arange(N)] += g.self_weight
        np.testing.assert_allclose(topo.matrix(t), w, atol=1e-6)


def test_push_weights_are_column_stochastic(name, edge_file):
    topo = build(name, edge_file, weights="push")
    for t in ROUNDS:
        w = topo.matrix(t)
        np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-12)
        outs = topo.out_neighbours(t)
        for j in range(N):  # sender j splits its mass evenly over itself and its out-neighbours
            np.testing.assert_allclose(w[outs[j], j], 1.0 / (len(outs[j]) + 1))


@pytest.mark.parametrize("weights", ["default", "push"])
def test_share_is_the_column_of_w_over_the_receivers(name, edge_file, weights):
    topo = build(name, edge_file, weights=weights)
    for t in ROUNDS:
        w, outs = topo.matrix(t), topo.out_neighbours(t)
        for j in range(N):
            some = outs[j][::2]
            np.testing.assert_allclose(topo.share(t, j, some), w[some, j].sum(), atol=1e-12)
        assert topo.share(t, 0, []) == 0.0


def test_out_neighbours_consistent_with_in_neighbours(name, edge_file):
    topo = build(name, edge_file)
    for t in ROUNDS:
        g = topo.round_graph(t)
        outs = topo.out_neighbours(t)
        assert len(outs) == N
        sent = {(j, int(i)) for j in range(N) for i in outs[j]}
        received = {(int(j), i) for i in range(N) for j in g.neighbours[i] if j != i}
        assert sent == received
        assert all(np.all(np.diff(o) > 0) for o in outs)


def test_deterministic_given_seed(name, edge_file):
    a, b = build(name, edge_file, seed=7), build(name, edge_file, seed=7)
    for t in ROUNDS:
        for x, y in zip(a.round_graph(t), b.round_graph(t), strict=True):
            np.testing.assert_array_equal(x, y)
    # a round asked for again, out of order, gives the same graph
    np.testing.assert_array_equal(a.round_graph(1).neighbours, b.round_graph(1).neighbours)


def test_seed_changes_random_topologies_only(name, edge_file):
    a, b = build(name, edge_file, seed=1), build(name, edge_file, seed=2)
    same = all(np.array_equal(a.matrix(t), b.matrix(t)) for t in ROUNDS)
    assert same == (name not in RANDOM)


def test_time_varying_flag_and_period(name, edge_file):
    topo = build(name, edge_file)
    varies = any(not np.array_equal(topo.matrix(0), topo.matrix(t)) for t in ROUNDS[1:])
    assert topo.time_varying == varies
    if not topo.time_varying:
        assert topo.period == 1
    elif topo.period is not None:
        for t in range(topo.period):
            np.testing.assert_array_equal(topo.matrix(t), topo.matrix(t + topo.period))


def test_metropolis_on_directed_graph_is_a_config_error(edge_file):
    for name in DIRECTED:
        with pytest.raises(ConfigError, match="undirected"):
            build(name, edge_file, weights="metropolis")
    with pytest.raises(ConfigError, match="undirected"):
        build("edge_list", edge_file, weights="metropolis", directed=True)


# -- structure of individual topologies ---------------------------------------------------------


def in_sets(topo: Topology, t: int = 0) -> list[set[int]]:
    g = topo.round_graph(t)
    return [{int(j) for j in row if j != i} for i, row in enumerate(g.neighbours)]


def test_ring_torus_complete_star():
    assert in_sets(make_topology("ring", 5))[0] == {1, 4}
    assert make_topology("ring", 2).k == 1
    torus = in_sets(make_topology("torus", 16))
    assert torus[0] == {1, 3, 4, 12} and torus[5] == {1, 4, 6, 9}
    assert make_topology("complete", 6).k == 5
    star = make_topology("star", 6)
    assert in_sets(star)[0] == {1, 2, 3, 4, 5} and in_sets(star)[3] == {0}
    assert star.weights == "metropolis"


def test_exponential_and_one_peer_exponential():
    expo = make_topology("exponential", 12)
    assert in_sets(expo)[0] == {12 - 1, 12 - 2, 12 - 4, 12 - 8}
    assert make_topology("exponential", 9).k == 4  # shifts 1, 2, 4, 8
    one = make_topology("one_peer_exponential", 12)
    assert one.period == 4 and one.k == 1
    for t in range(8):
        assert in_sets(one, t)[0] == {12 - 2 ** (t % 4)}
    assert make_topology("one_peer_exponential", 2).symmetric


def test_random_regular_degree_and_parity():
    topo = make_topology("random_regular", N, d=3, seed=4)
    assert all(len(s) == 3 for s in in_sets(topo))
    assert make_topology("random_regular", 5).k == 4  # default d=4 clipped to n-1
    with pytest.raises(ConfigError, match="n\\*d even"):
        make_topology("random_regular", 7, d=3)


def test_erdos_renyi_is_connected_and_uses_p():
    sparse = make_topology("erdos_renyi", 32, seed=3)
    dense = make_topology("erdos_renyi", 32, seed=3, p=0.9)
    assert dense.k > sparse.k
    w = np.linalg.matrix_power(sparse.matrix(0), 64)
    assert np.all(w > 0)  # connected: W^t becomes positive


def test_random_matching_odd_n_one_sits_out():
    topo = make_topology("random_matching", 7, seed=1)
    for t in range(5):
        g = topo.round_graph(t)
        idle = np.nonzero(g.neighbours[:, 0] == np.arange(7))[0]
        assert len(idle) == 1 and g.self_weight[idle[0]] == 1
        pairs = in_sets(topo, t)
        assert all(pairs[next(iter(s))] == {i} for i, s in enumerate(pairs) if s)


def test_epidemic_sends_s_and_caps_in_degree():
    topo = make_topology("epidemic", N, s=3, max_in=N - 1, seed=2)
    for t in range(4):
        assert all(len(o) == 3 for o in topo.out_neighbours(t))
    capped = make_topology("epidemic", N, s=6, max_in=2, seed=2)
    full = make_topology("epidemic", N, s=6, max_in=N - 1, seed=2)
    for t in range(4):
        for kept, every in zip(in_sets(capped, t), in_sets(full, t), strict=True):
            assert kept == set(sorted(every)[:2])  # lowest sender ids are kept


def test_edge_list_directed(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("0 1\n1 2\n2 3\n3 0\n")
    topo = make_topology("edge_list", 4, path=str(path), directed=True)
    assert in_sets(topo) == [{3}, {0}, {1}, {2}]
    assert topo.weights == "uniform" and not topo.symmetric


# -- user errors --------------------------------------------------------------------------------


def test_unknown_name_lists_choices():
    with pytest.raises(ConfigError, match="unknown topology 'hypercube'.*ring.*torus"):
        make_topology("hypercube", 8)


def test_unknown_option_names_valid_options():
    with pytest.raises(ConfigError, match="unknown option 'q'.*erdos_renyi.*valid options: p"):
        make_topology("erdos_renyi", 8, q=0.1)
    with pytest.raises(ConfigError, match="unknown option 'd'.*'ring'"):
        make_topology("ring", 8, d=3)


def test_unknown_weights():
    with pytest.raises(ConfigError, match="unknown weights 'equal'.*metropolis"):
        make_topology("ring", 8, weights="equal")
    assert make_topology("ring", 8, weights="default").weights == "uniform"


def test_torus_non_square():
    with pytest.raises(ConfigError, match="torus needs a square number of peers, got n=10"):
        make_topology("torus", 10)


@pytest.mark.parametrize("kw", [dict(n=1), dict(n=0), dict(seed=-1), dict(n=2.5)])
def test_bad_n_or_seed(kw):
    with pytest.raises(ConfigError):
        make_topology("ring", **{"n": 8, **kw})


@pytest.mark.parametrize("name, kw", [
    ("erdos_renyi", dict(p=0)), ("erdos_renyi", dict(p=1.5)), ("erdos_renyi", dict(p="x")),
    ("random_regular", dict(d=0)), ("random_regular", dict(d=N)), ("epidemic", dict(s=0)),
    ("epidemic", dict(s=N)), ("epidemic", dict(max_in=0)), ("edge_list", {}),
])
def test_bad_option_values(name, kw):
    with pytest.raises(ConfigError):
        make_topology(name, N, **kw)


def test_edge_list_errors(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(ConfigError, match="nope.txt"):
        make_topology("edge_list", 4, path=str(missing))
    bad = tmp_path / "bad.txt"
    bad.write_text("# header\n0 1\n1 two\n")
    with pytest.raises(ConfigError, match=r"bad.txt:3: .*'1 two'"):
        make_topology("edge_list", 4, path=str(bad))
    out = tmp_path / "out.txt"
    out.write_text("0 1\n1 4\n")
    with pytest.raises(ConfigError, match=r"out.txt:2: peer id 4 out of range"):
        make_topology("edge_list", 4, path=str(out))


def test_negative_round_is_a_config_error():
    with pytest.raises(ConfigError, match="round"):
        make_topology("ring", 4).round_graph(-1)


# -- at scale: every path a run takes is O(n·k), never a dense n×n array ------------------------


def test_sparse_matrix_is_the_dense_matrix(name, edge_file):
    topo = build(name, edge_file)
    for t in ROUNDS[:3]:
        np.testing.assert_array_equal(topo.sparse_matrix(t).toarray(), topo.matrix(t))


@pytest.mark.parametrize("name, symmetric", [("ring", True), ("exponential", False),
                                             ("erdos_renyi", True), ("epidemic", False)])
def test_100k_peers_build_without_a_dense_matrix(name, symmetric):
    # a dense float64 W of 100,000 peers is 74.5 GiB: any O(n²) step here would not finish
    topo = make_topology(name, 100_000)
    assert topo.symmetric is symmetric
    g = topo.round_graph(1)
    assert g.neighbours.shape == (100_000, topo.k) and topo.k <= 64
    np.testing.assert_allclose(g.weights.sum(axis=1) + g.self_weight, 1.0, atol=1e-5)
    assert sum(len(o) for o in topo.out_neighbours(1)) == int((g.weights > 0).sum())
    with pytest.raises(ConfigError, match=r"100000 peers needs 74\.5 GiB"):
        topo.matrix(0)


def test_sparse_draws_above_the_dense_limit():
    from gossip.topology.static import DENSE_DRAW_MAX
    n = DENSE_DRAW_MAX + 4
    epi = make_topology("epidemic", n, s=3, max_in=n - 1)
    for t in (0, 1):
        out = epi.out_neighbours(t)
        assert all(len(o) == 3 and i not in o for i, o in enumerate(out))
    assert not np.array_equal(epi.out_neighbours(0)[0], epi.out_neighbours(1)[0]) or \
        not np.array_equal(epi.out_neighbours(0)[1], epi.out_neighbours(1)[1])
    er = make_topology("erdos_renyi", n, p=0.002)
    edges = int((er.round_graph(0).weights > 0).sum()) // 2
    expected = 0.002 * n * (n - 1) / 2
    assert abs(edges - expected) < 5 * expected**0.5  # Binomial: within 5 standard deviations
    assert er.symmetric


def test_distinct_draws_are_distinct_and_uniform():
    from gossip.topology.time_varying import distinct_draws
    pick = distinct_draws(20_000, 10, 3, np.random.default_rng(0))
    assert pick.min() >= 0 and pick.max() < 10
    assert all(len(set(row)) == 3 for row in pick[:2000].tolist())
    counts = np.bincount(pick.ravel(), minlength=10) / pick.size
    np.testing.assert_allclose(counts, 0.1, atol=0.01)
