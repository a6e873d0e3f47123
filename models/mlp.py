"""Multi-layer perceptron with ReLU on the flattened input."""

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
    option_widths,
    require_task,
    resolve_options,
)

NAME = "mlp"
DEFAULTS = {"hidden": (128, 64)}


class MLP(nn.Module):
    """Dense + ReLU layers, then a dense head.

    Attributes:
        hidden: widths of the hidden layers (may be empty: a linear model).
        num_outputs: C logits, or None for one regression output.
    """

    hidden: tuple[int, ...]
    num_outputs: int | None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(B, *input_shape)`` float32 to logits ``(B, C)`` or predictions ``(B,)``."""
        h = x.reshape(x.shape[0], -1)
        for i, width in enumerate(self.hidden):
            h = nn.relu(nn.Dense(width, name=f"hidden_{i}")(h))
        return dense_head(h, self.num_outputs)


def make_mlp(meta: Mapping[str, Any], **options: Any) -> Model:
    """Builds the ``mlp`` model for task ``classification`` or ``regression``.

    Args:
        meta: dataset meta with ``task`` and, for classification, ``num_classes``.
        **options: ``hidden``: list of hidden widths (default ``(128, 64)``).

    Returns:
        Logits ``(B, num_classes)`` with cross-entropy and accuracy, or predictions ``(B,)``
        with mean squared error and RMSE.

    Raises:
        ConfigError: unknown option, bad ``hidden``, or a task other than the two above.
    """
    opts = resolve_options(NAME, options, DEFAULTS)
    hidden = option_widths(NAME, "hidden", opts["hidden"], allow_empty=True)
    task = require_task(NAME, meta, ("classification", "regression"))
    return from_module(NAME, MLP(hidden, num_outputs(NAME, meta, task)), task)
