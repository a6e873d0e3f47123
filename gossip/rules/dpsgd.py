"""Decentralized parallel SGD (D-PSGD) and local SGD with H local steps.

D-PSGD (Lian et al., NeurIPS 2017): every round each peer replaces its parameters with a
weighted average of its own and its in-neighbours', rows of a stochastic mixing matrix W_t.
Local SGD in the decentralized setting (Lin et al., ICLR 2020; Koloskova et al., ICML 2020)
is the same exchange after H local steps instead of one.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from gossip.errors import ConfigError
from gossip.rules.base import GossipRule, Params, renormalised_average


class EmptyState(NamedTuple):
    """D-PSGD keeps no state."""


def dpsgd(local_steps: int = 1, order: str = "atc") -> GossipRule:
    """Builds D-PSGD: the message is the parameters, mixing is a renormalised average.

    Args:
        local_steps: local optimizer steps per round (H >= 1).
        order: ``"atc"`` (adapt-then-combine, default) or ``"cta"`` (combine-then-adapt).

    Returns:
        The rule.
    """
    if local_steps < 1:
        raise ConfigError(f"local_steps must be >= 1, got {local_steps}")
    if order not in ("atc", "cta"):
        raise ConfigError(f"unknown order {order!r}; valid choices: atc, cta")

    def init(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def message(params: Params, state: EmptyState) -> Params:
        del state
        return params

    def mix(params: Params, state: EmptyState, payloads: Params, weights: jax.Array,
            self_weight: jax.Array) -> tuple[Params, EmptyState]:
        return renormalised_average(params, payloads, weights, self_weight), state

    name = "dpsgd" if order == "atc" else "dpsgd_cta"
    return GossipRule(name, init, message, mix, local_steps=local_steps, order=order)


def local_sgd(local_steps: int = 4) -> GossipRule:
    """Builds decentralized local SGD: H local steps, then one D-PSGD exchange.

    Args:
        local_steps: local steps between exchanges (H >= 1).

    Returns:
        The rule (``order="atc"``).
    """
    return dpsgd(local_steps=local_steps, order="atc")._replace(name="local_sgd")
