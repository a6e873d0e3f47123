"""Push-sum gossip (Kempe et al., FOCS 2003; SGP, Assran et al., ICML 2019).

Each peer keeps a scalar mass ``w`` besides its parameters x (the de-biased estimate).
It sends ``(x * w, w)`` scaled by the share it gives each out-neighbour; a receiver sums
the shares it gets, ``z = Σ a_k z_k``, ``w = Σ a_k w_k``, and sets ``x = z / w``. With a
column-stochastic W (topology weights ``"push"``) the total mass is conserved and the
average of z over peers equals the average of the initial x, on directed graphs too.

Unlike D-PSGD the received shares are *not* renormalised: a lost message loses its mass,
and the ratio z / w stays the right de-biased estimate.

With training (Stochastic Gradient Push, Assran et al., ICML 2019), the local update moves
the numerator, ``z <- z + update``, where the update is computed at the de-biased ``x``; so
``x`` moves by ``update / w`` (``adapt``). Moving ``x`` by the update instead would scale
each peer's gradient by its mass, and the peers would settle at a mass-weighted optimum.
Catching up from a neighbour's parameters keeps this peer's mass (the default ``rebase``
keeps the state), so the total mass stays the same.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gossip.errors import ConfigError
from gossip.rules.base import GossipRule, Params, weighted_sum


class PushSumState(NamedTuple):
    """Push-sum state.

    Attributes:
        weight: () float32 push-sum mass of this peer (1 at start).
    """

    weight: jax.Array


class PushSumPayload(NamedTuple):
    """What a peer sends: its mass-weighted parameters and its mass."""

    z: Params
    weight: jax.Array


def push_sum(local_steps: int = 1) -> GossipRule:
    """Builds push-sum gossip (adapt-then-combine).

    Args:
        local_steps: local optimizer steps per round (H >= 1).

    Returns:
        The rule. Use it with column-stochastic weights (``weights="push"``).
    """
    if local_steps < 1:
        raise ConfigError(f"local_steps must be >= 1, got {local_steps}")

    def init(params: Params) -> PushSumState:
        del params
        return PushSumState(weight=jnp.ones((), jnp.float32))

    def message(params: Params, state: PushSumState) -> PushSumPayload:
        z = jax.tree.map(lambda x: x * state.weight.astype(x.dtype), params)
        return PushSumPayload(z=z, weight=state.weight)

    def mix(params: Params, state: PushSumState, payloads: PushSumPayload, weights: jax.Array,
            self_weight: jax.Array) -> tuple[Params, PushSumState]:
        own = message(params, state)
        total = weighted_sum(own, payloads, weights, self_weight)
        new_params = jax.tree.map(lambda z: z / total.weight.astype(z.dtype), total.z)
        return new_params, PushSumState(weight=total.weight)

    def adapt(params: Params, state: PushSumState, update: Params
              ) -> tuple[Params, PushSumState]:
        return jax.tree.map(lambda x, u: x + u / state.weight.astype(x.dtype), params,
                            update), state

    return GossipRule("push_sum", init, message, mix, adapt=adapt,
                      local_steps=local_steps, order="atc", stochastic="column")
