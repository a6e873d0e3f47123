"""Running-sum push-sum: push-sum that stays exact under lost, late and repeated messages.

Hadjicostis, Vaidya and Domínguez-García, "Robust distributed average consensus via exchange
of running sums" (IEEE TAC 2016). Plain push-sum (:mod:`gossip.rules.push_sum`) sends each
round's share of ``(z, w) = (w x, w)``; a lost message loses that mass for good. Here a peer
sends the **running sum** of every share it ever pushed, ``σ = Σ_t (z_t, w_t)``, and the
receiver keeps, per in-link, the last running sum it took in, ``ρ_k``. Mixing adds
``a_k (σ_k − ρ_k)``: what that neighbour pushed since the last message that arrived. A lost
message is carried by the next one that arrives, so no mass is lost and the ratio ``z / w``
still converges to the exact average; late, repeated or skipped (stale) messages are just as
safe, which is what asynchronous gossip needs (``modes`` includes ``"async"``).

Slot ``k`` of the mix must be the same in-neighbour in every round, so the rule needs a static
topology (``static=True``); its state holds ``ρ`` for ``slots`` in-links.

Numbers. ``σ`` grows linearly with time, and float32 ``σ_t − σ_{t−1}`` would lose about
``t`` ulps of a share each round, a drift of the total mass that grows like ``t²``. The running
sums are therefore kept compensated (Kahan/TwoSum): ``σ = hi + lo`` exactly, both travel, and
the receiver forms ``(hi − ρ_hi) + (lo − ρ_lo)`` with an exact TwoSum for the large part. The
cost: the payload is twice push-sum's (the running sum and its compensation).

The mass of a message to a neighbour the peer knows it cannot reach is *not* kept back (plain
push-sum keeps it, ``undelivered`` in :mod:`gossip.round`): it is in the running sum, and the
neighbour takes it in when it comes back. A neighbour that never comes back keeps that mass.

Weight drain. Under asynchrony a peer can push many times between two arrivals (its
in-neighbours are slow, away, or cut off): each push gives away a share of its weight, which
falls geometrically. Two choices keep such a peer sound:

- The local update enters the numerator scaled by the weight (``z += w·u``: the de-biased
  parameters move by exactly ``u``), not whole as in SGP (``z += u``, parameters ``+= u / w``,
  which explodes as ``w → 0``). The network average then moves by the *weight-weighted* mean
  of the updates. In sync mode on a regular graph every weight stays 1 and the two agree; under
  asynchrony a peer that pushes k times as often holds about 1/k of the weight, so every peer's
  data counts about equally per unit of time instead of in proportion to its speed.
- A peer whose weight is below ``MIN_PUSH_WEIGHT`` pushes nothing (its running sums stay, it
  keeps its whole mass) until mass arrives: its weight never reaches float32's subnormals,
  where ``z / w`` would lose its precision and then divide 0 by 0. No mass is lost.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gossip.errors import ConfigError
from gossip.rules.base import GossipRule, Params, weighted_sum

# Below this weight a peer stops pushing until mass arrives (2^-60: far below any weight of a
# live graph, far above float32's smallest normal, 2^-126).
MIN_PUSH_WEIGHT = 2.0 ** -60


class RunningSumState(NamedTuple):
    """Running-sum push-sum state of one peer (leaves of ``params`` have shapes S).

    Attributes:
        weight: () float32 push-sum mass (1 at start); the numerator is ``params * weight``.
        sent: ``(hi, lo)``: the compensated running sum of every ``z`` this peer pushed,
            two pytrees like ``params``.
        sent_weight: (2,) the running sum of its masses, ``[hi, lo]``.
        seen: ``(hi, lo)``: per in-link slot, the last running sum taken in, two pytrees with
            leaves (K, *S).
        seen_weight: (K, 2) the same for the masses.
    """

    weight: jax.Array
    sent: tuple[Params, Params]
    sent_weight: jax.Array
    seen: tuple[Params, Params]
    seen_weight: jax.Array


class RunningSumPayload(NamedTuple):
    """What a peer sends: its compensated running sums.

    Attributes:
        z: ``(hi, lo)``, two pytrees like ``params``: Σ of the numerators it pushed.
        weight: (2,) ``[hi, lo]``: Σ of the masses it pushed.
    """

    z: tuple[Params, Params]
    weight: jax.Array


def two_sum(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Knuth's TwoSum: ``(s, e)`` with ``s = fl(a + b)`` and ``a + b = s + e`` exactly."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _accumulate(hi: jax.Array, lo: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    s, e = two_sum(hi, x)
    return s, lo + e


def _difference(hi: jax.Array, lo: jax.Array, seen_hi: jax.Array, seen_lo: jax.Array
                ) -> jax.Array:
    """``(hi + lo) − (seen_hi + seen_lo)`` to about one rounding of the result."""
    d, e = two_sum(hi, -seen_hi)
    return d + (e + (lo - seen_lo))


def running_push_sum(local_steps: int = 1, slots: int = 1) -> GossipRule:
    """Builds running-sum push-sum (adapt-then-combine; sync and async).

    Args:
        local_steps: local optimizer steps per round (H >= 1).
        slots: K, the number of in-link slots of the topology (its largest in-degree): the
            rule keeps the last running sum seen on each.

    Returns:
        The rule, named ``"push_sum"`` (it is push-sum's asynchronous mode). Use it with
        column-stochastic weights (``weights="push"``) on a static topology.

    Raises:
        ConfigError: ``local_steps`` < 1 or ``slots`` < 1.
    """
    if local_steps < 1:
        raise ConfigError(f"local_steps must be >= 1, got {local_steps}")
    if slots < 1:
        raise ConfigError(f"slots must be >= 1, got {slots}")

    def init(params: Params) -> RunningSumState:
        zeros = jax.tree.map(jnp.zeros_like, params)
        seen = jax.tree.map(lambda x: jnp.zeros((slots, *x.shape), x.dtype), params)
        return RunningSumState(jnp.ones((), jnp.float32), (zeros, zeros),
                               jnp.zeros((2,), jnp.float32), (seen, seen),
                               jnp.zeros((slots, 2), jnp.float32))

    def pushed(params: Params, state: RunningSumState, allowed: jax.Array | bool = True
               ) -> tuple[Params, RunningSumPayload]:
        """This round's numerator and the running sums that include it (unchanged when the
        weight is too small to push, ``MIN_PUSH_WEIGHT``, or the push is not ``allowed``)."""
        z = jax.tree.map(lambda x: x * state.weight.astype(x.dtype), params)
        push = _pushes(state) & allowed
        hi, lo = state.sent
        pairs = jax.tree.map(lambda h, lo_, x: _accumulate(h, lo_, jnp.where(push, x, 0)),
                             hi, lo, z)
        new_hi = jax.tree.map(lambda _, p: p[0], z, pairs)
        new_lo = jax.tree.map(lambda _, p: p[1], z, pairs)
        w_hi, w_lo = _accumulate(state.sent_weight[0], state.sent_weight[1],
                                 jnp.where(push, state.weight, 0))
        return z, RunningSumPayload((new_hi, new_lo), jnp.stack([w_hi, w_lo]))

    def message(params: Params, state: RunningSumState) -> RunningSumPayload:
        return pushed(params, state)[1]

    def mix(params: Params, state: RunningSumState, payloads: RunningSumPayload,
            weights: jax.Array, self_weight: jax.Array) -> tuple[Params, RunningSumState]:
        # A self weight of 1 (``absorb``: the peer has sent its last message) pushes nothing,
        # so the running sums stay those of its last message.
        allowed = self_weight < 1
        z, sent = pushed(params, state, allowed)
        # A peer that pushed nothing keeps its whole mass.
        self_weight = jnp.where(_pushes(state) & allowed, self_weight, 1)
        arrived = weights > 0
        (p_hi, p_lo), (s_hi, s_lo) = payloads.z, state.seen
        dz = jax.tree.map(_difference, p_hi, p_lo, s_hi, s_lo)
        dw = _difference(payloads.weight[:, 0], payloads.weight[:, 1],
                         state.seen_weight[:, 0], state.seen_weight[:, 1])
        # A slot whose message did not arrive has weight 0: its difference adds nothing and
        # its ρ stays, so the next message that arrives brings the whole difference.
        dz = jax.tree.map(lambda d: jnp.where(_lead(arrived, d), d, 0), dz)
        dw = jnp.where(arrived, dw, 0)
        total = weighted_sum(z, dz, weights, self_weight)
        weight = self_weight * state.weight + jnp.sum(weights * dw)
        new_params = jax.tree.map(lambda t: t / weight.astype(t.dtype), total)
        keep = lambda new, old: jnp.where(_lead(arrived, new), new, old)  # noqa: E731
        seen = (jax.tree.map(keep, p_hi, s_hi), jax.tree.map(keep, p_lo, s_lo))
        seen_weight = jnp.where(arrived[:, None], payloads.weight, state.seen_weight)
        return new_params, RunningSumState(weight, sent.z, sent.weight, seen, seen_weight)

    def adapt(params: Params, state: RunningSumState, update: Params
              ) -> tuple[Params, RunningSumState]:
        # z += w·u: the parameters move by u whatever the weight (see the module's notes).
        return jax.tree.map(jnp.add, params, update), state

    return GossipRule("push_sum", init, message, mix, adapt=adapt, local_steps=local_steps,
                      order="atc", stochastic="column", static=True, modes=("sync", "async"))


def _pushes(state: RunningSumState) -> jax.Array:
    """() bool: the peer's weight is large enough to push (``MIN_PUSH_WEIGHT``)."""
    return state.weight >= MIN_PUSH_WEIGHT


def _lead(mask: jax.Array, like: jax.Array) -> jax.Array:
    """``mask`` (K,) shaped to broadcast against ``like`` (K, ...)."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - 1))
