"""Evaluation of stacked peers: the average model, every local model, consensus distance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Params = Any
MetricFn = Callable[[Params, jax.Array, jax.Array], jax.Array]


def average_params(params: Params) -> Params:
    """The average model x̄ = 1/N Σ_i x_i; leaves (N, ...) -> (...)."""
    return jax.tree.map(lambda x: jnp.mean(x, axis=0), params)


def consensus_distance(params: Params) -> jax.Array:
    """1/N Σ_i ‖x_i − x̄‖² summed over all leaves; leaves (N, ...) -> ()."""
    def leaf(x: jax.Array) -> jax.Array:
        diff = x - jnp.mean(x, axis=0, keepdims=True)
        return jnp.sum(diff.reshape(x.shape[0], -1) ** 2, axis=1)

    return jnp.mean(sum(jax.tree.leaves(jax.tree.map(leaf, params))))


def make_evaluator(metric_fn: MetricFn, loss_fn: MetricFn,
                   peer_chunk: int = 64) -> Callable[..., dict[str, jax.Array]]:
    """Builds a jitted ``evaluate(params, x_test, y_test) -> dict``.

    Args:
        metric_fn: ``metric(params, x, y) -> ()`` of one model.
        loss_fn: ``loss(params, x, y) -> ()`` of one model.
        peer_chunk: local models evaluated at once (bounds memory for many peers).

    Returns:
        A function of stacked params (leaves (N, ...)) and a test set giving
        ``avg_model_metric`` (), ``avg_model_loss`` (), ``local_metric`` (N,) and
        ``consensus_distance`` ().
    """

    @jax.jit
    def evaluate(params: Params, x: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
        avg = average_params(params)
        local = jax.lax.map(lambda p: metric_fn(p, x, y), params, batch_size=peer_chunk)
        return {"avg_model_metric": metric_fn(avg, x, y),
                "avg_model_loss": loss_fn(avg, x, y),
                "local_metric": local,
                "consensus_distance": consensus_distance(params)}

    return evaluate


def evaluation_record(ev: dict[str, Any], short: str) -> dict[str, float]:
    """The metrics-file keys of one evaluation (see ``docs/metrics.md``).

    Args:
        ev: what ``make_evaluator``'s function returned, on the host.
        short: the metric's short name, ``"acc"`` or ``"rmse"``.
    """
    local = np.asarray(ev["local_metric"])
    return {f"avg_model_{short}": float(ev["avg_model_metric"]),
            "avg_model_loss": float(ev["avg_model_loss"]),
            f"local_{short}_mean": float(local.mean()),
            f"local_{short}_min": float(local.min()),
            f"local_{short}_max": float(local.max()),
            "consensus_distance": float(ev["consensus_distance"])}
