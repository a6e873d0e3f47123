"""The gossip-rule contract, shaped like an optax ``GradientTransformation``.

A rule is a NamedTuple of pure functions over one peer's parameters (a pytree of arrays)
and the rule's own small state:

- ``payload = rule.message(params, state)``: what this peer sends to its out-neighbours;
- ``params, state = rule.mix(params, state, payloads, weights, self_weight)`` where
  ``payloads`` stacks the K received payloads on a leading axis, ``weights`` (K,) holds
  their mixing weights (0 for a slot whose message did not arrive, or a padding slot),
  and ``self_weight`` () the peer's own weight;
- ``params, state = rule.adapt(params, state, update)``: how a local update (the change the
  optimizer made to ``params`` in the round's local steps) enters the rule's state. D-PSGD
  adds it to the parameters; push-sum adds it to its numerator ``z = w x``, so the
  de-biased ``x`` moves by ``update / w`` (SGP, Assran et al. 2019);
- ``state = rule.rebase(params, state)``: the state after the peer's parameters were
  replaced by a neighbour's (catch-up); push-sum keeps its mass.

The order of a round (local steps, message, exchange, mix) is written once, in
:mod:`gossip.round`; no driver calls these functions in an order of its own. ``order``
says where the local update goes: ``"atc"`` (adapt-then-combine) sends and mixes the
adapted parameters; ``"cta"`` (combine-then-adapt, Lian et al. 2017) sends the parameters
from before the local steps and adapts after the mix, so the exchange can overlap the
computation. ``stochastic`` is the mixing matrix the rule needs: ``"row"`` (rows of W sum
to 1; the rule renormalises over what arrived) or ``"column"`` (columns sum to 1, mass is
conserved: push-sum); :func:`check_weights` checks a topology against it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gossip.errors import ConfigError

Params = Any
State = Any
Payload = Any

_UNROLL_MAX = 64  # largest K whose weighted sum is unrolled
_CHECKED_ROUNDS = 8  # rounds of a time-varying topology whose weights check_weights tests
log = logging.getLogger("gossip")


def add_update(params: Params, state: State, update: Params) -> tuple[Params, State]:
    """The plain ``adapt``: ``params + update`` leaf by leaf, the state unchanged."""
    return jax.tree.map(jnp.add, params, update), state


def keep_state(params: Params, state: State) -> State:
    """The plain ``rebase``: the state is kept (right for state that does not depend on the
    parameters; a rule whose state does gives its own ``rebase``)."""
    del params
    return state


def keep_draw(state: State, key: jax.Array) -> State:
    """The plain ``draw``: a rule that draws no random numbers ignores the key."""
    del key
    return state


class GossipRule(NamedTuple):
    """A gossip rule: pure ``init``/``message``/``mix``/``adapt``/``rebase`` plus settings.

    Attributes:
        name: the rule's registry name.
        init: ``init(params) -> state``.
        message: ``message(params, state) -> payload`` (a pytree of arrays).
        mix: ``mix(params, state, payloads, weights, self_weight) -> (params, state)``;
            ``payloads`` has a leading axis of K received messages, ``weights`` is (K,),
            ``self_weight`` is a scalar.
        adapt: ``adapt(params, state, update) -> (params, state)``: the local update
            (a pytree like ``params``) enters the state.
        rebase: ``rebase(params, state) -> state``: the state that goes with parameters
            taken from a neighbour (catch-up).
        local_steps: local optimizer steps per round (H).
        order: ``"atc"`` or ``"cta"`` (see the module docstring).
        stochastic: ``"row"`` or ``"column"``: the mixing matrix the rule needs.
        static: the rule needs the same W every round (Choco keeps Σ_j w_ij x̂_j).
        check: ``check(payload, params) -> None`` on a received payload (numpy leaves)
            that passed the wire template: the rule's own checks (a compressed payload's
            indices in range, sorted and unique; finite scales); raises ``ValueError``.
            None: nothing beyond the template.
        draw: ``draw(state, key) -> state``: at the end of each round the round hands the
            rule this peer's key of the round, so a rule that draws random numbers for its
            next message (a random compression operator) draws them per peer and round,
            the same in every driver. The default ignores it.
        modes: the modes the rule supports: ``"sync"`` (rounds) and ``"async"`` (a peer
            mixes whatever has arrived, late, repeated or skipped messages included: the
            running-sum push-sum of :mod:`gossip.rules.running_sum`). A rule with
            ``"async"`` sends its mass cumulatively, so the round does not keep back the
            share of a message it could not send (``undelivered``): the next one carries it.
    """

    name: str
    init: Callable[[Params], State]
    message: Callable[[Params, State], Payload]
    mix: Callable[[Params, State, Payload, jax.Array, jax.Array], tuple[Params, State]]
    adapt: Callable[[Params, State, Params], tuple[Params, State]] = add_update
    rebase: Callable[[Params, State], State] = keep_state
    local_steps: int = 1
    order: str = "atc"
    stochastic: str = "row"
    static: bool = False
    check: Callable[[Payload, Params], None] | None = None
    draw: Callable[[State, jax.Array], State] = keep_draw
    modes: tuple[str, ...] = ("sync",)


def check_weights(rule: GossipRule, topology: Any, rounds: int | None = None) -> None:
    """Checks at config time that a topology's weights suit a rule.

    A ``"column"`` rule (push-sum) conserves mass only when every column of W_t sums to 1;
    otherwise it is refused. A ``"row"`` rule (D-PSGD) converges to a weighted average,
    not the mean, when columns do not sum to 1: that gets a warning. Static topologies are
    checked once, time-varying ones over their first rounds (``min(period, 8)``).

    Args:
        rule: the gossip rule.
        topology: a ``gossip.topology.Topology``.
        rounds: the run's number of rounds (bounds the rounds checked), or None.

    Raises:
        ConfigError: the rule needs column-stochastic weights and the topology's are not.
    """
    span = 1 if not topology.time_varying else (topology.period or _CHECKED_ROUNDS)
    span = max(1, min(span, _CHECKED_ROUNDS, rounds or _CHECKED_ROUNDS))
    row = rule.stochastic == "row"
    bad = next((t for t in range(span)
                if not _columns_sum_to_one(topology.round_graph(t), row)), None)
    if bad is None:
        return
    where = f"topology {topology.name!r} with weights {topology.weights!r}"
    if rule.stochastic == "column":
        raise ConfigError(
            f"rule {rule.name!r} needs column-stochastic weights, but the columns of W of "
            f"{where} do not sum to 1 (round {bad}); use weights 'push' (or 'metropolis' "
            "on an undirected graph)")
    log.warning("rule %r on %s: W is not doubly stochastic (columns of round %d do not sum "
                "to 1), so the peers drift to a weighted average, not the mean; use weights "
                "'metropolis' on an undirected graph, or rule 'push_sum'", rule.name, where, bad)


def _columns_sum_to_one(graph: Any, renormalised: bool) -> bool:
    """Whether W's columns sum to 1; with ``renormalised``, W's rows scaled to sum to 1 first
    (what a rule that renormalises over its messages mixes with)."""
    self_w = np.asarray(graph.self_weight, np.float64)
    w = np.asarray(graph.weights, np.float64)
    if renormalised:
        rows = self_w + w.sum(axis=1)
        self_w, w = self_w / rows, w / rows[:, None]
    cols = self_w.copy()
    np.add.at(cols, np.asarray(graph.neighbours).ravel(), w.ravel())
    return bool(np.allclose(cols, 1.0, rtol=0, atol=1e-5))


def weighted_sum(own: Params, payloads: Params, weights: jax.Array, self_weight: jax.Array,
                 ) -> Params:
    """Returns ``self_weight * own + sum_k weights[k] * payloads[k]`` leaf by leaf.

    Args:
        own: a pytree of arrays, leaf shape S.
        payloads: the same pytree with leaves of shape (K, *S).
        weights: (K,) weights of the received payloads.
        self_weight: () weight of ``own``.

    Returns:
        A pytree like ``own``.
    """

    def leaf(x: jax.Array, p: jax.Array) -> jax.Array:
        w = weights.astype(p.dtype)
        out = self_weight.astype(x.dtype) * x
        if w.shape[0] > _UNROLL_MAX:
            return out + jnp.sum(w.reshape(w.shape + (1,) * x.ndim) * p, axis=0)
        # A sum unrolled over the K slots stays elementwise under vmap and fuses with the
        # gather that built ``p``: an order of magnitude faster on CPU than a dot or a reduce.
        for k in range(w.shape[0]):
            out = out + w[k] * p[k]
        return out

    return jax.tree.map(leaf, own, payloads)


def renormalised_average(own: Params, payloads: Params, weights: jax.Array,
                         self_weight: jax.Array) -> Params:
    """Weighted average of ``own`` and the payloads, renormalised over the weights given.

    A message that did not arrive has weight 0, so the remaining weights are rescaled to sum
    to 1: a missing neighbour neither stalls nor biases the round.

    Args:
        own: a pytree of arrays, leaf shape S.
        payloads: the same pytree with leaves of shape (K, *S).
        weights: (K,) weights, 0 where no message arrived.
        self_weight: () weight of ``own`` (> 0).

    Returns:
        A pytree like ``own``.
    """
    total = self_weight + jnp.sum(weights)
    return jax.tree.map(lambda s: s / total.astype(s.dtype),
                        weighted_sum(own, payloads, weights, self_weight))
