"""Attackers in the round simulator: K peers forge their messages with a ``gossip.attacks``
attack, after every message of the round exists and before the gather.

The simulator's attackers are omniscient, as in the papers: an attacker's view is the mean
and coordinate-wise standard deviation of every honest message of the round, and the
weighted average of its honest in-neighbours' messages of the round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gossip.attacks import Attack, AttackView, attack_key
from gossip.topology import RoundGraph

Params = Any
# adversary(messages, graph, keys[, attackers]) -> messages; leaves (N, ...), keys the peers'
# round keys, attackers (A,) int32 when the adversary takes them as an input.
Adversary = Callable[..., Params]


def make_adversary(attack: Attack, attackers: np.ndarray | None, n: int) -> Adversary:
    """Builds what replaces the attackers' messages in a round.

    Args:
        attack: the attack (``gossip.attacks.make_attack``).
        attackers: (A,) the attackers' peer ids (``gossip.attacks.pick_attackers``), A >= 1;
            or None: the adversary takes them as its last argument, an (A,) int32 array, so
            one compiled round serves every draw of A attackers (``gossip bench
            robustness`` reuses it across seeds).
        n: the number of peers N.

    Returns:
        ``adversary(messages, graph, keys) -> messages`` (``adversary(messages, graph, keys,
        attackers)`` when ``attackers`` is None): ``messages`` leaves (N, ...), the round's
        graph, ``keys`` (N,) the peers' round keys; the attackers' rows replaced.
    """
    if attackers is not None:
        ids = jnp.asarray(np.asarray(attackers, np.int32))
        return lambda messages, graph, keys: forge(attack, n, messages, graph, keys, ids)
    return lambda messages, graph, keys, ids: forge(attack, n, messages, graph, keys, ids)


def forge(attack: Attack, n: int, messages: Params, graph: RoundGraph, keys: jax.Array,
          idx: jax.Array) -> Params:
    """The round's messages with the attackers' rows forged (see :func:`make_adversary`).

    Args:
        attack: the attack.
        n: the number of peers N.
        messages: every peer's message, leaves (N, ...).
        graph: the round's graph.
        keys: (N,) the peers' round keys.
        idx: (A,) int32, the attackers' peer ids.

    Returns:
        ``messages`` with rows ``idx`` replaced by the attack's messages.
    """
    honest = jnp.ones((n,), bool).at[idx].set(False)
    share = honest.astype(jnp.float32) / jnp.sum(honest)

    def weigh(w: jax.Array, m: jax.Array) -> jax.Array:  # (..., N) @ (N, ...)
        return jnp.tensordot(w.astype(m.dtype), m, axes=1)

    mean = jax.tree.map(lambda m: weigh(share, m), messages)
    std = jax.tree.map(lambda m, mu: jnp.sqrt(weigh(share, (m - mu[None]) ** 2)),
                       messages, mean)
    # Each attacker's honest in-neighbours (not itself, not padding), weighted: (A, N).
    nbrs, w = graph.neighbours[idx], graph.weights[idx]
    w = jnp.where(honest[nbrs] & (nbrs != idx[:, None]), w, 0)
    local_w = jnp.zeros((idx.shape[0], n)).at[jnp.arange(idx.shape[0])[:, None], nbrs].add(w)
    alone = jnp.sum(local_w, axis=1) == 0
    local_w = jnp.where(alone[:, None], jax.nn.one_hot(idx, n),
                        local_w / jnp.maximum(jnp.sum(local_w, 1, keepdims=True), 1e-30))
    own = jax.tree.map(lambda m: m[idx], messages)
    local = jax.tree.map(lambda m: weigh(local_w, m), messages)

    def one(own_i: Params, local_i: Params, key: jax.Array) -> Params:
        return attack(own_i, AttackView(mean, std, local_i), attack_key(key))

    forged = jax.vmap(one)(own, local, keys[idx])
    return jax.tree.map(lambda m, f: m.at[idx].set(f.astype(m.dtype)), messages, forged)
