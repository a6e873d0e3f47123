"""Gossip rules: pure ``init``/``message``/``mix`` functions over one peer's parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gossip.compress import SPARSIFIERS, make_compressor
from gossip.errors import ConfigError, unknown
from gossip.rules.base import (
    GossipRule,
    add_update,
    check_weights,
    renormalised_average,
    weighted_sum,
)
from gossip.rules.choco import ChocoState, choco, compressed_dpsgd
from gossip.rules.dpsgd import dpsgd, local_sgd
from gossip.rules.outer import OUTER_OPTIMIZERS, OuterState, outer
from gossip.rules.push_diging import PushDigingPayload, PushDigingState, push_diging
from gossip.rules.push_sum import PushSumPayload, PushSumState, push_sum
from gossip.rules.robust import ROBUST, RobustState, robust
from gossip.rules.running_sum import RunningSumPayload, RunningSumState, running_push_sum
from gossip.rules.tracking import (
    D2State,
    QGState,
    TrackingPayload,
    TrackingState,
    d2,
    gradient_tracking,
    qg_dsgdm,
)


def _dpsgd(order: str, name: str) -> Callable[..., GossipRule]:
    def make(local_steps: int, compress: str = "none", compress_ratio: float = 0.01,
             error_feedback: bool = True, **_: Any) -> GossipRule:
        if compress == "none":
            rule = dpsgd(local_steps, order=order)
            return rule if name == rule.name else rule._replace(name=name)
        return compressed_dpsgd(local_steps, order, compress, compress_ratio, error_feedback,
                                name=name)
    return make


RULES: dict[str, Callable[..., GossipRule]] = {
    "dpsgd": _dpsgd("atc", "dpsgd"),
    "dpsgd_cta": _dpsgd("cta", "dpsgd_cta"),
    "local_sgd": lambda local_steps, **o: _dpsgd("atc", "local_sgd")(local_steps, **o),
    "push_sum": lambda local_steps, **o: push_sum(local_steps),
    "choco": lambda local_steps, **o: choco(local_steps, o.get("compress", "none"),
                                            o.get("compress_ratio", 0.01),
                                            o.get("consensus_step", 0.0)),
    "gradient_tracking": lambda local_steps, **o: gradient_tracking(local_steps),
    "push_diging": lambda local_steps, **o: push_diging(local_steps),
    "d2": lambda local_steps, **o: d2(local_steps),
    "qg_dsgdm": lambda local_steps, **o: qg_dsgdm(local_steps, o.get("momentum", 0.9)),
}
# Rules whose messages may be compressed (--compress): D-PSGD's send the compressed model
# (the naive control), Choco's the compressed difference to the public copy.
COMPRESSING = ("choco", "dpsgd", "dpsgd_cta", "local_sgd")
# Rules an outer optimizer can wrap (adapt-then-combine, the parameters as the message).
OUTER_RULES = ("dpsgd", "local_sgd")
# Rules whose message is the model, uncompressed: a robust aggregator can replace their
# mix (--robust), and an attacker can forge their message (--attack).
ROBUST_RULES = ("dpsgd", "dpsgd_cta", "local_sgd")
# Rules that need plain SGD as the run's optimizer (they bring their own momentum).
PLAIN_SGD_RULES = ("qg_dsgdm",)

# Rules with an asynchronous mode (``--mode async``) and the factory of that mode:
# ``factory(local_steps, slots)`` with ``slots`` the topology's in-link slots (K).
ASYNC_RULES: dict[str, Callable[[int, int], GossipRule]] = {"push_sum": running_push_sum}

# Topology weights each rule expects when the user names none (None: the topology's default).
DEFAULT_WEIGHTS: dict[str, str | None] = {"push_sum": "push", "push_diging": "push"}


def make_rule(name: str, local_steps: int = 1, *, compress: str = "none",
              compress_ratio: float = 0.01, error_feedback: bool = True,
              consensus_step: float = 0.0, momentum: float = 0.9,
              outer_optimizer: str = "none", outer_lr: float = 0.7,
              outer_momentum: float = 0.9, robust_mix: str = "none",
              robust_f: int = 1) -> GossipRule:
    """Builds a gossip rule by name.

    Args:
        name: one of ``RULES``.
        local_steps: local optimizer steps per round (H).
        compress: compression operator of the messages (``gossip.compress.COMPRESSORS``;
            ``"none"``); only for the ``COMPRESSING`` rules.
        compress_ratio: fraction of each leaf that ``top_k``/``rand_k`` keep, in (0, 1].
        error_feedback: naive compressed D-PSGD keeps the residual of what Q dropped
            (Choco's public copies are its own error feedback).
        consensus_step: Choco's γ (0: the operator's default).
        momentum: QG-DSGDm's β.
        outer_optimizer: ``"none"``, or an outer optimizer (``OUTER_OPTIMIZERS``) wrapping
            an ``OUTER_RULES`` rule.
        outer_lr: the outer learning rate.
        outer_momentum: the outer momentum.
        robust_mix: ``"none"``, or a robust aggregator (``ROBUST``) replacing the mix of a
            ``ROBUST_RULES`` rule (uncompressed); an outer optimizer wraps the robust rule.
        robust_f: the Byzantine in-neighbours the aggregator tolerates (f).

    Returns:
        The rule.

    Raises:
        ConfigError: for an unknown name, a bad value, or an option the rule does not take.
    """
    if name not in RULES:
        raise unknown("gossip rule", name, RULES)
    if isinstance(compress_ratio, bool) or not 0 < compress_ratio <= 1:
        raise ConfigError(f"compress_ratio must be in (0, 1], got {compress_ratio}")
    if compress != "none":
        make_compressor(compress, compress_ratio)  # an unknown operator: one line
        if name not in COMPRESSING:
            raise ConfigError(f"rule {name!r} does not compress its messages; --compress "
                              f"works with {', '.join(COMPRESSING)}")
    elif compress_ratio != 0.01:
        raise ConfigError("compress_ratio needs a sparsifier: --compress "
                          f"{' or '.join(SPARSIFIERS)}")
    elif not error_feedback:
        raise ConfigError("--no-error-feedback needs --compress NAME")
    if compress not in SPARSIFIERS and compress != "none" and compress_ratio != 0.01:
        raise ConfigError(f"compress_ratio applies to {', '.join(SPARSIFIERS)}, not "
                          f"{compress!r}")
    if consensus_step and name != "choco":
        raise ConfigError(f"consensus_step is Choco's γ; rule {name!r} has none")
    if outer_optimizer != "none" and name not in OUTER_RULES:
        raise ConfigError(f"an outer optimizer wraps {', '.join(OUTER_RULES)}, not rule "
                          f"{name!r}")
    if robust_mix != "none":
        if robust_mix not in ROBUST:
            raise unknown("robust aggregator", robust_mix, ROBUST)
        if name not in ROBUST_RULES or compress != "none":
            raise ConfigError(f"--robust {robust_mix} needs a rule that sends its parameters "
                              f"uncompressed ({', '.join(ROBUST_RULES)}), not rule {name!r}"
                              + (f" with --compress {compress}" if compress != "none" else ""))
    rule = RULES[name](local_steps, compress=compress, compress_ratio=compress_ratio,
                       error_feedback=error_feedback, consensus_step=consensus_step,
                       momentum=momentum)
    if robust_mix != "none":
        rule = robust(rule, robust_mix, robust_f)
    if outer_optimizer != "none":
        rule = outer(rule, outer_optimizer, outer_lr, outer_momentum)
    return rule


__all__ = [
    "ASYNC_RULES",
    "COMPRESSING",
    "DEFAULT_WEIGHTS",
    "OUTER_OPTIMIZERS",
    "OUTER_RULES",
    "PLAIN_SGD_RULES",
    "ROBUST",
    "ROBUST_RULES",
    "RULES",
    "RobustState",
    "ChocoState",
    "D2State",
    "GossipRule",
    "OuterState",
    "PushDigingPayload",
    "PushDigingState",
    "PushSumPayload",
    "PushSumState",
    "QGState",
    "RunningSumPayload",
    "RunningSumState",
    "TrackingPayload",
    "TrackingState",
    "add_update",
    "check_weights",
    "choco",
    "compressed_dpsgd",
    "d2",
    "dpsgd",
    "gradient_tracking",
    "local_sgd",
    "make_rule",
    "outer",
    "push_diging",
    "push_sum",
    "qg_dsgdm",
    "renormalised_average",
    "robust",
    "running_push_sum",
    "weighted_sum",
]
