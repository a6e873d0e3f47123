"""Average model, local metrics and consensus distance of stacked peers."""

import jax.numpy as jnp
import numpy as np

from gossip.evaluate import average_params, consensus_distance, make_evaluator


def test_consensus_distance_matches_its_definition():
    params = {"a": jnp.array([[0.0, 0.0], [2.0, 0.0], [4.0, 3.0]]), "b": jnp.array([1.0, 1, 4])}
    x = np.concatenate([np.asarray(params["a"]), np.asarray(params["b"])[:, None]], axis=1)
    expected = np.mean(np.sum((x - x.mean(0)) ** 2, axis=1))
    np.testing.assert_allclose(consensus_distance(params), expected, rtol=1e-6)
    np.testing.assert_allclose(average_params(params)["a"], [2.0, 1.0])


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
