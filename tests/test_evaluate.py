"""Average model, local metrics and consensus distance of stacked peers."""

import jax.numpy as jnp
import numpy as np

from gossip.evaluate import (
    average_params,
    consensus_distance,
    evaluation_record,
    health_record,
    make_evaluator,
    matching_optimum,
    optimum_distances,
)


def test_consensus_distance_matches_its_definition():
    params = {"a": jnp.array([[0.0, 0.0], [2.0, 0.0], [4.0, 3.0]]), "b": jnp.array([1.0, 1, 4])}
    x = np.concatenate([np.asarray(params["a"]), np.asarray(params["b"])[:, None]], axis=1)
    expected = np.mean(np.sum((x - x.mean(0)) ** 2, axis=1))
    np.testing.assert_allclose(consensus_distance(params), expected, rtol=1e-6)
    np.testing.assert_allclose(average_params(params)["a"], [2.0, 1.0])


def test_health_record_counts_finite_peers_and_sums_push_sum_mass():
    from gossip.rules.push_sum import PushSumState

    params = {"w": jnp.array([[1.0, 2.0], [jnp.nan, 0.0], [3.0, 4.0]])}
    state = PushSumState(jnp.array([0.5, 1.0, jnp.inf]))
    assert health_record(params, state) == {"peers_finite": 1, "mass": float("inf")}
    state = PushSumState(jnp.array([0.5, 1.0, 1.25]))
    assert health_record(params, state) == {"peers_finite": 2, "mass": 2.75}
    keys = jnp.zeros((3, 2), jnp.uint32)  # integer leaves (PRNG key data) are always finite
    assert health_record({"w": jnp.ones((3, 2))}, (keys,)) == {"peers_finite": 3}


def test_evaluator_reports_average_and_local_models():
    def metric(p, x, y):
        return jnp.mean((x * p["w"] > 0) == (y > 0))

    def loss(p, x, y):
        return jnp.mean((x * p["w"] - y) ** 2)

    params = {"w": jnp.array([1.0, -1.0, 3.0])}
    x, y = jnp.array([1.0, 2.0]), jnp.array([1.0, 2.0])
    out = make_evaluator(metric, loss, peer_chunk=2)(params, x, y)
    np.testing.assert_allclose(out["local_metric"], [1.0, 0.0, 1.0])
    np.testing.assert_allclose(out["avg_model_metric"], 1.0)
    np.testing.assert_allclose(out["avg_model_loss"], 0.0)


def test_optimum_distances_match_their_definition():
    # Two leaves flatten, in pytree order ("a" then "b"), to 3 numbers per peer.
    params = {"a": jnp.array([[1.0, 2.0], [3.0, 0.0], [2.0, 2.0]]), "b": jnp.array([0.0, 3, 3])}
    optimum = np.array([2.0, 1.0, 2.0])
    flat = np.array([[1.0, 2, 0], [3, 0, 3], [2, 2, 3]])
    avg, worst = optimum_distances(params, jnp.asarray(optimum, jnp.float32))
    scale = np.linalg.norm(optimum)
    np.testing.assert_allclose(avg, np.linalg.norm(flat.mean(0) - optimum) / scale, rtol=1e-6)
    np.testing.assert_allclose(
        worst, np.max(np.linalg.norm(flat - optimum, axis=1)) / scale, rtol=1e-6)
    assert matching_optimum(optimum, {"a": np.zeros(2), "b": np.zeros(())}) is optimum
    assert matching_optimum(optimum, {"a": np.zeros(3), "b": np.zeros(())}) is None
    assert matching_optimum(None, {"a": np.zeros(3)}) is None


def test_evaluator_adds_the_optimum_keys_only_with_an_optimum():
    def loss(p, x, y):
        return jnp.mean((x * p["w"][0] - y) ** 2)

    params = {"w": jnp.array([[1.0], [3.0]])}
    x = y = jnp.array([1.0, 2.0])
    plain = evaluation_record(make_evaluator(loss, loss)(params, x, y), "rmse")
    assert "opt_distance" not in plain and "opt_distance_max" not in plain
    ev = make_evaluator(loss, loss, optimum=np.array([1.0]))(params, x, y)
    record = evaluation_record(ev, "rmse")
    assert record["opt_distance"] == 1.0 and record["opt_distance_max"] == 2.0
