"""Byzantine attacks for testing the robust rules: the same pure functions in every driver.

An attack turns the message an attacker would honestly send into the one it sends::

    message = attack(own, view, key)

``own`` is the attacker's honest message (its parameters: attacks target rules whose message
is the model), ``view`` what it knows of the honest peers (:class:`AttackView`), ``key`` its
key of the round, ``fold_in(round key, ATTACK_SALT)``. The round simulator gives its
attackers an omniscient view of the round (the mean and spread of every honest message, as
in the papers); a real peer run with ``--attack`` builds it from the messages it received in
the previous round (docs/robustness.md). The attacker trains and mixes honestly: only what
it sends differs.

Attacks (``scale`` is the attack's strength, ``attack_scale``; 0 takes the default):

- ``sign_flip``: ``−scale · own`` (default 1).
- ``gaussian``: ``own + scale · N(0, I)`` (default 1).
- ``alie`` ("a little is enough", Baruch et al. 2019): ``mean − scale · std`` per
  coordinate (default z = 10: see docs/robustness.md).
- ``ipm`` (inner-product manipulation, Xie et al. 2020): ``−scale · mean`` (default ε = 0.5).
- ``dissensus`` (He et al. 2022): ``own − scale · (local − own)``, with ``local`` the
  attacker's in-neighbours' average: it undoes its receivers' step towards their
  neighbours', so the peers on either side of a cut the attacker sits on drift apart
  (default 4).
- ``huge``: every value the largest finite one of its dtype (float32: 3.4e38).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gossip.errors import ConfigError, unknown

Params = Any
ATTACK_SALT = 0x7FFFFFFE  # an attack's key is fold_in(round key, ATTACK_SALT)
_ATTACKER_SALT = 0xB12A  # the seeded choice of attackers


class AttackView(NamedTuple):
    """What an attacker knows of the honest peers, leaves like its message.

    Attributes:
        mean: coordinate-wise mean of the honest messages it knows.
        std: their coordinate-wise standard deviation.
        local: the weighted average of its honest in-neighbours' messages.
    """

    mean: Params
    std: Params
    local: Params


Attack = Callable[[Params, AttackView, jax.Array], Params]


def _leaves(fn: Callable[..., jax.Array]) -> Callable[..., Params]:
    return lambda *trees: jax.tree.map(fn, *trees)


def _gaussian(scale: float) -> Attack:
    def attack(own: Params, view: AttackView, key: jax.Array) -> Params:
        del view
        leaves, tree = jax.tree.flatten(own)
        keys = jax.random.split(key, len(leaves))
        return jax.tree.unflatten(tree, [x + scale * jax.random.normal(k, x.shape, x.dtype)
                                         for x, k in zip(leaves, keys, strict=True)])
    return attack


def _huge(own: Params, view: AttackView, key: jax.Array) -> Params:
    del view, key
    return _leaves(lambda x: jnp.full_like(x, jnp.finfo(x.dtype).max))(own)


ATTACKS: dict[str, tuple[float, Callable[[float], Attack]]] = {
    "sign_flip": (1.0, lambda s: lambda own, view, key: _leaves(lambda x: -s * x)(own)),
    "gaussian": (1.0, _gaussian),
    "alie": (10.0, lambda s: lambda own, view, key: _leaves(lambda m, d: m - s * d)(
        view.mean, view.std)),
    "ipm": (0.5, lambda s: lambda own, view, key: _leaves(lambda m: -s * m)(view.mean)),
    "dissensus": (4.0, lambda s: lambda own, view, key: _leaves(
        lambda x, loc: x - s * (loc - x))(own, view.local)),
    "huge": (1.0, lambda s: _huge),
}
"""Name -> (default scale, factory ``make(scale) -> attack``)."""


def make_attack(name: str, scale: float = 0.0) -> Attack:
    """The attack ``name`` with strength ``scale`` (0: its default).

    Raises:
        ConfigError: an unknown name or a negative scale.
    """
    if name not in ATTACKS:
        raise unknown("attack", name, ATTACKS)
    if not scale >= 0:
        raise ConfigError(f"attack_scale must be >= 0 (0: the attack's default), got {scale}")
    default, make = ATTACKS[name]
    return make(float(scale) or default)


def attack_key(round_key: jax.Array) -> jax.Array:
    """An attacker's key of a round, from its round key (``gossip.training.round_key``)."""
    return jax.random.fold_in(round_key, ATTACK_SALT)


def pick_attackers(n: int, k: int, seed: int) -> np.ndarray:
    """The K attackers of a run of n peers, drawn from the seed (every driver agrees).

    Returns:
        (K,) sorted int peer ids.
    """
    if k == 0:
        return np.zeros((0,), np.int64)
    rng = np.random.default_rng([seed, _ATTACKER_SALT])
    return np.sort(rng.choice(n, size=k, replace=False))


def view_of(messages: list[Params], weights: list[float], own: Params) -> AttackView:
    """An attacker's view built from messages it received (a real peer's approximation).

    Args:
        messages: the honest messages it received (its in-neighbours', last round).
        weights: their mixing weights.
        own: its own honest message (the view when it received nothing).

    Returns:
        mean and std over ``messages``, ``local`` their weighted average.
    """
    if not messages:
        return AttackView(own, jax.tree.map(jnp.zeros_like, own), own)
    stack = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *messages)
    w = jnp.asarray(weights, jnp.float32)
    w = w / jnp.sum(w) if float(jnp.sum(w)) > 0 else jnp.full_like(w, 1 / len(messages))
    return AttackView(
        jax.tree.map(lambda s: jnp.mean(s, axis=0), stack),
        jax.tree.map(lambda s: jnp.std(s, axis=0), stack),
        jax.tree.map(lambda s: jnp.tensordot(w.astype(s.dtype), s, axes=1), stack))
