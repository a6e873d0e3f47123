"""Builds one peer's ``PeerTask`` (the same shard, initial parameters and hyper-parameters the
simulator gives that peer) and its ``PeerOptions`` from a run config."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from gossip.config import FIELDS, Config, check_driver
from gossip.errors import check_int
from gossip.outputs import PEER_DEFAULT
from gossip.peer.task import PeerOptions, PeerTask
from gossip.training import run_keys

# Keys that change how a run is carried out, not what it trains: a checkpoint written under
# other values of these may be resumed.
RUNTIME_KEYS = ("out", "save_params", "rounds", "eval_every", "round_deadline",
                "startup_timeout", "max_ahead", "heartbeat_interval", "heartbeat_timeout",
                "catchup_after", "catchup_timeout", "checkpoint_every", "compile_cache",
                "slow_peers", "slowdown", "stragglers", "step_time")


def run_digest(config: Config) -> str:
    """16 hex digits identifying what a run trains (its config without ``RUNTIME_KEYS``)."""
    neutral = dataclasses.replace(config, **{k: getattr(Config(), k) for k in RUNTIME_KEYS})
    return hashlib.sha256(neutral.to_toml().encode()).hexdigest()[:16]


def peer_speed(config: Config, peer_id: int) -> float:
    """Peer ``peer_id``'s factor on its compute time: the event simulator's (same seed, same
    slow peers; ``gossip.sim.timing.peer_speeds``). A peer slower than 1 sleeps to stretch
    its local steps by it."""
    from gossip.sim.timing import peer_speeds

    return float(peer_speeds(config.peers, config.seed, config.slow_peers, config.slowdown,
                             config.stragglers)[peer_id])


def build_peer_task(config: Config, peer_id: int) -> PeerTask:
    """Builds what peer ``peer_id`` of a run trains.

    Raises:
        ConfigError: a bad config (as for ``gossip sim``) or a peer id out of range.
    """
    # The experiment builder pulls in the model zoo, which gossip/ never imports at load time.
    from gossip.experiment import build_experiment

    check_int("peer id", peer_id, 0, config.peers - 1)
    check_driver(config, "peers")
    return peer_task_of(build_experiment(config), peer_id)


def peer_task_of(exp: Any, peer_id: int) -> PeerTask:
    """What peer ``peer_id`` of a built experiment trains: the shard, initial parameters and
    keys the simulator gives that peer. The experiment may hold a model or topology of your
    own (docs/tutorial.md).

    Args:
        exp: a ``gossip.experiment.Experiment``.
        peer_id: the peer, ``0 <= peer_id < exp.config.peers``.
    """
    from gossip.experiment import init_peer_params

    config = exp.config
    check_int("peer id", peer_id, 0, config.peers - 1)
    init_key, train_key = run_keys(config.seed)
    ds, shard = exp.dataset, exp.shards[peer_id]
    params = init_peer_params(exp.model, ds.x_train[:1], init_key, peer_id, config.same_init)
    # The run's seeded attackers attack; with byzantine 0, --attack makes this peer one.
    attacks = peer_id in exp.attackers or not config.byzantine
    return PeerTask(
        peer_id=peer_id, topology=exp.topology, rule=exp.rule, optimizer=exp.optimizer,
        loss_fn=exp.model.loss, metric_fn=exp.model.metric, metric_name=exp.model.metric_name,
        params=params, x=ds.x_train[shard], y=ds.y_train[shard], x_test=ds.x_test,
        y_test=ds.y_test, train_key=train_key, batch_size=config.batch_size,
        rounds=config.rounds, eval_every=config.eval_every,
        attack=exp.attack if attacks else None)


def peer_options(config: Config, addresses: list[str], **options: Any) -> PeerOptions:
    """How a peer of the run ``config`` talks to the others.

    Args:
        config: the run configuration: ``out`` (empty: ``runs/peer``) and every key named
            like a field of ``PeerOptions`` (``round_deadline``, ``checkpoint_every`` ...).
        addresses: every peer's address.
        **options: the fields a config does not set (``bind``, ``resume``, ``run_digest``,
            ``keys``).
    """
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(PeerOptions)
              if f.name in FIELDS}
    out = Path(config.out) if config.out else PEER_DEFAULT  # as gossip peer: runs/peer
    return PeerOptions(addresses=addresses, out_dir=out, **shared, **options)
