"""Attacks (gossip.attacks) and the simulator's attackers (gossip.sim.byzantine)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gossip.attacks import (
    ATTACKS,
    AttackView,
    attack_key,
    make_attack,
    pick_attackers,
    view_of,
)
from gossip.errors import ConfigError
from gossip.sim.byzantine import make_adversary
from gossip.topology import RoundGraph, make_topology

OWN = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones((3,))}
VIEW = AttackView(mean=jax.tree.map(lambda x: x + 1, OWN),
                  std=jax.tree.map(lambda x: jnp.full_like(x, 0.5), OWN),
                  local=jax.tree.map(lambda x: x + 2, OWN))
KEY = jax.random.key(0)


def test_each_attack_forges_a_finite_message_of_the_same_structure():
    for name in ATTACKS:
        forged = jax.jit(make_attack(name))(OWN, VIEW, KEY)
        assert jax.tree.structure(forged) == jax.tree.structure(OWN), name
        for a, b in zip(jax.tree.leaves(forged), jax.tree.leaves(OWN), strict=True):
            assert a.shape == b.shape and a.dtype == b.dtype, name
            assert bool(jnp.all(jnp.isfinite(a))), name
        assert not np.allclose(forged["w"], OWN["w"]), name


def test_attack_formulas():
    np.testing.assert_allclose(make_attack("sign_flip")(OWN, VIEW, KEY)["w"], -OWN["w"])
    np.testing.assert_allclose(make_attack("sign_flip", 2.0)(OWN, VIEW, KEY)["w"], -2 * OWN["w"])
    np.testing.assert_allclose(make_attack("alie", 3.0)(OWN, VIEW, KEY)["b"], 2 - 1.5)
    np.testing.assert_allclose(make_attack("ipm", 0.5)(OWN, VIEW, KEY)["b"], -1.0)
    np.testing.assert_allclose(make_attack("dissensus", 1.0)(OWN, VIEW, KEY)["b"], 1 - 2)
    assert float(make_attack("huge")(OWN, VIEW, KEY)["b"][0]) == float(jnp.finfo(jnp.float32).max)
    g1, g2 = (make_attack("gaussian")(OWN, VIEW, k)["w"] for k in (KEY, attack_key(KEY)))
    np.testing.assert_array_equal(g1, make_attack("gaussian")(OWN, VIEW, KEY)["w"])
    assert not np.allclose(g1, g2)


def test_bad_attack_names_and_scales():
    with pytest.raises(ConfigError, match="unknown attack 'lie'"):
        make_attack("lie")
    with pytest.raises(ConfigError, match="attack_scale"):
        make_attack("alie", -1.0)


def test_attackers_are_drawn_from_the_seed():
    a = pick_attackers(16, 3, seed=5)
    assert a.tolist() == sorted(set(a.tolist())) and len(a) == 3 and a.max() < 16
    np.testing.assert_array_equal(a, pick_attackers(16, 3, seed=5))
    assert any(not np.array_equal(pick_attackers(16, 3, s), a) for s in range(6, 10))
    assert pick_attackers(16, 0, 5).size == 0


def test_a_real_peers_view_is_the_statistics_of_what_it_received():
    msgs = [{"b": np.array([1.0, 2.0])}, {"b": np.array([3.0, 6.0])}]
    view = view_of(msgs, [0.25, 0.75], own={"b": np.zeros(2)})
    np.testing.assert_allclose(view.mean["b"], [2.0, 4.0])
    np.testing.assert_allclose(view.std["b"], [1.0, 2.0])
    np.testing.assert_allclose(view.local["b"], [2.5, 5.0])
    empty = view_of([], [], own={"b": np.ones(2)})
    np.testing.assert_allclose(empty.mean["b"], 1.0)
    np.testing.assert_allclose(empty.std["b"], 0.0)


def test_the_adversary_replaces_only_the_attackers_messages_with_an_omniscient_view():
    n = 6
    topo = make_topology("ring", n)
    graph = RoundGraph(*map(jnp.asarray, topo.round_graph(0)))
    messages = {"x": jnp.arange(n, dtype=jnp.float32)[:, None] * jnp.ones((n, 2))}
    keys = jax.vmap(lambda p: jax.random.fold_in(KEY, p))(jnp.arange(n))
    attackers = np.array([2])
    honest = np.array([0, 1, 3, 4, 5], np.float32)
    # alie: mean - z std of the honest messages; dissensus: own - s (in-neighbours' mean - own).
    out = jax.jit(make_adversary(make_attack("alie", 1.0), attackers, n))(messages, graph, keys)
    np.testing.assert_allclose(out["x"][2], honest.mean() - honest.std(), rtol=1e-6)
    np.testing.assert_array_equal(np.delete(np.asarray(out["x"]), 2, 0),
                                  np.delete(np.asarray(messages["x"]), 2, 0))
    out = make_adversary(make_attack("dissensus", 1.0), attackers, n)(messages, graph, keys)
    np.testing.assert_allclose(out["x"][2], 2 - ((1 + 3) / 2 - 2), rtol=1e-6)
    # A peer's attack key is derived from its round key, as on a real peer.
    out = make_adversary(make_attack("gaussian"), attackers, n)(messages, graph, keys)
    want = make_attack("gaussian")({"x": messages["x"][2]}, VIEW, attack_key(keys[2]))
    np.testing.assert_allclose(out["x"][2], want["x"], rtol=1e-6)
