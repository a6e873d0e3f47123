"""Builds every piece of a run from a ``Config``: data, shards, model, optimizer, rule, topology.

All user errors surface here, before anything is written to disk. The simulator and the
real peer runtime build the same experiment from the same config, so they agree on shards,
initial parameters and hyper-parameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gossip.attacks import ATTACKS, Attack, make_attack, pick_attackers
from gossip.compress import COMPRESSORS
from gossip.config import Config
from gossip.data import DATASETS, SCHEMES, Dataset, dataset_partition, load_dataset
from gossip.errors import ConfigError
from gossip.evaluate import matching_optimum
from gossip.models import MODELS, Model, make_model
from gossip.optim import OPTIMIZERS, make_optimizer
from gossip.rules import (
    ASYNC_RULES,
    DEFAULT_WEIGHTS,
    OUTER_OPTIMIZERS,
    PLAIN_SGD_RULES,
    ROBUST,
    ROBUST_RULES,
    RULES,
    GossipRule,
    check_weights,
    make_rule,
)
from gossip.sim.simulator import PeerData
from gossip.topology import TOPOLOGIES, WEIGHTS, Topology, make_topology
from gossip.training import init_key_for

Params = Any


@dataclasses.dataclass(frozen=True)
class Experiment:
    """Everything a run needs, resolved from its config.

    Attributes:
        config: the resolved configuration.
        dataset: the full dataset (train and test).
        shards: N index arrays into ``dataset.x_train``, one per peer.
        model: the model's pure functions.
        optimizer: the optax optimizer.
        rule: the gossip rule.
        topology: the communication topology.
        attack: the attack (``config.attack``), or None.
        attackers: (K,) the attackers of the run (``config.byzantine`` of them, drawn from
            the seed); empty when there are none.
    """

    config: Config
    dataset: Dataset
    shards: list[np.ndarray]
    model: Model
    optimizer: optax.GradientTransformation
    rule: GossipRule
    topology: Topology
    attack: Attack | None = None
    attackers: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros((0,), np.int64))

    @property
    def honest(self) -> np.ndarray:
        """(N,) bool: which peers are honest."""
        mask = np.ones(self.config.peers, bool)
        mask[self.attackers] = False
        return mask


def topology_weights(config: Config) -> str | None:
    """The weight scheme for the topology: the config's, or the rule's default."""
    if config.weights != "default":
        return config.weights
    return DEFAULT_WEIGHTS.get(config.rule)


def config_choices() -> dict[str, list[str]]:
    """The valid values of every config key that names something (for ``--help``)."""
    return {"topology": list(TOPOLOGIES), "weights": ["default", *WEIGHTS],
            "rule": list(RULES), "dataset": list(DATASETS), "model": list(MODELS),
            "optimizer": list(OPTIMIZERS), "partition": list(SCHEMES),
            "compress": ["none", *COMPRESSORS], "outer_optimizer": ["none", *OUTER_OPTIMIZERS],
            "robust": ["none", *ROBUST], "attack": ["none", *ATTACKS]}


def build_experiment(config: Config) -> Experiment:
    """Builds and validates every piece of a run.

    Raises:
        ConfigError: any bad name, option, value or data file, with a one-line message.
    """
    rule = config_rule(config)
    attack = check_attack(config)
    if config.rule in PLAIN_SGD_RULES and config.optimizer != "sgd":
        raise ConfigError(f"rule {config.rule!r} keeps its own momentum (--momentum); use "
                          f"--optimizer sgd, not {config.optimizer!r}")
    optimizer = make_optimizer(config.optimizer, config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    topology = make_topology(config.topology, config.peers, seed=config.seed,
                             weights=topology_weights(config), **config.topology_options)
    check_weights(rule, topology, config.rounds)
    if config.mode == "async" or config.running_sums:
        rule = async_rule(config, rule, topology)
    if rule.static and topology.time_varying:
        raise ConfigError(f"rule {rule.name!r} needs a static topology (the same W every "
                          f"round), not {topology.name!r}")
    dataset = load_dataset(config.dataset, seed=config.seed, **config.dataset_options)
    model = make_model(config.model, {**dataset.meta, "task": dataset.task},
                       **config.model_options)
    shards = dataset_partition(dataset, config.peers, config.partition, seed=config.seed,
                               alpha=config.alpha, shards_per_peer=config.shards_per_peer)
    return Experiment(config, dataset, shards, model, optimizer, rule, topology, attack,
                      pick_attackers(config.peers, config.byzantine, config.seed))


def config_rule(config: Config) -> GossipRule:
    """The gossip rule of a config (its synchronous mode; see :func:`async_rule`).

    Raises:
        ConfigError: a bad rule name or option.
    """
    return make_rule(config.rule, config.local_steps, compress=config.compress,
                     compress_ratio=config.compress_ratio,
                     error_feedback=config.error_feedback,
                     consensus_step=config.consensus_step, momentum=config.momentum,
                     outer_optimizer=config.outer_optimizer, outer_lr=config.outer_lr,
                     outer_momentum=config.outer_momentum, robust_mix=config.robust,
                     robust_f=config.robust_f)


def check_attack(config: Config) -> Attack | None:
    """The run's attack, or None; checks ``byzantine``, ``attack`` and the rule agree.

    ``attack`` without ``byzantine`` is valid here (``gossip peer --attack NAME``: this
    peer attacks); ``gossip sim`` and ``gossip launch`` refuse it (:func:`check_attackers`).

    Raises:
        ConfigError: an unknown attack, ``byzantine`` without an attack, or an attack on a
            rule whose message is not its parameters.
    """
    if config.attack == "none":
        if config.byzantine:
            raise ConfigError(f"byzantine = {config.byzantine} needs an attack (--attack "
                              f"NAME; one of: {', '.join(ATTACKS)})")
        if config.attack_scale:
            raise ConfigError("attack_scale needs an attack (--attack NAME)")
        return None
    attack = make_attack(config.attack, config.attack_scale)
    if config.rule not in ROBUST_RULES or config.compress != "none":
        raise ConfigError(f"attack {config.attack!r} forges a message that is the model, so it "
                          f"needs rule {', '.join(ROBUST_RULES)} without --compress, not rule "
                          f"{config.rule!r}" + (f" with --compress {config.compress}"
                                               if config.compress != "none" else ""))
    return attack


def check_attackers(config: Config) -> None:
    """A run of every peer (``gossip sim``, ``gossip launch``) with an attack names how
    many peers attack.

    Raises:
        ConfigError: ``attack`` set and ``byzantine`` 0.
    """
    if config.attack != "none" and not config.byzantine:
        raise ConfigError(f"attack {config.attack!r} needs --byzantine K (1 <= K < "
                          f"{config.peers}): the number of attackers")


def async_rule(config: Config, rule: GossipRule, topology: Topology) -> GossipRule:
    """The asynchronous mode of the configured rule (``mode = "async"``), which is also its
    running-sum form in sync mode (``running_sums``).

    Raises:
        ConfigError: the rule has no asynchronous mode, or the topology varies (the
            asynchronous rules keep what they last received per in-link slot).
    """
    what = "--mode async" if config.mode == "async" else "--running-sums"
    if config.rule not in ASYNC_RULES or rule.name != config.rule:
        has = "asynchronous mode" if config.mode == "async" else "running-sum form"
        raise ConfigError(f"rule {config.rule!r} has no {has}; {what} works "
                          f"with rule {', '.join(ASYNC_RULES)} (and no --compress or "
                          "--outer-optimizer)")
    if topology.time_varying:
        raise ConfigError(f"{what} needs a static topology (the rule keeps the last "
                          f"running sum per in-link), not {topology.name!r}")
    slots = topology.round_graph(0).neighbours.shape[1]
    return ASYNC_RULES[config.rule](config.local_steps, slots)


def model_optimum(exp: Experiment) -> np.ndarray | None:
    """The dataset's optimum ``x*`` when the model's parameters live in its coordinates.

    Returns:
        ``exp.dataset.optimum`` (float64 ``(P,)``) when the dataset knows its optimum and one
        peer's parameters flatten (pytree order) to ``P`` numbers, as the ``linear`` model's
        do on ``least_squares``; None otherwise (no ``opt_distance`` metrics then).
    """
    if exp.dataset.optimum is None:
        return None
    shapes = jax.eval_shape(exp.model.init, jax.random.key(0),
                            jnp.asarray(exp.dataset.x_train[:1]))
    return matching_optimum(exp.dataset.optimum, shapes)


def init_peer_params(model: Model, sample_x: np.ndarray, init_key: jax.Array, peer: int,
                     same_init: bool) -> Params:
    """One peer's initial parameters (identical to the simulator's row ``peer``)."""
    return model.init(init_key_for(init_key, peer, same_init), jnp.asarray(sample_x))


def init_stacked_params(exp: Experiment, init_key: jax.Array) -> Params:
    """Every peer's initial parameters stacked on a leading axis: leaves (N, ...)."""
    n, sample = exp.config.peers, exp.dataset.x_train[:1]
    if exp.config.same_init:
        one = init_peer_params(exp.model, sample, init_key, 0, True)
        return jax.tree.map(lambda a: jnp.repeat(a[None], n, axis=0), one)
    keys = jnp.stack([init_key_for(init_key, i, False) for i in range(n)])
    return jax.vmap(lambda k: exp.model.init(k, jnp.asarray(sample)))(keys)


def stack_shards(dataset: Dataset, shards: list[np.ndarray], length: int = 0) -> PeerData:
    """Pads every peer's shard to the longest one (or to ``length``, if longer) and stacks
    them: see ``PeerData``."""
    m = max(length, *(len(s) for s in shards))
    x = np.zeros((len(shards), m, *dataset.x_train.shape[1:]), dataset.x_train.dtype)
    y = np.zeros((len(shards), m, *dataset.y_train.shape[1:]), dataset.y_train.dtype)
    for i, idx in enumerate(shards):
        x[i, :len(idx)] = dataset.x_train[idx]
        y[i, :len(idx)] = dataset.y_train[idx]
    size = np.array([len(s) for s in shards], np.int32)
    return PeerData(jnp.asarray(x), jnp.asarray(y), jnp.asarray(size))
