"""The ``least_squares`` dataset: per-peer problems, their own split, the exact optimum."""

import numpy as np
import pytest

from gossip.data import load_dataset, peer_shard
from gossip.errors import ConfigError

SMALL = {"peers": 4, "rows_per_peer": 12, "test_rows_per_peer": 5, "dim": 3}


def test_shapes_dtypes_and_shards():
    ds = load_dataset("least_squares", seed=1, **SMALL)
    assert ds.task == "regression" and ds.meta == {"num_classes": None, "input_shape": (3,)}
    assert ds.x_train.shape == (48, 3) and ds.y_train.shape == (48,)
    assert ds.x_test.shape == (20, 3) and ds.y_test.shape == (20,)
    arrays = (ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    assert {a.dtype for a in arrays} == {np.dtype(np.float32)}
    assert len(ds.shards) == 4
    for i, rows in enumerate(ds.shards):  # peer i's rows are the i-th block of 12
        np.testing.assert_array_equal(rows, np.arange(12 * i, 12 * (i + 1)))
    assert ds.optimum.shape == (3,) and ds.optimum.dtype == np.float64


def test_deterministic_in_seed_and_options():
    a, b = (load_dataset("least_squares", seed=3, **SMALL) for _ in range(2))
    for f in ("x_train", "y_train", "x_test", "y_test", "optimum"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    c = load_dataset("least_squares", seed=4, **SMALL)
    assert not np.array_equal(a.x_train, c.x_train)


def _local_optima(ds):
    """Each peer's own least-squares solution, (peers, dim)."""
    return np.stack([np.linalg.lstsq(ds.x_train[s].astype(np.float64),
                                     ds.y_train[s].astype(np.float64), rcond=None)[0]
                     for s in ds.shards])


def test_each_peer_has_its_own_optimum():
    opts = {**SMALL, "noise": 0.0}
    # Without noise each peer's rows are solved exactly by its own w_i*.
    local = _local_optima(load_dataset("least_squares", **opts, heterogeneity=1.0))
    spread = np.linalg.norm(local - local.mean(0), axis=1)
    assert np.all(spread > 0.1), spread
    same = _local_optima(load_dataset("least_squares", **opts, heterogeneity=0.0))
    np.testing.assert_allclose(same, np.broadcast_to(same[0], same.shape), atol=1e-5)
    # The test rows come from the same per-peer problems, grouped by peer.
    ds = load_dataset("least_squares", **opts, heterogeneity=1.0)
    for i in range(4):
        x, y = ds.x_test[5 * i:5 * (i + 1)], ds.y_test[5 * i:5 * (i + 1)]
        np.testing.assert_allclose(x @ local[i], y, atol=1e-4)


def test_optimum_zeroes_the_gradient_of_the_sum_of_peer_losses():
    ds = load_dataset("least_squares", seed=2, **SMALL, heterogeneity=2.0, noise=0.3)
    w = ds.optimum

    def grad(w):  # of sum_i f_i, f_i = mean over peer i's rows of (x . w - y)^2
        return sum(2 * ds.x_train[s].T.astype(np.float64)
                   @ (ds.x_train[s].astype(np.float64) @ w - ds.y_train[s]) / len(s)
                   for s in ds.shards)

    assert np.linalg.norm(grad(w)) < 1e-9 * np.linalg.norm(grad(np.zeros(3)))
    assert np.linalg.norm(w) > 0.1


def test_peer_shard_gives_exactly_the_peers_rows():
    ds = load_dataset("least_squares", **SMALL)
    for peer in range(4):
        x, y = peer_shard(ds, 4, peer, scheme="natural", seed=0)
        np.testing.assert_array_equal(x, ds.x_train[12 * peer:12 * (peer + 1)])
        np.testing.assert_array_equal(y, ds.y_train[12 * peer:12 * (peer + 1)])
    x, _ = peer_shard(ds, 4, 2, scheme="default", seed=5)
    np.testing.assert_array_equal(x, ds.x_train[24:36])


@pytest.mark.parametrize("options, message", [
    ({"peers": 0}, "option 'peers' must be >= 1, got 0"),
    ({"rows_per_peer": 2.5}, "option 'rows_per_peer' must be an integer, got 2.5"),
    ({"dim": True}, "option 'dim' must be an integer, got True"),
    ({"test_rows_per_peer": 0}, "option 'test_rows_per_peer' must be >= 1, got 0"),
    ({"heterogeneity": -1.0}, "option 'heterogeneity' must be a number >= 0, got -1.0"),
    ({"noise": "a"}, "option 'noise' must be a number >= 0"),
    ({"noise": float("nan")}, "option 'noise' must be a number >= 0"),
    ({"peers": 2, "rows_per_peer": 3, "dim": 7}, "6 rows cannot determine dim = 7 unknowns"),
    ({"rows": 3}, "unknown option 'rows' for dataset 'least_squares'; valid options: dim, "
                  "heterogeneity, noise, peers, rows_per_peer, test_rows_per_peer"),
])
def test_bad_options(options, message):
    with pytest.raises(ConfigError) as info:
        load_dataset("least_squares", **options)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("scheme, message", [
    ("iid", "dataset 'least_squares' gives each peer its own rows; use partition 'natural' "
            "(or 'default'), got 'iid'"),
    ("dirichlet", "got 'dirichlet'"),
])
def test_other_partitions_are_refused(scheme, message):
    ds = load_dataset("least_squares", **SMALL)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        peer_shard(ds, 4, 0, scheme=scheme, seed=0)


def test_peer_count_must_match():
    ds = load_dataset("least_squares", **SMALL)
    with pytest.raises(ConfigError) as info:
        peer_shard(ds, 8, 0, scheme="natural", seed=0)
    assert str(info.value) == ("dataset 'least_squares' was made for 4 peers (its option "
                               "'peers') but the run has 8; set dataset option peers = 8")
