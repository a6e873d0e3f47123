"""Rules for heterogeneous data: gradient tracking (DSGT), D² / exact diffusion, QG-DSGDm.

All three take the local update ``u`` (what the optimizer's H local steps changed; with
``--optimizer sgd`` and H = 1, ``u = −η ∇f_i(x)``) through ``adapt``, so they work with the
round of :mod:`gossip.round` unchanged. Use them with plain SGD: the rule brings its own
correction (tracking, the D² difference, quasi-global momentum).

**Gradient tracking** (DSGT; Pu & Nedić 2021, "ATC-DIGing" without the adapt inside the
tracker). Each peer keeps a tracker ``y_i`` of the average update and sends two vectors,
``(x_i + y_i, y_i)``::

    y_i ← Σ_j w_ij y_j  + u_i(x_i^t) − u_i(x_i^{t−1})    (adapt: the mixed y plus the change)
    x_i ← Σ_j w_ij (x_j + y_j)                          (mix)

The average of the trackers is the average update, so at a fixed point every peer's update
is the same and sums to 0: the peers reach the minimiser of Σ_i f_i, with a constant step.

**D² / exact diffusion** (Tang et al., ICML 2018; Yuan et al. 2019). With
``ψ^{t+1} = x^t + u(x^t)`` (computed in an equivalent form, see :func:`d2`)::

    x^{t+1} = W̄ (ψ^{t+1} + x^t − ψ^t),   W̄ = (I + W) / 2

Lazy mixing W̄ makes λ_min(W̄) ≥ 0 whatever the graph, which D² needs (λ_min(W) > −1/3;
the uniform ring of even n has λ_min = −1/3 exactly), at the cost of slower mixing.

**QG-DSGDm** (Lin et al., ICML 2021): the local momentum buffer is replaced by a
quasi-global one built from the model's change over whole rounds::

    m = β m̂ + g,   x^{t+½} = x^t − η m,   x^{t+1} = Σ_j w_ij x_j^{t+½}
    m̂ ← μ m̂ + (1 − μ) (x^t − x^{t+1}) / η          (μ = β)

kept here in update units, ``v = −η m̂`` (so ``x^{t+½} = x^t + u + β v``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gossip.errors import ConfigError
from gossip.rules.base import GossipRule, Params, renormalised_average


def _steps(local_steps: int) -> None:
    if local_steps < 1:
        raise ConfigError(f"local_steps must be >= 1, got {local_steps}")


class TrackingState(NamedTuple):
    """Gradient tracking state.

    Attributes:
        tracker: y_i, the tracker of the average update (like params); between rounds the
            mixed Σ_j w_ij y_j, before this round's change is added.
        previous: the update of the previous round (like params).
    """

    tracker: Params
    previous: Params


class TrackingPayload(NamedTuple):
    """What a gradient-tracking peer sends: ``x + y`` and ``y`` (two vectors)."""

    x: Params
    y: Params


def gradient_tracking(local_steps: int = 1) -> GossipRule:
    """Builds gradient tracking (DSGT), adapt-then-combine."""
    _steps(local_steps)

    def init(params: Params) -> TrackingState:
        zeros = jax.tree.map(jnp.zeros_like, params)
        return TrackingState(zeros, zeros)

    def adapt(params, state: TrackingState, update):
        tracker = jax.tree.map(lambda y, u, p: y + u - p, state.tracker, update, state.previous)
        return params, TrackingState(tracker, update)

    def message(params, state: TrackingState) -> TrackingPayload:
        return TrackingPayload(jax.tree.map(jnp.add, params, state.tracker), state.tracker)

    def mix(params, state: TrackingState, payloads: TrackingPayload, weights, self_weight):
        own = message(params, state)
        new = renormalised_average(own.x, payloads.x, weights, self_weight)
        tracker = renormalised_average(own.y, payloads.y, weights, self_weight)
        return new, TrackingState(tracker, state.previous)

    return GossipRule("gradient_tracking", init, message, mix, adapt=adapt,
                      local_steps=local_steps)


class D2State(NamedTuple):
    """D² state: the correction c^t = x^t − ψ^t (like params; 0 at the start)."""

    correction: Params


def d2(local_steps: int = 1) -> GossipRule:
    """Builds D² / exact diffusion with lazy mixing (I + W) / 2.

    Written with the correction ``c = x − ψ``: ``z = x + u + c`` is sent, ``x ← W̄ z`` and
    ``c ← c − (I − W̄) z``, where ``(I − W̄) z`` is computed from the differences
    ``z_i − z_j``. At the fixed point those vanish, so rounding cannot pile up in ``c``:
    the textbook form ``W̄ (ψ^{t+1} + x^t − ψ^t)`` repeats the same float32 rounding every
    round and drifted, linearly in the rounds, to a floor of 3e-5 on ``least_squares``.
    """
    _steps(local_steps)

    def init(params: Params) -> D2State:
        return D2State(jax.tree.map(jnp.zeros_like, params))

    def adapt(params, state: D2State, update):
        return jax.tree.map(lambda x, u, c: x + u + c, params, update, state.correction), state

    def message(params, state: D2State):
        del state
        return params

    def mix(params, state: D2State, payloads, weights, self_weight):
        total = self_weight + jnp.sum(weights)

        def half_laplacian(z: jax.Array, p: jax.Array) -> jax.Array:  # ½ (I − W) z
            w = (weights / total).astype(z.dtype)
            out = jnp.zeros_like(z)
            for k in range(w.shape[0]):
                out = out + w[k] * (z - p[k])
            return 0.5 * out

        step = jax.tree.map(half_laplacian, params, payloads)
        new = jax.tree.map(jnp.subtract, params, step)
        return new, D2State(jax.tree.map(jnp.subtract, state.correction, step))

    def rebase(params, state: D2State) -> D2State:
        del params
        return D2State(jax.tree.map(jnp.zeros_like, state.correction))

    return GossipRule("d2", init, message, mix, adapt=adapt, rebase=rebase,
                      local_steps=local_steps)


class QGState(NamedTuple):
    """QG-DSGDm state.

    Attributes:
        velocity: v = −η m̂, the quasi-global momentum in update units (like params).
        anchor: x^t, the parameters before this round's step (like params).
    """

    velocity: Params
    anchor: Params


def qg_dsgdm(local_steps: int = 1, momentum: float = 0.9) -> GossipRule:
    """Builds QG-DSGDm (quasi-global momentum, μ = β = ``momentum``)."""
    _steps(local_steps)
    if not 0 <= momentum < 1:
        raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
    beta = momentum

    def init(params: Params) -> QGState:
        return QGState(jax.tree.map(jnp.zeros_like, params), jax.tree.map(jnp.copy, params))

    def adapt(params, state: QGState, update):
        half = jax.tree.map(lambda x, u, v: x + u + beta * v, params, update, state.velocity)
        return half, QGState(state.velocity, params)

    def message(params, state: QGState):
        del state
        return params

    def mix(params, state: QGState, payloads, weights, self_weight):
        new = renormalised_average(params, payloads, weights, self_weight)
        velocity = jax.tree.map(lambda v, x, a: beta * v + (1 - beta) * (x - a),
                                state.velocity, new, state.anchor)
        return new, QGState(velocity, state.anchor)

    def rebase(params, state: QGState) -> QGState:
        return QGState(state.velocity, jax.tree.map(jnp.copy, params))

    return GossipRule("qg_dsgdm", init, message, mix, adapt=adapt, rebase=rebase,
                      local_steps=local_steps)
