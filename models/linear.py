"""Linear regression without a bias: ``params = {"w": (d,)}``, prediction ``x @ w``.

Plain JAX, no flax: the parameters are exactly the vector of the least-squares problem, so
``gossip.data``'s ``least_squares`` optimum ``x*`` is directly comparable with them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from gossip.models.base import (
    Model,
    input_shape,
    mean_squared_error,
    require_task,
    resolve_options,
    rmse,
)

NAME = "linear"
Params = Any


def make_linear(meta: Mapping[str, Any], **options: Any) -> Model:
    """Builds the ``linear`` model for a regression dataset.

    ``params = {"w": (d,)}`` with ``d`` the flattened input size, initialised
    ``N(0, 1 / d)``; ``apply(params, x) = x.reshape(B, d) @ w`` gives ``(B,)``; the loss is
    the mean squared error ``mean_b (x_b . w - y_b)^2`` (no factor 1/2, like every regression
    model of the zoo), the metric the RMSE. No bias: centre the data, or add a constant
    feature, for an intercept.

    Args:
        meta: dataset meta with ``task`` (``regression``) and ``input_shape``.
        **options: none are accepted.

    Raises:
        ConfigError: an option was given, or the dataset is not a regression one.
    """
    resolve_options(NAME, options, {})
    require_task(NAME, meta, ("regression",))
    dim = math.prod(input_shape(NAME, meta, ranks=(1, 2, 3)))

    def init(key: jax.Array, sample_x: jax.Array) -> Params:
        del sample_x  # the size comes from the dataset meta
        return {"w": jax.random.normal(key, (dim,), jnp.float32) * (1.0 / math.sqrt(dim))}

    def apply(params: Params, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x, jnp.float32)
        return x.reshape(x.shape[0], dim) @ params["w"]

    def loss(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        return mean_squared_error(apply(params, x), y)

    def metric(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        return rmse(apply(params, x), y)

    return Model(init, apply, loss, metric, "rmse", NAME)
