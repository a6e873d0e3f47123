"""Every partition scheme: disjoint, covering, seeded, non-empty; skew where promised."""

import time

import numpy as np
import pytest

from gossip.data import PARTITIONS, dataset_partition, load_dataset, partition, peer_shard
from gossip.errors import ConfigError

LABELS = np.repeat(np.arange(10), 100)[np.random.default_rng(0).permutation(1000)]


def entropy(labels: np.ndarray, num_classes: int = 10) -> float:
    p = np.bincount(labels, minlength=num_classes) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def mean_entropy(shards) -> float:
    return float(np.mean([entropy(LABELS[s]) for s in shards]))


def test_names():
    assert set(PARTITIONS) == {"iid", "dirichlet", "dirichlet_peer", "shards", "quantity"}


@pytest.mark.parametrize("scheme", sorted(PARTITIONS))
@pytest.mark.parametrize("n", [1, 7, 20])
def test_disjoint_cover_nonempty(scheme, n):
    shards = partition(LABELS, n, scheme, seed=0)
    assert len(shards) == n
    assert all(s.dtype == np.int64 and s.ndim == 1 and len(s) >= 1 for s in shards)
    both = np.concatenate(shards)
    assert len(both) == len(LABELS) and len(np.unique(both)) == len(LABELS)


@pytest.mark.parametrize("scheme", sorted(PARTITIONS))
def test_seeded(scheme):
    a = partition(LABELS, 10, scheme, seed=5)
    b = partition(LABELS, 10, scheme, seed=5)
    c = partition(LABELS, 10, scheme, seed=6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_dirichlet_skew():
    iid = mean_entropy(partition(LABELS, 10, "iid", seed=0))
    assert iid > 0.95 * np.log(10)
    for scheme in ("dirichlet", "dirichlet_peer"):
        skewed = mean_entropy(partition(LABELS, 10, scheme, seed=0, alpha=0.1))
        flat = mean_entropy(partition(LABELS, 10, scheme, seed=0, alpha=1000.0))
        assert skewed < 0.6 * iid, scheme
        assert flat > 0.97 * iid, scheme


def test_dirichlet_peer_equal_sizes():
    sizes = [len(s) for s in partition(LABELS, 7, "dirichlet_peer", seed=1, alpha=0.1)]
    assert max(sizes) - min(sizes) <= 1


def test_dirichlet_min_size():
    shards = partition(LABELS, 20, "dirichlet", seed=0, alpha=0.5, min_size=10)
    assert min(len(s) for s in shards) >= 10
    with pytest.raises(ConfigError, match="tries"):
        partition(LABELS, 100, "dirichlet", seed=0, alpha=0.01, min_size=9)


def test_shards_pathological():
    shards = partition(LABELS, 50, "shards", seed=0, shards_per_peer=2)
    assert all(len(np.unique(LABELS[s])) <= 4 for s in shards)
    assert np.mean([len(np.unique(LABELS[s])) for s in shards]) <= 2.5
    with pytest.raises(ConfigError, match="shards"):
        partition(LABELS[:50], 30, "shards", seed=0, shards_per_peer=2)


def test_quantity():
    shards = partition(LABELS, 10, "quantity", seed=0, alpha=0.5, min_size=5)
    sizes = np.array([len(s) for s in shards])
    assert sizes.min() >= 5 and sizes.max() > 2 * sizes.min()
    assert mean_entropy(shards) > 0.8 * np.log(10)  # labels stay IID


def test_non_class_labels():
    y = np.random.default_rng(0).random(100).astype(np.float32)
    for scheme in ("dirichlet", "dirichlet_peer", "shards"):
        with pytest.raises(ConfigError, match="class labels"):
            partition(y, 4, scheme, seed=0)
    with pytest.raises(ConfigError, match="class labels"):
        partition(np.zeros((100, 8), np.int32), 4, "dirichlet", seed=0)
    for scheme in ("iid", "quantity"):
        assert sum(len(s) for s in partition(y, 4, scheme, seed=0)) == 100


def test_errors():
    with pytest.raises(ConfigError, match="unknown partition 'zipf'.*dirichlet, dirichlet_peer"):
        partition(LABELS, 4, "zipf", seed=0)
    with pytest.raises(ConfigError, match=r"alpha must be > 0, got -1$"):
        partition(LABELS, 4, "dirichlet", seed=0, alpha=-1)
    with pytest.raises(ConfigError, match=r"alpha must be > 0, got 0$"):
        partition(LABELS, 4, "quantity", seed=0, alpha=0.0)
    with pytest.raises(ConfigError, match="peers"):
        partition(LABELS, 0, "iid", seed=0)
    with pytest.raises(ConfigError, match="seed"):
        partition(LABELS, 4, "iid", seed=-3)
    with pytest.raises(ConfigError, match="64 peers but the training set has only 50 training"):
        partition(LABELS[:50], 64, "iid", seed=0)
    with pytest.raises(ConfigError, match="64 peers but dataset 'x' has only 50 training"):
        partition(LABELS[:50], 64, "iid", seed=0, dataset="x")


def test_iid_fast_many_peers():
    ds = load_dataset("digits")
    start = time.perf_counter()
    shards = partition(ds.y_train, 1024, "iid", seed=0)
    assert time.perf_counter() - start < 0.5
    assert len(shards) == 1024 and min(len(s) for s in shards) == 1


@pytest.mark.parametrize("scheme", sorted(PARTITIONS))
def test_peer_shard_matches_partition(scheme):
    ds = load_dataset("digits")
    opts = {"alpha": 0.3}
    shards = partition(ds.y_train, 8, scheme, seed=2, **opts)
    for peer in range(8):
        x, y = peer_shard(ds, 8, peer, scheme=scheme, seed=2, **opts)
        np.testing.assert_array_equal(x, ds.x_train[shards[peer]])
        np.testing.assert_array_equal(y, ds.y_train[shards[peer]])


def test_peer_shard_errors():
    ds = load_dataset("teacher_linear", num_samples=50)
    x, y = peer_shard(ds, 4, 3, scheme="iid", seed=0)
    assert x.shape == (10, 20) and y.shape == (10,)
    with pytest.raises(ConfigError, match="peer 4 out of range"):
        peer_shard(ds, 4, 4, scheme="iid", seed=0)
    with pytest.raises(ConfigError, match="out of range"):
        peer_shard(ds, 4, -1, scheme="iid", seed=0)
    with pytest.raises(ConfigError, match="class labels"):
        peer_shard(ds, 4, 0, scheme="dirichlet", seed=0)
    with pytest.raises(ConfigError, match="unknown partition option 'beta'"):
        peer_shard(ds, 4, 0, scheme="iid", seed=0, beta=1.0)
    digits = load_dataset("digits")
    with pytest.raises(ConfigError,
                       match="2000 peers but dataset 'digits' has only 1437 training samples"):
        peer_shard(digits, 2000, 0, scheme="iid", seed=0)


def test_dataset_partition_default_is_iid_without_a_split_of_its_own():
    ds = load_dataset("teacher_linear", num_samples=60)
    for scheme in ("default", "iid"):
        got = dataset_partition(ds, 4, scheme, seed=3)
        for a, b in zip(got, partition(ds.y_train, 4, "iid", seed=3), strict=True):
            np.testing.assert_array_equal(a, b)
    q = dataset_partition(ds, 4, "quantity", seed=3, alpha=0.2)
    for a, b in zip(q, partition(ds.y_train, 4, "quantity", seed=3, alpha=0.2), strict=True):
        np.testing.assert_array_equal(a, b)


def test_dataset_partition_errors():
    ds = load_dataset("teacher_linear", num_samples=60)
    with pytest.raises(ConfigError, match="partition 'natural' needs a dataset with its own "
                                          "split among peers .*'teacher_linear' has none"):
        dataset_partition(ds, 4, "natural", seed=0)
    with pytest.raises(ConfigError, match=r"unknown partition 'zipf'; valid choices: default, "
                                          r"dirichlet, dirichlet_peer, iid, natural, quantity"):
        dataset_partition(ds, 4, "zipf", seed=0)
