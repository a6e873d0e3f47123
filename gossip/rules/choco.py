"""Compressed gossip: Choco-Gossip / Choco-SGD, and naive compressed D-PSGD (the control).

Choco (Koloskova, Stich, Jaggi, ICML 2019). Each peer keeps a public copy x̂_i of its
parameters, known to its neighbours, and sends only the compressed change
``q_i = Q(x_i − x̂_i)``; everyone who holds x̂_i adds ``q_i`` to it. The consensus step
moves a peer towards its neighbours' public copies with step size γ::

    x̂_i ← x̂_i + q_i,   s_i ← s_i + Σ_j w_ij q_j   (j = i included)
    x_i ← x_i + γ (s_i − x̂_i)

where ``s_i = Σ_j w_ij x̂_j`` is kept instead of every neighbour's copy (the paper's
memory-efficient form, state 2P). With local steps first (adapt-then-combine) this is
Choco-SGD; without (learning rate 0) it is Choco-Gossip, whose consensus error decays
linearly for any contractive Q and a small enough γ. ``x̂`` *is* the error feedback:
whatever Q drops stays in ``x − x̂`` and is sent later.

The invariant ``s_i = Σ_j w_ij x̂_j`` needs the same W every round and every message
delivered: Choco runs on static topologies, synchronously. Weights are used as given,
normalised by their sum (self included), which is 1 on a full row.

Naive compressed gossip ("gossip the compressed model", the negative control of the Choco
paper): D-PSGD whose messages are ``Q(x_j)`` (with error feedback, ``Q(x_j + e_j)``):
``x_i ← (w_ii x_i + Σ_j w_ij D(q_j)) / Σ w``. It does not preserve the average, and it stalls
at a consensus error set by Q.

Random operators (``rand_k``) draw from a key the round hands the rule at the end of each
round (``rule.draw``; the first round uses a fixed key): different on every peer and round
after the first, the same in every driver.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gossip.compress import (
    Compressor,
    check_tree,
    decode_tree,
    encode_tree,
    error_feedback,
    make_compressor,
)
from gossip.errors import ConfigError
from gossip.rules.base import GossipRule, Params, renormalised_average, weighted_sum

_KEY_SEED = 0x0C0C0


# γ when none is given, from a sweep on digits-MLP (16 and 64 peers, ring and exponential,
# 300 rounds; docs/simulator.md "Choco's consensus step"): close to 1 for the fine quantisers;
# for top_k ten times the ratio up to 0.3 (0.4 already diverged on the exponential graph);
# for rand_k the ratio itself (twice the ratio diverged at 10 %).
AUTO_STEP = {"none": 1.0, "int8": 1.0, "fp16": 1.0, "bf16": 1.0, "int4": 0.5, "sign": 0.2}
TOP_K_STEP = (10.0, 0.3)


def _key(data: jax.Array) -> jax.Array:
    return jax.random.wrap_key_data(data)


def _first_key() -> jax.Array:
    return jax.random.key_data(jax.random.key(_KEY_SEED))


def _draw(comp: Compressor):
    """``rule.draw``: a random operator keeps this peer's key of the round (as raw uint32
    key data, a plain array that vmaps, shards and checkpoints like any other)."""
    def draw(state, key):
        return state._replace(key=jax.random.key_data(key)) if comp.random else state
    return draw


def consensus_step_for(comp_name: str, ratio: float, step: float) -> float:
    """γ: ``step`` if > 0, else a default for the operator (``AUTO_STEP``; top_k:
    ``min(0.3, 10 · ratio)``; rand_k: the ratio)."""
    if step > 0:
        return step
    if comp_name == "top_k":
        return min(TOP_K_STEP[1], TOP_K_STEP[0] * ratio)
    return AUTO_STEP.get(comp_name, ratio)


def _check_payload(comp: Compressor):
    def check(payload, params) -> None:
        check_tree(comp, payload, params)
    return check


class ChocoState(NamedTuple):
    """Choco state.

    Attributes:
        public: the public copy x̂_i (like params).
        neighbourhood: s_i = Σ_j w_ij x̂_j (like params).
        key: (2,) uint32 key data the next message draws from (a random operator's indices).
    """

    public: Params
    neighbourhood: Params
    key: jax.Array


def choco(local_steps: int = 1, compress: str = "none", compress_ratio: float = 0.01,
          consensus_step: float = 0.0) -> GossipRule:
    """Builds Choco-SGD (Choco-Gossip with learning rate 0).

    Args:
        local_steps: local optimizer steps per round (H >= 1).
        compress: the operator (``gossip.compress.COMPRESSORS``, or ``"none"``).
        compress_ratio: fraction kept by ``top_k``/``rand_k``.
        consensus_step: γ in (0, 1]; 0 picks ``consensus_step_for``'s default.

    Returns:
        The rule (adapt-then-combine, static topologies).
    """
    if local_steps < 1:
        raise ConfigError(f"local_steps must be >= 1, got {local_steps}")
    comp = make_compressor(compress, compress_ratio)
    gamma = consensus_step_for(compress, compress_ratio, consensus_step)
    if not 0 < gamma <= 1:
        raise ConfigError(f"consensus_step must be in (0, 1] (0: the default), got {gamma}")

    def init(params: Params) -> ChocoState:
        zeros = jax.tree.map(jnp.zeros_like, params)
        return ChocoState(zeros, zeros, _first_key())

    def message(params: Params, state: ChocoState):
        diff = jax.tree.map(jnp.subtract, params, state.public)
        return encode_tree(comp, diff, _key(state.key))

    def mix(params, state: ChocoState, payloads, weights, self_weight):
        own = decode_tree(comp, message(params, state), params)
        received = jax.vmap(lambda p: decode_tree(comp, p, params))(payloads)
        total = self_weight + jnp.sum(weights)
        moved = weighted_sum(own, received, weights, self_weight)
        neighbourhood = jax.tree.map(lambda s, m: s + m / total.astype(m.dtype),
                                     state.neighbourhood, moved)
        public = jax.tree.map(jnp.add, state.public, own)
        new = jax.tree.map(lambda x, s, h: x + gamma * (s - h), params, neighbourhood, public)
        return new, ChocoState(public, neighbourhood, state.key)

    return GossipRule("choco", init, message, mix, local_steps=local_steps, order="atc",
                      static=True, check=_check_payload(comp), draw=_draw(comp))


class NaiveState(NamedTuple):
    """Naive compressed D-PSGD state: the error-feedback residual and the round's key data."""

    residual: Params
    key: jax.Array


def compressed_dpsgd(local_steps: int = 1, order: str = "atc", compress: str = "top_k",
                     compress_ratio: float = 0.01, error_feedback_: bool = True,
                     name: str = "dpsgd") -> GossipRule:
    """Builds naive compressed D-PSGD: neighbours' models arrive compressed.

    Args:
        local_steps: local optimizer steps per round (H >= 1).
        order: ``"atc"`` or ``"cta"``.
        compress: the operator.
        compress_ratio: fraction kept by the sparsifiers.
        error_feedback_: send ``Q(x + e)`` and keep the residual ``e``.
        name: the rule's name.
    """
    if local_steps < 1:
        raise ConfigError(f"local_steps must be >= 1, got {local_steps}")
    ef = error_feedback(make_compressor(compress, compress_ratio))
    comp = ef.compressor

    def init(params: Params) -> NaiveState:
        return NaiveState(ef.init(params), _first_key())

    def _send(params, state):
        residual = state.residual if error_feedback_ else jax.tree.map(jnp.zeros_like, params)
        return ef.compress(params, residual, _key(state.key))

    def message(params, state: NaiveState):
        return _send(params, state)[0]

    def mix(params, state: NaiveState, payloads, weights, self_weight):
        _, residual = _send(params, state)
        if not error_feedback_:
            residual = state.residual
        received = jax.vmap(lambda p: decode_tree(comp, p, params))(payloads)
        new = renormalised_average(params, received, weights, self_weight)
        return new, NaiveState(residual, state.key)

    return GossipRule(name, init, message, mix, local_steps=local_steps, order=order,
                      check=_check_payload(comp), draw=_draw(comp))

