"""Multinomial logistic regression (classification) or linear regression (regression)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
from gossip.models.base import (
    Model,
    dense_head,
    from_module,
    num_outputs,
    require_task,
    resolve_options,
)

NAME = "logistic"


class Linear(nn.Module):
    """One dense layer on the flattened input.

    Attributes:
        num_outputs: C logits, or None for one regression output.
    """

    num_outputs: int | None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(B, *input_shape)`` float32 to logits ``(B, C)`` or predictions ``(B,)``."""
        return dense_head(x.reshape(x.shape[0], -1), self.num_outputs)


def make_logistic(meta: Mapping[str, Any], **options: Any) -> Model:
    """Builds the ``logistic`` model.

    For task ``classification``: softmax regression, logits ``(B, num_classes)``,
    cross-entropy loss, accuracy. For task ``regression``: linear regression, predictions
    ``(B,)``, mean squared error loss, RMSE. Any input shape; it is flattened.

    Args:
        meta: dataset meta with ``task`` and, for classification, ``num_classes``.
        **options: none are accepted.

    Raises:
        ConfigError: an option was given, or the task is neither of the above.
    """
    resolve_options(NAME, options, {})
    task = require_task(NAME, meta, ("classification", "regression"))
    return from_module(NAME, Linear(num_outputs(NAME, meta, task)), task)
