"""Gossip rules: pure ``init``/``message``/``mix`` functions over one peer's parameters."""

from __future__ import annotations

from collections.abc import Callable

from gossip.errors import unknown
from gossip.rules.base import (
    GossipRule,
    add_update,
    check_weights,
    renormalised_average,
    weighted_sum,
)
from gossip.rules.dpsgd import dpsgd, local_sgd
from gossip.rules.push_sum import PushSumPayload, PushSumState, push_sum

RULES: dict[str, Callable[[int], GossipRule]] = {
    "dpsgd": lambda local_steps: dpsgd(local_steps, order="atc"),
    "dpsgd_cta": lambda local_steps: dpsgd(local_steps, order="cta"),
    "local_sgd": local_sgd,
    "push_sum": push_sum,
}

# Topology weights each rule expects when the user names none (None: the topology's default).
DEFAULT_WEIGHTS: dict[str, str | None] = {"push_sum": "push"}


def make_rule(name: str, local_steps: int = 1) -> GossipRule:
    """Builds a gossip rule by name.

    Args:
        name: one of ``RULES``.
        local_steps: local optimizer steps per round (H).

    Returns:
        The rule.

    Raises:
        ConfigError: for an unknown name or a bad ``local_steps``.
    """
    if name not in RULES:
        raise unknown("gossip rule", name, RULES)
    return RULES[name](local_steps)


__all__ = [
    "DEFAULT_WEIGHTS",
    "RULES",
    "GossipRule",
    "add_update",
    "check_weights",
    "PushSumPayload",
    "PushSumState",
    "dpsgd",
    "local_sgd",
    "make_rule",
    "push_sum",
    "renormalised_average",
    "weighted_sum",
]
