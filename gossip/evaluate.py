"""Evaluation of stacked peers: the average model, every local model, consensus distance,
and the distance to a known optimum."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gossip.round import finite

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


def flat_params(params: Params) -> jax.Array:
    """Each peer's parameters as one vector, leaves in pytree order: leaves (N, ...) -> (N, P)."""
    leaves = jax.tree.leaves(params)
    return jnp.concatenate([x.reshape(x.shape[0], -1) for x in leaves], axis=1)


def matching_optimum(optimum: np.ndarray | None, params: Params) -> np.ndarray | None:
    """``optimum`` when one peer's parameters are a vector of its size, else None.

    Args:
        optimum: a dataset's ``optimum`` (P,), or None.
        params: one peer's parameters, or their shapes (``jax.eval_shape``).

    Returns:
        ``optimum`` when ``params`` flattens (pytree order) to exactly P numbers, else None.
    """
    if optimum is None:
        return None
    size = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))
    return optimum if size == np.size(optimum) else None


def optimum_distances(params: Params, optimum: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Relative distances of the average model and of the farthest peer to an optimum.

    Args:
        params: stacked params, leaves (N, ...), flattening to P numbers per peer.
        optimum: (P,) ``x*`` in the coordinates of ``flat_params``.

    Returns:
        ``(‖x̄ − x*‖ / ‖x*‖, max_i ‖x_i − x*‖ / ‖x*‖)``, both ().
    """
    flat = flat_params(params)
    scale = jnp.linalg.norm(optimum)
    avg = jnp.linalg.norm(jnp.mean(flat, axis=0) - optimum) / scale
    worst = jnp.max(jnp.linalg.norm(flat - optimum[None], axis=1)) / scale
    return avg, worst


def make_evaluator(metric_fn: MetricFn, loss_fn: MetricFn, peer_chunk: int = 64,
                   optimum: Any = None, honest: Any = None
                   ) -> Callable[..., dict[str, jax.Array]]:
    """Builds a jitted ``evaluate(params, x_test, y_test) -> dict``.

    Args:
        metric_fn: ``metric(params, x, y) -> ()`` of one model.
        loss_fn: ``loss(params, x, y) -> ()`` of one model.
        peer_chunk: local models evaluated at once (bounds memory for many peers).
        optimum: None, or ``x*`` (P,) in the coordinates of ``flat_params`` (the dataset's
            ``optimum``, see ``gossip.experiment.model_optimum``).
        honest: None, or (N,) bool, the honest peers of a run with attackers: then also
            ``honest_avg_model_metric`` (), the metric of the honest peers' average model,
            and ``honest`` (N,), the mask.

    Returns:
        A function of stacked params (leaves (N, ...)) and a test set giving
        ``avg_model_metric`` (), ``avg_model_loss`` (), ``local_metric`` (N,) and
        ``consensus_distance`` (); with an ``optimum`` also ``opt_distance`` () and
        ``opt_distance_max`` () (``optimum_distances``).
    """
    target = None if optimum is None else jnp.asarray(optimum, jnp.float32)
    mask = None if honest is None else jnp.asarray(honest, bool)

    @jax.jit
    def evaluate(params: Params, x: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
        avg = average_params(params)
        local = jax.lax.map(lambda p: metric_fn(p, x, y), params, batch_size=peer_chunk)
        out = {"avg_model_metric": metric_fn(avg, x, y),
               "avg_model_loss": loss_fn(avg, x, y),
               "local_metric": local,
               "consensus_distance": consensus_distance(params)}
        if mask is not None:
            share = mask.astype(jnp.float32) / jnp.sum(mask)
            honest_avg = jax.tree.map(
                lambda x: jnp.tensordot(share.astype(x.dtype), x, axes=1), params)
            out["honest_avg_model_metric"] = metric_fn(honest_avg, x, y)
            out["honest"] = mask
        if target is not None:
            out["opt_distance"], out["opt_distance_max"] = optimum_distances(params, target)
        return out

    return evaluate


def health_record(params: Params, rule_state: Any) -> dict[str, float | int]:
    """What says a simulated run is still sound (``docs/metrics.md``).

    Args:
        params: the stacked parameters, leaves (N, ...).
        rule_state: the stacked rule state, leaves (N, ...).

    Returns:
        ``peers_finite``: how many peers' parameters and rule state are all finite (N while
        the run is sound); and, for a push-sum rule (its state has a ``weight``), ``mass``:
        the sum of the peers' push-sum weights, N while no mass is lost or in flight.
    """
    ok = jax.vmap(finite)((params, rule_state))  # (N,): only N booleans come to the host
    record: dict[str, float | int] = {"peers_finite": int(jnp.sum(ok))}
    weight = getattr(rule_state, "weight", None)
    if weight is not None:
        record["mass"] = float(np.sum(np.asarray(jax.device_get(weight), np.float64)))
    return record


def evaluation_record(ev: dict[str, Any], short: str) -> dict[str, float]:
    """The metrics-file keys of one evaluation (see ``docs/metrics.md``).

    Args:
        ev: what ``make_evaluator``'s function returned, on the host.
        short: the metric's short name, ``"acc"`` or ``"rmse"``.

    Returns:
        The keys below; ``opt_distance`` and ``opt_distance_max`` only when ``ev`` has them;
        ``honest_avg_model_<short>``, ``honest_<short>_mean`` and ``honest_<short>_min``
        (the honest peers only) when it has ``honest``.
    """
    local = np.asarray(ev["local_metric"])
    record = {f"avg_model_{short}": float(ev["avg_model_metric"]),
              "avg_model_loss": float(ev["avg_model_loss"]),
              f"local_{short}_mean": float(local.mean()),
              f"local_{short}_min": float(local.min()),
              f"local_{short}_max": float(local.max()),
              "consensus_distance": float(ev["consensus_distance"])}
    if "honest" in ev:
        mine = local[np.asarray(ev["honest"], bool)]
        record[f"honest_avg_model_{short}"] = float(ev["honest_avg_model_metric"])
        record[f"honest_{short}_mean"] = float(mine.mean())
        record[f"honest_{short}_min"] = float(mine.min())
    for key in ("opt_distance", "opt_distance_max"):
        if key in ev:
            record[key] = float(ev[key])
    return record
