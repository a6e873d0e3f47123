"""Matrix factorisation for (user, item) -> rating prediction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from gossip.models.base import (
    Model,
    from_module,
    meta_int,
    option_int,
    require_task,
    resolve_options,
)

from gossip.errors import ConfigError

NAME = "mf"
DEFAULTS = {"rank": 16, "global_bias": 3.0}
FACTOR_INIT = nn.initializers.normal(stddev=0.1)


class MatrixFactorization(nn.Module):
    """``rating(u, i) = <p_u, q_i> + b_u + b_i + b``.

    Attributes:
        n_users: number of users.
        n_items: number of items.
        rank: width of the user and item factors.
        global_bias: initial value of the global bias ``b`` (the middle of the rating scale).
    """

    n_users: int
    n_items: int
    rank: int
    global_bias: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps int32 ``(B, 2)`` (user, item) ids to predicted ratings ``(B,)`` float32."""
        users, items = x[:, 0], x[:, 1]
        p = nn.Embed(self.n_users, self.rank, embedding_init=FACTOR_INIT, name="user")(users)
        q = nn.Embed(self.n_items, self.rank, embedding_init=FACTOR_INIT, name="item")(items)
        zeros = nn.initializers.zeros
        b_user = nn.Embed(self.n_users, 1, embedding_init=zeros, name="user_bias")(users)
        b_item = nn.Embed(self.n_items, 1, embedding_init=zeros, name="item_bias")(items)
        bias = self.param("bias", nn.initializers.constant(self.global_bias), (), jnp.float32)
        return jnp.sum(p * q, axis=-1) + b_user[:, 0] + b_item[:, 0] + bias


def make_mf(meta: Mapping[str, Any], **options: Any) -> Model:
    """Builds the ``mf`` model for task ``ratings``.

    ``x`` is ``(B, 2)`` int32 (user, item) ids, ``y`` ``(B,)`` float32 ratings; ``apply``
    gives predictions ``(B,)``; loss is the mean squared error and the metric the RMSE.

    Args:
        meta: dataset meta with ``task == "ratings"``, ``n_users`` and ``n_items``.
        **options: ``rank``: width of the user and item factors (default 16);
            ``global_bias``: initial global bias (default 3.0, the middle of a 1-5 scale).

    Raises:
        ConfigError: unknown or bad option, or a task other than ``ratings``.
    """
    opts = resolve_options(NAME, options, DEFAULTS)
    rank = option_int(NAME, "rank", opts["rank"])
    global_bias = opts["global_bias"]
    if isinstance(global_bias, bool) or not isinstance(global_bias, int | float):
        raise ConfigError(f"model {NAME!r}: option 'global_bias' must be a number, "
                          f"got {global_bias!r}")
    require_task(NAME, meta, ("ratings",))
    module = MatrixFactorization(meta_int(NAME, meta, "n_users"),
                                 meta_int(NAME, meta, "n_items"), rank, float(global_bias))
    return from_module(NAME, module, "ratings", input_dtype=jnp.int32)
