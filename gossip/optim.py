"""Optimizers by name, built from optax."""

from __future__ import annotations

import optax

from gossip.errors import ConfigError, unknown

OPTIMIZERS = ("adam", "adamw", "momentum", "nesterov", "sgd")


def make_optimizer(name: str, lr: float, *, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> optax.GradientTransformation:
    """Builds an optax optimizer.

    Args:
        name: one of ``OPTIMIZERS``.
        lr: learning rate (> 0).
        momentum: momentum for ``momentum`` and ``nesterov``.
        weight_decay: decoupled weight decay for ``adamw``; L2 added to the gradient otherwise.

    Returns:
        The optax transformation.

    Raises:
        ConfigError: unknown name or a non-positive learning rate.
    """
    if name not in OPTIMIZERS:
        raise unknown("optimizer", name, OPTIMIZERS)
    if not lr > 0:
        raise ConfigError(f"lr must be > 0, got {lr}")
    if not 0 <= momentum < 1:
        raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
    if weight_decay < 0:
        raise ConfigError(f"weight_decay must be >= 0, got {weight_decay}")
    if name == "adamw":
        return optax.adamw(lr, weight_decay=weight_decay)
    base = {
        "sgd": lambda: optax.sgd(lr),
        "momentum": lambda: optax.sgd(lr, momentum=momentum),
        "nesterov": lambda: optax.sgd(lr, momentum=momentum, nesterov=True),
        "adam": lambda: optax.adam(lr),
    }[name]()
    if weight_decay:
        return optax.chain(optax.add_decayed_weights(weight_decay), base)
    return base
