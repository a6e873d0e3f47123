"""Small convolutional networks over 1-D signals (``cnn1d``) and 2-D images (``cnn2d``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
from gossip.models.base import (
    Model,
    dense_head,
    from_module,
    input_shape,
    num_outputs,
    option_int,
    option_widths,
    require_task,
    resolve_options,
)

TASKS = ("classification", "regression")


class CNN(nn.Module):
    """Blocks of conv (SAME padding) + ReLU + 2x max-pool, then dense + ReLU, then a head.

    Pooling halves every spatial axis longer than 1 (rounding up), so any input size works.

    Attributes:
        shape: the shape of one sample with its channel axis, ``(L, C)`` or ``(H, W, C)``.
        channels: output channels of each conv block.
        kernel: kernel size along every spatial axis.
        hidden: width of the dense layer before the head.
        num_outputs: C logits, or None for one regression output.
    """

    shape: tuple[int, ...]
    channels: tuple[int, ...]
    kernel: int
    hidden: int
    num_outputs: int | None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(B, *input_shape)`` float32 to logits ``(B, C)`` or predictions ``(B,)``.

        ``input_shape`` is ``self.shape`` or ``self.shape`` without its channel axis.
        """
        h = x.reshape(x.shape[0], *self.shape)
        spatial = len(self.shape) - 1
        for i, width in enumerate(self.channels):
            h = nn.Conv(width, (self.kernel,) * spatial, padding="SAME", name=f"conv_{i}")(h)
            h = nn.relu(h)
            window = tuple(2 if d > 1 else 1 for d in h.shape[1:-1])
            h = nn.max_pool(h, window, strides=window, padding="SAME")
        h = nn.relu(nn.Dense(self.hidden, name="dense")(h.reshape(h.shape[0], -1)))
        return dense_head(h, self.num_outputs)


def _make_cnn(name: str, spatial: int, default_kernel: int, meta: Mapping[str, Any],
              options: Mapping[str, Any]) -> Model:
    defaults = {"channels": (16, 32), "kernel": default_kernel, "hidden": 64}
    opts = resolve_options(name, options, defaults)
    channels = option_widths(name, "channels", opts["channels"], allow_empty=False)
    kernel = option_int(name, "kernel", opts["kernel"])
    hidden = option_int(name, "hidden", opts["hidden"])
    task = require_task(name, meta, TASKS)
    shape = input_shape(name, meta, ranks=(spatial, spatial + 1))
    if len(shape) == spatial:
        shape = (*shape, 1)
    module = CNN(shape, channels, kernel, hidden, num_outputs(name, meta, task))
    return from_module(name, module, task)


def make_cnn1d(meta: Mapping[str, Any], **options: Any) -> Model:
    """Builds ``cnn1d`` for 1-D inputs ``(L,)`` or ``(L, C)`` (a channel axis is added).

    Args:
        meta: dataset meta with ``task`` (classification or regression), ``input_shape``
            and, for classification, ``num_classes``.
        **options: ``channels`` (default ``(16, 32)``), ``kernel`` (default 5),
            ``hidden`` (dense layer width, default 64).

    Returns:
        Logits ``(B, num_classes)`` or predictions ``(B,)``.

    Raises:
        ConfigError: unknown or bad option, another task, or an input of another rank.
    """
    return _make_cnn("cnn1d", 1, 5, meta, options)


def make_cnn2d(meta: Mapping[str, Any], **options: Any) -> Model:
    """Builds ``cnn2d`` for images ``(H, W)`` or ``(H, W, C)`` (a channel axis is added).

    Args:
        meta: dataset meta with ``task`` (classification or regression), ``input_shape``
            and, for classification, ``num_classes``.
        **options: ``channels`` (default ``(16, 32)``), ``kernel`` (default 3),
            ``hidden`` (dense layer width, default 64).

    Returns:
        Logits ``(B, num_classes)`` or predictions ``(B,)``.

    Raises:
        ConfigError: unknown or bad option, another task, or an input of another rank.
    """
    return _make_cnn("cnn2d", 2, 3, meta, options)
