"""Conformance suite: every gossip rule through the same properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gossip.compress import COMPRESSORS
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
    n = graph.neighbours.shape[0]

    def one(carry, t):
        params, state = carry
        messages = jax.vmap(rule.message)(params, state)
        payloads = gather(messages, graph.neighbours)
        params, state = jax.vmap(rule.mix)(params, state, payloads, graph.weights,
                                           graph.self_weight)
        # As the round does: each peer's key of the round, for its next message.
        keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(t), i))(jnp.arange(n))
        return (params, jax.vmap(rule.draw)(state, keys)), None

    carry, _ = jax.lax.scan(one, (params, jax.vmap(rule.init)(params)), jnp.arange(rounds))
    return carry


# Every rule with its defaults, and the compressed variants that keep the average (Choco).
EXACT = [(name, {}) for name in sorted(RULES)] + [
    ("choco", {"compress": c, "compress_ratio": 0.5} if c in ("top_k", "rand_k")
     else {"compress": c}) for c in sorted(COMPRESSORS)]
IDS = [f"{n}-{o.get('compress', 'none')}" for n, o in EXACT]
# Naive compressed D-PSGD neither keeps the average nor has consensus as a fixed point.
NAIVE = [("dpsgd", {"compress": c}) for c in sorted(COMPRESSORS)] + [
    ("dpsgd_cta", {"compress": "top_k", "error_feedback": False}),
    ("local_sgd", {"compress": "int4"}),
    ("local_sgd", {"outer_optimizer": "nesterov"})]


@pytest.mark.parametrize(("name", "options"), EXACT, ids=IDS)
def test_consensus_is_a_fixed_point(name, options):
    rule = make_rule(name, **options)
    one = {"w": jnp.arange(6.0).reshape(3, 2), "b": jnp.ones(2)}
    params = jax.tree.map(lambda a: jnp.repeat(a[None], 8, axis=0), one)
    # Choco with a random operator: each peer reveals other coordinates of its public copy,
    # so x leaves the consensus until every x̂ has caught up with x (the fixed point is
    # x = x̂ = c); it comes back.
    random = options.get("compress") == "rand_k"
    out, _ = _gossip(rule, params, _ring(8), rounds=300 if random else 3)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-4 if random else 1e-6)


@pytest.mark.parametrize(("name", "options"), EXACT, ids=IDS)
def test_doubly_stochastic_mixing_preserves_the_mean_and_contracts(name, options, key):
    rule = make_rule(name, **options)
    params = _params(10, key)
    out, _ = _gossip(rule, params, _ring(10), rounds=40 if name == "choco" else 20)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(a.mean(0), b.mean(0), atol=1e-5)
        assert jnp.var(a, axis=0).sum() < 0.5 * jnp.var(b, axis=0).sum()


@pytest.mark.parametrize(("name", "options"), EXACT + NAIVE,
                         ids=IDS + [f"naive-{n}-{list(o.values())}" for n, o in NAIVE])
def test_rule_is_jit_and_vmap_compatible_and_keeps_structure(name, options, key):
    rule = make_rule(name, **options)
    params = _params(4, key)
    step = jax.jit(lambda p, g: _gossip(rule, p, g, rounds=1))
    out, state = step(params, _ring(4))
    assert jax.tree.structure(out) == jax.tree.structure(params)
    assert jax.tree.structure(state) == jax.tree.structure(jax.vmap(rule.init)(params))
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(params), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype


@pytest.mark.parametrize("name", ["dpsgd", "dpsgd_cta", "local_sgd", "gradient_tracking",
                                  "d2", "qg_dsgdm"])
def test_missing_messages_are_renormalised_away(name):
    rule = make_rule(name)
    own = {"x": jnp.array([0.0, 3.0])}
    state = rule.init(own)
    arrived = rule.message({"x": jnp.array([6.0, 9.0])}, state)
    lost = rule.message({"x": jnp.array([1e6, 1e6])}, state)
    payloads = jax.tree.map(lambda a, b: jnp.stack([a, b]), arrived, lost)
    # The second neighbour's message did not arrive: weight 0.
    out, _ = rule.mix(own, state, payloads, jnp.array([1 / 3, 0.0]), jnp.array(1 / 3))
    # D² mixes lazily, (I + W) / 2: half way to the D-PSGD average.
    np.testing.assert_allclose(out["x"], [1.5, 4.5] if name == "d2" else [3.0, 6.0],
                               rtol=1e-6)


def test_gradient_tracking_sends_two_vectors_and_tracks_the_average_update(key):
    rule = make_rule("gradient_tracking")
    params = _params(10, key)
    state = jax.vmap(rule.init)(params)
    updates = _params(10, jax.random.fold_in(key, 7))
    params, state = jax.vmap(rule.adapt)(params, state, updates)
    graph = _ring(10)
    for _ in range(150):
        payloads = gather(jax.vmap(rule.message)(params, state), graph.neighbours)
        params, state = jax.vmap(rule.mix)(params, state, payloads, graph.weights,
                                           graph.self_weight)
    message = rule.message(jax.tree.map(lambda a: a[0], params),
                           jax.tree.map(lambda a: a[0], state))
    assert len(jax.tree.leaves(message)) == 2 * len(jax.tree.leaves(params))
    for y, u in zip(jax.tree.leaves(state.tracker), jax.tree.leaves(updates), strict=True):
        np.testing.assert_allclose(y, jnp.broadcast_to(u.mean(0), y.shape), atol=1e-4)


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
