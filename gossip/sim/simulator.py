"""The vectorised simulator: all peers stacked on a leading axis, one jitted round.

Like ``jax_md.simulate``, the simulator is an ``(init, round)`` pair of pure functions over a
state NamedTuple. A round is the per-peer round of :mod:`gossip.round` for every peer:
``early``, ``local`` (over chunks of peers) and ``message`` vmapped, then each peer's K
in-neighbour messages *gathered* by index, then ``finish`` vmapped: O(N·K·P) work, never a
dense N×N product over parameters. Time-varying topologies pass new index/weight arrays of
the same shape each round, so the round compiles once. The simulator keeps no round order
of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gossip.round import PeerState, Shard, make_peer_round
from gossip.rules import GossipRule
from gossip.sim.byzantine import Adversary
from gossip.topology import RoundGraph
from gossip.training import LossFn, make_local_round, make_local_step, round_key

Params = Any
DEFAULT_PEER_CHUNK = 32


class SimState(NamedTuple):
    """State of a simulation of N peers.

    Attributes:
        params: pytree, each leaf (N, *leaf_shape): the peers' parameters.
        opt_state: optax state, each leaf with a leading N axis.
        rule_state: gossip-rule state, each leaf with a leading N axis.
        round: () int32, the number of rounds done.
    """

    params: Params
    opt_state: Any
    rule_state: Any
    round: jax.Array


class PeerData(NamedTuple):
    """Every peer's training shard, padded to a common length M.

    Attributes:
        x: (N, M, *X) inputs.
        y: (N, M, *Y) targets.
        size: (N,) int32 number of valid rows per peer (>= 1).
    """

    x: jax.Array
    y: jax.Array
    size: jax.Array


class Simulator(NamedTuple):
    """``init(params) -> SimState`` and ``round(state, data, graph, key) -> (state, loss)``.

    ``round`` is jitted; ``loss`` is (N,), each peer's mean training loss over its H steps.
    With an adversary that takes the attackers as an input (``make_adversary(attack, None,
    n)``), ``round(state, data, graph, key, attackers)`` with ``attackers`` (A,) int32.
    """

    init: Callable[[Params], SimState]
    round: Callable[..., tuple[SimState, jax.Array]]


def gather(messages: Any, neighbours: jax.Array) -> Any:
    """Every peer's K in-neighbour messages, gathered by index.

    Args:
        messages: each peer's message, leaves (N, ...).
        neighbours: (N, K) int32 in-neighbour indices.

    Returns:
        The payloads, leaves (N, K, ...).
    """
    k = neighbours.shape[1]

    def leaf(m: jax.Array) -> jax.Array:
        # One take per slot, stacked: XLA fuses these with the rule's weighted sum, where a
        # single 2-D gather would materialise (N, K, ...) first (~10x slower on CPU).
        return jnp.stack([jnp.take(m, neighbours[:, j], axis=0) for j in range(k)], 1)

    return jax.tree.map(leaf, messages)


def make_simulator(loss_fn: LossFn, optimizer: optax.GradientTransformation,
                   rule: GossipRule, batch_size: int,
                   peer_chunk: int | None = DEFAULT_PEER_CHUNK,
                   adversary: Adversary | None = None) -> Simulator:
    """Builds the simulator for one model, optimizer and gossip rule.

    Args:
        loss_fn: ``loss(params, x, y) -> ()`` of one peer.
        optimizer: the optax optimizer every peer uses.
        rule: the gossip rule (its ``local_steps`` and ``order`` are honoured).
        batch_size: batch size per peer and local step.
        peer_chunk: the local work (``local``) runs vmapped over chunks of this many peers,
            one chunk after the other (``jax.lax.map``); None vmaps over all peers at once.
            Chunks keep the working set in cache: on CPU, 32 is 20-25 % faster than one vmap
            at 256 and 1024 peers (benchmarks/sim_throughput.py). Results do not depend on it.
        adversary: None, or what forges the attackers' messages of a round after every
            message exists and before the gather (``gossip.sim.byzantine``); one built
            with ``attackers=None`` takes the attackers as ``round``'s last argument.

    Returns:
        The ``(init, round)`` pair; ``round`` is jitted and donates its state.
    """
    peer_round = make_peer_round(rule, make_local_round(
        make_local_step(loss_fn, optimizer), batch_size, rule.local_steps))

    def local(*args: Any) -> Any:  # every arg has a leading peer axis
        if peer_chunk is None:
            return jax.vmap(peer_round.local)(*args)
        return jax.lax.map(lambda a: peer_round.local(*a), args, batch_size=peer_chunk)

    def init(params: Params) -> SimState:
        params = jax.tree.map(jnp.copy, params)  # the round donates its state, not the caller's
        return SimState(params=params,
                        opt_state=jax.vmap(optimizer.init)(params),
                        rule_state=jax.vmap(rule.init)(params),
                        round=jnp.zeros((), jnp.int32))

    def sim_round(state: SimState, data: PeerData, graph: RoundGraph, train_key: jax.Array,
                  *attackers: jax.Array) -> tuple[SimState, jax.Array]:
        n = data.size.shape[0]
        keys = jax.vmap(lambda p: round_key(train_key, p, state.round))(jnp.arange(n))
        peers = PeerState(state.params, state.opt_state, state.rule_state)
        early = jax.vmap(peer_round.early)(peers)
        pending, loss = local(peers, Shard(data.x, data.y, data.size), keys)
        messages = jax.vmap(peer_round.message)(pending, early)
        if adversary is not None:
            messages = adversary(messages, graph, keys, *attackers)
        payloads = gather(messages, graph.neighbours)
        # Every message arrives in this simulator: nothing is undelivered.
        new = jax.vmap(peer_round.finish)(pending, payloads, graph.weights, graph.self_weight,
                                          jnp.zeros_like(graph.self_weight))
        return SimState(new.params, new.opt_state, new.rule_state, state.round + 1), loss

    return Simulator(init=init, round=jax.jit(sim_round, donate_argnums=0))
