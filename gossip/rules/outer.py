"""An outer optimizer over gossip (DiLoCo, Douillard et al. 2023; NoLoCo 2025).

Wraps an adapt-then-combine rule. A round is H inner steps (the run's optimizer), the
inner rule's exchange, then an outer step: the outer gradient is the change the round made
to the parameters, gossip-averaged, ``g = x^t − mix(x^t + u)``, and the outer optimizer
(optax; Nesterov by default) applies it to ``x^t``, the anchor::

    x^{t+1} = x^t + outer_update(g)

computed as ``mix(...) + (g + outer_update(g))``: with outer SGD at lr 1 and no momentum
``outer_update(g) = −g`` exactly, so the round *is* the inner rule's, bit for bit (local
SGD with ``local_sgd``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gossip.errors import ConfigError
from gossip.optim import make_optimizer
from gossip.rules.base import GossipRule, Params

OUTER_OPTIMIZERS = ("sgd", "momentum", "nesterov")


class OuterState(NamedTuple):
    """Outer-optimizer state.

    Attributes:
        inner: the inner rule's state.
        anchor: x^t, the parameters at the start of the round (like params).
        opt_state: the outer optimizer's state.
    """

    inner: Any
    anchor: Params
    opt_state: Any


def outer(rule: GossipRule, optimizer: str = "nesterov", lr: float = 0.7,
          momentum: float = 0.9) -> GossipRule:
    """Wraps ``rule`` (adapt-then-combine) with an outer optimizer.

    Args:
        rule: the inner rule.
        optimizer: ``sgd``, ``momentum`` or ``nesterov``.
        lr: the outer learning rate (> 0).
        momentum: the outer momentum (``momentum``/``nesterov``), in [0, 1).

    Raises:
        ConfigError: an unknown optimizer, a bad value, or a combine-then-adapt rule.
    """
    if optimizer not in OUTER_OPTIMIZERS:
        raise ConfigError(f"unknown outer optimizer {optimizer!r}; valid choices: "
                          f"{', '.join(OUTER_OPTIMIZERS)}")
    if rule.order != "atc":
        raise ConfigError(f"an outer optimizer needs an adapt-then-combine rule, not "
                          f"{rule.name!r}")
    opt = make_optimizer(optimizer, lr, momentum=momentum)

    def init(params: Params) -> OuterState:
        return OuterState(rule.init(params), jax.tree.map(jnp.copy, params), opt.init(params))

    def adapt(params, state: OuterState, update):
        params, inner = rule.adapt(params, state.inner, update)
        return params, state._replace(inner=inner)

    def message(params, state: OuterState):
        return rule.message(params, state.inner)

    def mix(params, state: OuterState, payloads, weights, self_weight):
        mixed, inner = rule.mix(params, state.inner, payloads, weights, self_weight)
        grad = jax.tree.map(jnp.subtract, state.anchor, mixed)
        updates, opt_state = opt.update(grad, state.opt_state, state.anchor)
        new = jax.tree.map(lambda m, g, u: m + (g + u), mixed, grad, updates)
        return new, OuterState(inner, jax.tree.map(jnp.copy, new), opt_state)

    def rebase(params, state: OuterState) -> OuterState:
        return OuterState(rule.rebase(params, state.inner), jax.tree.map(jnp.copy, params),
                          state.opt_state)

    def draw(state: OuterState, key) -> OuterState:
        return state._replace(inner=rule.draw(state.inner, key))

    return rule._replace(init=init, message=message, mix=mix, adapt=adapt, rebase=rebase,
                         draw=draw)
