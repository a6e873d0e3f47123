"""Conformance suite: every gossip rule through the same properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gossip.errors import ConfigError
from gossip.rules import RULES, make_rule, renormalised_average, weighted_sum
from gossip.sim.simulator import gather
from gossip.topology import RoundGraph


def _params(n: int, key: jax.Array) -> dict:
    k1, k2 = jax.random.split(key)
    return {"w": jax.random.normal(k1, (n, 3, 2)), "b": jax.random.normal(k2, (n, 2))}


def _ring(n: int) -> RoundGraph:
    i = np.arange(n)
    nbr = np.stack([(i - 1) % n, (i + 1) % n], axis=1).astype(np.int32)
    w = np.full((n, 2), 1 / 3, np.float32)
    return RoundGraph(jnp.asarray(nbr), jnp.asarray(w), jnp.full((n,), 1 / 3, jnp.float32))


def _gossip(rule, params, graph, rounds):
    state = jax.vmap(rule.init)(params)
    for _ in range(rounds):
        messages = jax.vmap(rule.message)(params, state)
        payloads = gather(messages, graph.neighbours)
        params, state = jax.vmap(rule.mix)(params, state, payloads, graph.weights,
                                           graph.self_weight)
    return params, state


@pytest.mark.parametrize("name", sorted(RULES))
def test_consensus_is_a_fixed_point(name):
    rule = make_rule(name)
    one = {"w": jnp.arange(6.0).reshape(3, 2), "b": jnp.ones(2)}
    params = jax.tree.map(lambda a: jnp.repeat(a[None], 8, axis=0), one)
    out, _ = _gossip(rule, params, _ring(8), rounds=3)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(RULES))
def test_doubly_stochastic_mixing_preserves_the_mean_and_contracts(name, key):
    rule = make_rule(name)
    params = _params(10, key)
    out, _ = _gossip(rule, params, _ring(10), rounds=20)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(a.mean(0), b.mean(0), atol=1e-5)
        assert jnp.var(a, axis=0).sum() < 0.5 * jnp.var(b, axis=0).sum()


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_is_jit_and_vmap_compatible_and_keeps_structure(name, key):
    rule = make_rule(name)
    params = _params(4, key)
    step = jax.jit(lambda p, g: _gossip(rule, p, g, rounds=1))
    out, state = step(params, _ring(4))
    assert jax.tree.structure(out) == jax.tree.structure(params)
    assert jax.tree.structure(state) == jax.tree.structure(jax.vmap(rule.init)(params))
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(params), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype


@pytest.mark.parametrize("name", ["dpsgd", "dpsgd_cta", "local_sgd"])
def test_missing_messages_are_renormalised_away(name):
    rule = make_rule(name)
    own = {"x": jnp.array([0.0, 3.0])}
    payloads = {"x": jnp.array([[6.0, 9.0], [1e6, 1e6]])}
    # The second neighbour's message did not arrive: weight 0.
    out, _ = rule.mix(own, rule.init(own), payloads, jnp.array([1 / 3, 0.0]), jnp.array(1 / 3))
    np.testing.assert_allclose(out["x"], [3.0, 6.0], rtol=1e-6)


def test_renormalised_average_with_all_weights():
    out = renormalised_average({"x": jnp.zeros(2)}, {"x": jnp.ones((3, 2))},
                               jnp.full((3,), 0.25), jnp.array(0.25))
    np.testing.assert_allclose(out["x"], [0.75, 0.75], rtol=1e-6)


def test_push_sum_conserves_mass_and_averages_on_a_directed_graph(key):
    # Peer 0 sends to every other peer, peer j > 0 only to j + 1: out-degrees differ, so the
    # column-stochastic W (each sender splits its mass evenly) is not row-stochastic.
    n = 5
    nbr = np.array([[4, 0], [0, 1], [0, 1], [0, 2], [0, 3]], np.int32)
    w = np.array([[0.5, 0], [0.2, 0], [0.2, 0.5], [0.2, 0.5], [0.2, 0.5]], np.float32)
    self_w = np.array([0.2, 0.5, 0.5, 0.5, 0.5], np.float32)
    graph = RoundGraph(jnp.asarray(nbr), jnp.asarray(w), jnp.asarray(self_w))
    rule = make_rule("push_sum")
    params = _params(n, key)
    out, state = _gossip(rule, params, graph, rounds=200)
    np.testing.assert_allclose(state.weight.sum(), n, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(a, jnp.broadcast_to(b.mean(0), a.shape), atol=1e-4)


def test_unknown_rule_and_bad_local_steps():
    with pytest.raises(ConfigError, match="unknown gossip rule 'gosip'.*dpsgd"):
        make_rule("gosip")
    for name in RULES:
        with pytest.raises(ConfigError, match="local_steps must be >= 1"):
            make_rule(name, local_steps=0)


@pytest.mark.parametrize("k", [3, 70])  # unrolled sum, and the reduce used for large K
def test_weighted_sum_matches_its_definition(k, key):
    own = {"x": jax.random.normal(key, (4, 2))}
    payloads = {"x": jax.random.normal(jax.random.fold_in(key, 1), (k, 4, 2))}
    w = jax.random.uniform(jax.random.fold_in(key, 2), (k,))
    out = weighted_sum(own, payloads, w, jnp.asarray(0.5))
    expected = 0.5 * np.asarray(own["x"]) + np.einsum("k,kij->ij", np.asarray(w),
                                                       np.asarray(payloads["x"]))
    np.testing.assert_allclose(out["x"], expected, rtol=1e-5, atol=1e-5)
