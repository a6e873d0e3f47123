"""Push-DIGing: gradient tracking over push-sum, for directed graphs.

Nedić, Olshevsky and Shi (SIAM J. Optim. 2017). Gradient tracking (``gradient_tracking``)
needs a doubly stochastic W; on a directed graph only column-stochastic weights (each peer
splits what it has among its out-neighbours) are at hand. Push-DIGing runs the tracker
inside push-sum: each peer keeps a numerator ``z_i``, a mass ``w_i`` and a tracker ``y_i`` of
the *sum* of the updates, and its parameters are the de-biased ``x_i = z_i / w_i``::

    y_i ← y_i + u_i(x_i^t) − u_i(x_i^{t−1})        (adapt: the change of the local update)
    send c_ji · (z_i + y_i, y_i, w_i) to each out-neighbour j (self included)
    z_i, y_i, w_i ← the sums of the shares received;   x_i = z_i / w_i

where ``u_i`` is the local update (``−η ∇f_i(x_i)`` with ``--optimizer sgd`` and H = 1). With
a column-stochastic C, ``Σ_i y_i = Σ_i u_i`` and ``Σ_i z_i`` moves by it every round, so the
average ``Σ z / Σ w`` follows the average update; at a fixed point every ``u_i`` is the same
and sums to 0: the peers reach the minimiser of ``Σ_i f_i`` with a constant step, on directed
and time-varying graphs. The state keeps ``x`` (not ``z``) as the parameters, like
``push_sum``. Like push-sum it is not renormalised: a share that is not sent stays with its
sender (``finish(..., undelivered)``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gossip.errors import ConfigError
from gossip.rules.base import GossipRule, Params, weighted_sum


class PushDigingState(NamedTuple):
    """Push-DIGing state.

    Attributes:
        weight: () float32 push-sum mass (1 at start).
        tracker: y_i, the tracker of the sum of the updates (like params).
        previous: the update of the previous round (like params).
    """

    weight: jax.Array
    tracker: Params
    previous: Params


class PushDigingPayload(NamedTuple):
    """What a peer sends (before its share is applied): ``z + y``, ``y`` and its mass."""

    z: Params
    y: Params
    weight: jax.Array


def push_diging(local_steps: int = 1) -> GossipRule:
    """Builds Push-DIGing (adapt-then-combine); use column-stochastic weights (``push``).

    Args:
        local_steps: local optimizer steps per round (H >= 1).
    """
    if local_steps < 1:
        raise ConfigError(f"local_steps must be >= 1, got {local_steps}")

    def init(params: Params) -> PushDigingState:
        zeros = jax.tree.map(jnp.zeros_like, params)
        return PushDigingState(jnp.ones((), jnp.float32), zeros, zeros)

    def adapt(params, state: PushDigingState, update):
        tracker = jax.tree.map(lambda y, u, p: y + u - p, state.tracker, update, state.previous)
        return params, state._replace(tracker=tracker, previous=update)

    def message(params, state: PushDigingState) -> PushDigingPayload:
        z = jax.tree.map(lambda x, y: x * state.weight.astype(x.dtype) + y, params,
                         state.tracker)
        return PushDigingPayload(z, state.tracker, state.weight)

    def mix(params, state: PushDigingState, payloads: PushDigingPayload, weights,
            self_weight):
        total = weighted_sum(message(params, state), payloads, weights, self_weight)
        new = jax.tree.map(lambda z: z / total.weight.astype(z.dtype), total.z)
        return new, PushDigingState(total.weight, total.y, state.previous)

    return GossipRule("push_diging", init, message, mix, adapt=adapt,
                      local_steps=local_steps, order="atc", stochastic="column")
