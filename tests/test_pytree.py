"""Leaf paths and .npz files keyed by leaf path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gossip.pytree import leaf_paths, load_npz, save_npz, tree_nbytes


def _tree():
    return {"Dense_0": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)},
            "emb": [jnp.arange(4, dtype=jnp.int32)]}


def test_leaf_paths_and_sizes():
    assert leaf_paths(_tree()) == ["Dense_0/bias", "Dense_0/kernel", "emb/0"]
    assert tree_nbytes(_tree()) == (2 + 6 + 4) * 4


def test_npz_round_trip_and_mismatch(tmp_path):
    path = tmp_path / "p.npz"
    save_npz(path, _tree())
    with np.load(path) as data:
        assert sorted(data.files) == ["Dense_0/bias", "Dense_0/kernel", "emb/0"]
    back = load_npz(path, _tree())
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(_tree()), strict=True):
        np.testing.assert_array_equal(a, b)
    other = {"Dense_0": {"kernel": jnp.ones((2, 2)), "bias": jnp.zeros(2)},
             "emb": [jnp.arange(4, dtype=jnp.int32)]}
    with pytest.raises(ValueError, match="leaf 'Dense_0/kernel' is float32\\[3, 2\\]"):
        load_npz(path, other)
