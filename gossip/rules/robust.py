"""Byzantine-robust aggregation: a wrapper around the mix of a rule that sends its parameters.

``robust(rule, name, byzantine)`` keeps the rule's message, local update and state, and
replaces its weighted average of the K received payloads by a robust aggregate. Every
aggregator takes the round's padded slots as the plain mix does: a slot with weight 0 (a
padding slot of the simulator's fixed K, or a message that did not arrive) is ignored.

- ``clip`` (self-centred clipping, ClippedGossip; He, Karimireddy and Jaggi 2022):
  ``x' = x + Σ_k ŵ_k clip(p_k − x, τ)`` with ``ŵ`` the weights renormalised over the self
  weight and the messages that arrived and ``clip(z, τ) = z · min(1, τ/‖z‖)``. The radius
  adapts every round: τ is the (f+1)-th largest distance ``‖p_k − x‖`` among the messages
  that arrived, so at most the f farthest are clipped (the paper's practical rule with
  uniform weights: clip the δ = f/K farthest share of the neighbours' weight).
- ``screen``: a distance screen. A message farther than ``SCREEN_FACTOR`` times the median
  distance of the messages that arrived is rejected (weight 0) and counted; the rest are
  averaged as by the rule.
- ``trimmed_mean`` (BRIDGE-T, Fang, Yang and Bajwa 2022): per coordinate, the f largest and
  the f smallest of the m received values are dropped, and the m − 2f left are averaged
  with the peer's own value (uniform weights). With m <= 2f the peer keeps its own value.
- ``median`` (BRIDGE-M): per coordinate, the median of the peer's own value and the m
  received values.

The state is :class:`RobustState`: the wrapped rule's and ``flagged``, the number of
messages this peer clipped or rejected so far. What each aggregator guarantees and assumes
is in docs/robustness.md.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gossip.errors import ConfigError, unknown
from gossip.rules.base import GossipRule, Params, Payload

ROBUST = ("clip", "screen", "trimmed_mean", "median")
SCREEN_FACTOR = 3.0  # a message farther than this times the median distance is rejected


class RobustState(NamedTuple):
    """State of a robust rule.

    Attributes:
        inner: the wrapped rule's state.
        flagged: () int32, messages this peer clipped (``clip``) or rejected (``screen``)
            so far; 0 for ``trimmed_mean`` and ``median``.
    """

    inner: Any
    flagged: jax.Array


def distances(own: Params, payloads: Payload) -> jax.Array:
    """(K,) Euclidean distances ``‖p_k − own‖`` over all leaves (inf when they overflow)."""
    sq = [jnp.sum(((p - x[None]) ** 2).reshape(p.shape[0], -1), axis=1)
          for x, p in zip(jax.tree.leaves(own), jax.tree.leaves(payloads), strict=True)]
    return jnp.sqrt(sum(sq))


def _select(valid: jax.Array, value: jax.Array) -> jax.Array:
    """``value`` where ``valid`` (leading axis K) else 0, never inf*0 = nan."""
    return jnp.where(valid.reshape(valid.shape + (1,) * (value.ndim - 1)), value, 0)


# Up to this many slots, sort_slots sorts with compare-exchanges (element-wise, fused by
# XLA); XLA's CPU sort along a short leading axis is ~60x slower (16 peers x 5 slots x the
# digits MLP: 53 ms against 0.8 ms), and it dominated a round of trimmed_mean and median.
NETWORK_SLOTS = 16


def sort_slots(values: jax.Array) -> jax.Array:
    """``jnp.sort(values, axis=0)``, bit for bit, faster for a short leading axis.

    Odd-even transposition sort: K passes of compare-exchanges of neighbouring slots that
    swap only when the second is strictly less in ``jnp.sort``'s order (-0 equals 0, NaN
    after everything). Swapping only neighbours that are strictly out of order keeps equal
    values in their order, so it is stable, as ``jnp.sort``: the same output, -0 and NaN
    included.

    Args:
        values: (K, ...) floating values.

    Returns:
        (K, ...) sorted along the leading axis.
    """
    k = values.shape[0]
    if k > NETWORK_SLOTS:
        return jnp.sort(values, axis=0)
    rows = [values[i] for i in range(k)]
    for r in range(k):
        for i in range(r % 2, k - 1, 2):
            a, b = rows[i], rows[i + 1]
            swap = (b < a) | (jnp.isnan(a) & ~jnp.isnan(b))
            rows[i], rows[i + 1] = jnp.where(swap, b, a), jnp.where(swap, a, b)
    return jnp.stack(rows)


def masked_median(values: jax.Array, valid: jax.Array) -> jax.Array:
    """The median over the leading axis of the entries where ``valid``.

    Args:
        values: (K, ...) values.
        valid: (K,) bool; at least one entry should be valid (else the result is inf).

    Returns:
        (...) the median (the mean of the two middle values for an even count).
    """
    filled = jnp.where(valid.reshape(valid.shape + (1,) * (values.ndim - 1)), values, jnp.inf)
    ordered = sort_slots(filled)
    count = jnp.sum(valid)
    lo = jnp.take(ordered, jnp.maximum(count - 1, 0) // 2, axis=0)
    hi = jnp.take(ordered, count // 2, axis=0)
    return (lo + hi) / 2


def clip_radius(dist: jax.Array, valid: jax.Array, byzantine: int) -> jax.Array:
    """() the adaptive radius: the (f+1)-th largest valid distance (0 when m <= f)."""
    ordered = jnp.sort(jnp.where(valid, dist, -jnp.inf))[::-1]
    if byzantine >= dist.shape[0]:
        return jnp.zeros((), dist.dtype)
    return jnp.maximum(ordered[byzantine], 0)  # -inf (fewer than f+1 arrived) -> 0


def clipped_mix(own: Params, payloads: Payload, weights: jax.Array, self_weight: jax.Array,
                byzantine: int) -> tuple[Params, jax.Array]:
    """Self-centred clipping with the adaptive radius.

    Args:
        own: the peer's parameters, leaves S.
        payloads: leaves (K, *S).
        weights: (K,), 0 for a slot without a message.
        self_weight: ().
        byzantine: f, the Byzantine in-neighbours tolerated.

    Returns:
        ``(params, clipped)``: the new parameters and () int32 the messages clipped.
    """
    valid = weights > 0
    dist = distances(own, payloads)
    tau = clip_radius(dist, valid, byzantine)
    clipped = valid & (dist > tau)
    scale = jnp.where(clipped, tau / jnp.where(clipped, dist, 1.0), 1.0)
    share = jnp.where(valid, weights, 0) * scale / (self_weight + jnp.sum(weights))

    def leaf(x: jax.Array, p: jax.Array) -> jax.Array:
        step = _select(valid, share.reshape(share.shape + (1,) * x.ndim).astype(x.dtype)
                       * (p - x[None]))
        return x + jnp.sum(step, axis=0)

    return jax.tree.map(leaf, own, payloads), jnp.sum(clipped).astype(jnp.int32)


def screened_mix(own: Params, payloads: Payload, weights: jax.Array,
                 self_weight: jax.Array) -> tuple[Params, jax.Array]:
    """The distance screen: messages beyond ``SCREEN_FACTOR`` × the median distance get
    weight 0, the rest a renormalised average with ``own``.

    Returns:
        ``(params, rejected)``: the new parameters and () int32 the messages rejected.
    """
    valid = weights > 0
    dist = distances(own, payloads)
    limit = SCREEN_FACTOR * masked_median(dist, valid)
    rejected = valid & ~(dist <= limit)
    kept = valid & ~rejected
    w = jnp.where(kept, weights, 0)
    total = self_weight + jnp.sum(w)

    def leaf(x: jax.Array, p: jax.Array) -> jax.Array:
        ws = (w / total).reshape(w.shape + (1,) * x.ndim).astype(x.dtype)
        return (self_weight / total).astype(x.dtype) * x + jnp.sum(_select(kept, ws * p), 0)

    return jax.tree.map(leaf, own, payloads), jnp.sum(rejected).astype(jnp.int32)


def trimmed_mean(own: Params, payloads: Payload, weights: jax.Array,
                 byzantine: int) -> Params:
    """BRIDGE-T: per coordinate, drop the f largest and f smallest received values, average
    the rest with ``own`` (uniform weights).

    Args:
        own: leaves S.
        payloads: leaves (K, *S).
        weights: (K,), 0 for a slot without a message (only their sign is used).
        byzantine: f.

    Returns:
        A pytree like ``own``.
    """
    valid = weights > 0
    m = jnp.sum(valid)
    keep_n = jnp.maximum(m - 2 * byzantine, 0)

    def leaf(x: jax.Array, p: jax.Array) -> jax.Array:
        filled = jnp.where(valid.reshape((-1,) + (1,) * x.ndim), p, jnp.inf)
        ordered = sort_slots(filled)
        rank = jnp.arange(p.shape[0])
        keep = (rank >= byzantine) & (rank < m - byzantine)
        total = x + jnp.sum(_select(keep, ordered), axis=0)
        return total / (1 + keep_n).astype(x.dtype)

    return jax.tree.map(leaf, own, payloads)


def coordinate_median(own: Params, payloads: Payload, weights: jax.Array) -> Params:
    """BRIDGE-M: per coordinate, the median of ``own`` and the received values."""
    valid = jnp.concatenate([jnp.ones((1,), bool), weights > 0])
    return jax.tree.map(lambda x, p: masked_median(jnp.concatenate([x[None], p]), valid)
                        .astype(x.dtype), own, payloads)


def robust(rule: GossipRule, name: str, byzantine: int = 1) -> GossipRule:
    """Wraps the mix of a rule whose message is its parameters with a robust aggregator.

    Args:
        rule: a rule that sends its parameters (D-PSGD, local SGD, either order).
        name: one of ``ROBUST``.
        byzantine: f >= 0, the Byzantine in-neighbours each peer tolerates (``clip``'s
            radius, ``trimmed_mean``'s trim).

    Returns:
        The rule with its ``mix`` replaced; its state is a :class:`RobustState`.

    Raises:
        ConfigError: an unknown aggregator or a negative f.
    """
    if name not in ROBUST:
        raise unknown("robust aggregator", name, ROBUST)
    if isinstance(byzantine, bool) or not isinstance(byzantine, int) or byzantine < 0:
        raise ConfigError(f"robust_f must be an integer >= 0, got {byzantine!r}")

    def init(params: Params) -> RobustState:
        return RobustState(rule.init(params), jnp.zeros((), jnp.int32))

    def message(params: Params, state: RobustState) -> Payload:
        return rule.message(params, state.inner)

    def aggregate(params: Params, payloads: Payload, weights: jax.Array,
                  self_weight: jax.Array) -> tuple[Params, jax.Array]:
        none = jnp.zeros((), jnp.int32)
        if name == "clip":
            return clipped_mix(params, payloads, weights, self_weight, byzantine)
        if name == "screen":
            return screened_mix(params, payloads, weights, self_weight)
        if name == "trimmed_mean":
            return trimmed_mean(params, payloads, weights, byzantine), none
        return coordinate_median(params, payloads, weights), none

    def mix(params: Params, state: RobustState, payloads: Payload, weights: jax.Array,
            self_weight: jax.Array) -> tuple[Params, RobustState]:
        mixed, flagged = aggregate(params, payloads, weights, self_weight)
        return mixed, RobustState(state.inner, state.flagged + flagged)

    def adapt(params: Params, state: RobustState, update: Params) -> tuple[Params, RobustState]:
        params, inner = rule.adapt(params, state.inner, update)
        return params, state._replace(inner=inner)

    def rebase(params: Params, state: RobustState) -> RobustState:
        return state._replace(inner=rule.rebase(params, state.inner))

    def draw(state: RobustState, key: jax.Array) -> RobustState:
        return state._replace(inner=rule.draw(state.inner, key))

    return rule._replace(init=init, message=message, mix=mix, adapt=adapt, rebase=rebase,
                         draw=draw)
