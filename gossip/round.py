"""One peer's round, written once: local steps, message, [exchange], mix.

Every driver runs a round through these pure functions and nothing else: the round
simulator vmaps them over all peers around a gather, the real peer puts ZeroMQ between
them. The order of the steps, and where the local update enters the gossip rule's state
(``rule.adapt``), lives here only.

A round of one peer::

    early         = round.early(state)              # cta: the message, before any work
    pending, loss = round.local(state, shard, key)  # the H local steps, adapted
    message       = round.message(pending, early)   # atc: from the adapted state; cta: early
    ... send ``message`` (as soon as it exists: a cta peer sends ``early`` while ``local``
    runs), receive K payloads ...
    state         = round.finish(pending, payloads, weights, self_weight, undelivered)

``round.begin(state, shard, key)`` is the first three in one call, for drivers that do not
overlap sending with computing. ``local`` is the heavy part: the simulator runs it over
chunks of peers and computes the (cheap) messages apart, so they fuse with its gather.
``round.adopt(state, params)`` is the catch-up transition: a neighbour's parameters replace
this peer's, the rule keeps what it must (push-sum its mass) and the optimizer state stays.

Two pure transitions guard a round against numbers that are not finite (a neighbour's
well-formed but hostile values, or a diverging step): ``finite(tree)`` says whether every
floating leaf is finite, and ``keep_finite(new, old)`` keeps ``old`` when ``new`` is not.
What a driver does about it (roll back, blame the neighbours of the last mix, count) is the
driver's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gossip.rules import GossipRule

Params = Any
Payload = Any
# local_round(params, opt_state, x, y, size, key) -> (params, opt_state, loss): H local steps
# (gossip.training.make_local_round).
LocalRound = Callable[..., tuple[Params, Any, jax.Array]]
# The rule's key of a round (``rule.draw``) is fold_in(round key, DRAW_SALT); the local steps
# use fold_in(round key, h) for h < H.
DRAW_SALT = 0x7FFFFFFF


class PeerState(NamedTuple):
    """What one peer carries from round to round.

    Attributes:
        params: the peer's model parameters (a pytree; leaves of any shape S).
        opt_state: its optax optimizer state.
        rule_state: its gossip-rule state (e.g. push-sum's () mass).
    """

    params: Params
    opt_state: Any
    rule_state: Any


class Shard(NamedTuple):
    """One peer's training data.

    Attributes:
        x: (M, *X) inputs, possibly padded past ``size`` (the simulator pads to a common M).
        y: (M, *Y) targets.
        size: () int32 number of valid rows (>= 1).
    """

    x: jax.Array
    y: jax.Array
    size: jax.Array


class Pending(NamedTuple):
    """A round between its local work and its mix.

    Attributes:
        params: what the mix starts from (``atc``: after the local update; ``cta``: before).
        opt_state: the optimizer state after the local steps.
        rule_state: the rule state the mix starts from.
        update: ``cta`` only: the local update, adapted after the mix (None for ``atc``).
        draw: (2,) uint32 key data of this peer's round key for the rule (``rule.draw``),
            handed to the rule at the end of ``finish``.
    """

    params: Params
    opt_state: Any
    rule_state: Any
    update: Params | None
    draw: jax.Array


class PeerRound(NamedTuple):
    """The per-peer round of one rule: pure functions, jit- and vmap-compatible.

    Attributes:
        early: ``early(state) -> message | None``: the message when the rule sends before its
            local steps (``cta``), else None.
        local: ``local(state, shard, key, steps=None) -> (pending, loss)``: the H local
            steps (``loss`` () their mean training loss) and, for ``atc``, the update adapted
            into the state. ``steps`` () int32 in [1, H], given: only the first ``steps`` of
            the H run (time-budgeted local work; ``make_local_round`` masks the rest), and the
            update is what they made.
        message: ``message(pending, early) -> message``: what this peer sends this round.
        begin: ``begin(state, shard, key) -> (message, pending, loss)``: ``early``, ``local``
            and ``message``.
        finish: ``finish(pending, payloads, weights, self_weight, undelivered) -> state``:
            ``payloads`` stacks K received messages (leaves (K, ...)), ``weights`` (K,) their
            weights (0 for a slot with no message), ``self_weight`` (), ``undelivered`` ()
            the weight this peer's own message carried to out-neighbours it knew it could
            not reach (dead, or a full queue) and did not send to. A mass-conserving rule
            (``stochastic == "column"``: push-sum) keeps that share, so a dead neighbour
            does not drain the mass; other rules ignore it.
            Last, the rule gets this round's key (``rule.draw``): what it draws at random
            for its next message (``rand_k``'s indices) differs per peer and round.
        adopt: ``adopt(state, params) -> state``: take a neighbour's parameters (catch-up).
        absorb: ``absorb(state, payloads, weights) -> state``: the mix of a peer that has
            stopped sending (the end of an asynchronous run): it takes in the K payloads
            (leaves (K, ...)) with their weights (K,) and keeps its own share whole (self
            weight 1), since it pushes nothing more. A running-sum rule thus takes in the
            neighbours' last running sums and the total mass stays exact.
    """

    early: Callable[[PeerState], Payload | None]
    local: Callable[[PeerState, Shard, jax.Array], tuple[Pending, jax.Array]]
    message: Callable[[Pending, Payload | None], Payload]
    begin: Callable[[PeerState, Shard, jax.Array], tuple[Payload, Pending, jax.Array]]
    finish: Callable[[Pending, Payload, jax.Array, jax.Array], PeerState]
    adopt: Callable[[PeerState, Params], PeerState]
    absorb: Callable[[PeerState, Payload, jax.Array], PeerState]


def finite(tree: Any) -> jax.Array:
    """() bool: every floating leaf of ``tree`` is finite (integer leaves always are)."""
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)


def keep_finite(new: PeerState, old: PeerState) -> tuple[PeerState, jax.Array]:
    """The state after a transition, unless it is not finite.

    Args:
        new: the state a transition (a mix, local steps) produced.
        old: the state before it (finite).

    Returns:
        ``(state, ok)``: ``new`` and True when its parameters and rule state are finite,
        else ``old`` and False. jit- and vmap-compatible (a select, no branch).
    """
    ok = finite((new.params, new.rule_state))
    state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
    return state, ok


def make_peer_round(rule: GossipRule, local_round: LocalRound) -> PeerRound:
    """Builds the per-peer round of a gossip rule.

    Args:
        rule: the gossip rule (its ``order`` and ``adapt`` are honoured).
        local_round: ``local_round(params, opt_state, x, y, size, key) ->
            (params, opt_state, loss)``, the H local steps of one peer
            (``gossip.training.make_local_round``).

    Returns:
        The round's pure functions.
    """
    cta = rule.order == "cta"
    # A rule that sends running sums (async-capable) carries an unsent share in its next message.
    keeps_mass = rule.stochastic == "column" and "async" not in rule.modes

    def early(state: PeerState) -> Payload | None:
        return rule.message(state.params, state.rule_state) if cta else None

    def local(state: PeerState, shard: Shard, key: jax.Array,
              steps: jax.Array | None = None) -> tuple[Pending, jax.Array]:
        extra = {} if steps is None else {"steps": steps}
        stepped, opt_state, loss = local_round(state.params, state.opt_state, shard.x,
                                               shard.y, shard.size, key, **extra)
        update = jax.tree.map(jnp.subtract, stepped, state.params)
        draw = jax.random.key_data(jax.random.fold_in(key, DRAW_SALT))
        if cta:
            return Pending(state.params, opt_state, state.rule_state, update, draw), loss
        params, rule_state = rule.adapt(state.params, state.rule_state, update)
        return Pending(params, opt_state, rule_state, None, draw), loss

    def message(pending: Pending, early_message: Payload | None) -> Payload:
        return early_message if cta else rule.message(pending.params, pending.rule_state)

    def begin(state: PeerState, shard: Shard, key: jax.Array
              ) -> tuple[Payload, Pending, jax.Array]:
        pending, loss = local(state, shard, key)
        return message(pending, early(state)), pending, loss

    def finish(pending: Pending, payloads: Payload, weights: jax.Array,
               self_weight: jax.Array, undelivered: jax.Array) -> PeerState:
        if keeps_mass:
            self_weight = self_weight + undelivered
        params, rule_state = rule.mix(pending.params, pending.rule_state, payloads, weights,
                                      self_weight)
        if cta:
            params, rule_state = rule.adapt(params, rule_state, pending.update)
        # The key of this round, for what the rule draws in the next one (its message).
        rule_state = rule.draw(rule_state, jax.random.wrap_key_data(pending.draw))
        return PeerState(params, pending.opt_state, rule_state)

    def adopt(state: PeerState, params: Params) -> PeerState:
        return PeerState(params, state.opt_state, rule.rebase(params, state.rule_state))

    def absorb(state: PeerState, payloads: Payload, weights: jax.Array) -> PeerState:
        params, rule_state = rule.mix(state.params, state.rule_state, payloads, weights,
                                      jnp.ones((), jnp.float32))
        return PeerState(params, state.opt_state, rule_state)

    return PeerRound(early, local, message, begin, finish, adopt, absorb)
