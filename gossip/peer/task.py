"""What a real peer trains (``PeerTask``) and how it talks to the others (``PeerOptions``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax

from gossip.attacks import Attack
from gossip.config import Config
from gossip.rules import GossipRule
from gossip.topology import Topology
from gossip.training import LossFn
from gossip.wire import CurveKeys

Params = Any
_RUN = Config()  # the run defaults (docs/config.md) of the options a config also sets


@dataclasses.dataclass(frozen=True)
class PeerTask:
    """What one peer trains: built from a run config by ``gossip.launch.peer_task``.

    Attributes:
        peer_id: this peer's id in [0, n).
        topology: the run's topology (every peer computes its own neighbours from it).
        rule: the gossip rule.
        optimizer: the optax optimizer.
        loss_fn: ``loss(params, x, y) -> ()``.
        metric_fn: ``metric(params, x, y) -> ()`` on the test set.
        metric_name: ``"accuracy"`` or ``"rmse"``.
        params: initial parameters (a pytree).
        x: (M, *X) this peer's training shard; y: (M, *Y) its targets.
        x_test: (T, *X) held-out inputs; y_test: (T, *Y) their targets.
        train_key: the run's training key (``gossip.training.run_keys``).
        batch_size: batch size per local step.
        rounds: rounds to run.
        eval_every: evaluate the local model every this many rounds (and after the last).
        attack: None for an honest peer; for an attacker, the attack that forges what it
            sends (``gossip.attacks``; its view is built from what it received the round
            before).
    """

    peer_id: int
    topology: Topology
    rule: GossipRule
    optimizer: optax.GradientTransformation
    loss_fn: LossFn
    metric_fn: LossFn
    metric_name: str
    params: Params
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_key: jax.Array
    batch_size: int
    rounds: int
    eval_every: int
    attack: Attack | None = None


@dataclasses.dataclass(frozen=True)
class PeerOptions:
    """How a peer talks to the others.

    The fields a run config also has take their defaults from ``gossip.config.Config``, the
    one source (``docs/config.md``); ``gossip.launch.peer_task.peer_options`` builds the
    options from a config.

    Attributes:
        addresses: every peer's ZeroMQ address; entry i is peer i.
        out_dir: where ``peer-XXXX.jsonl`` (and ``params/peer-XXXX.npz``) go.
        round_deadline: seconds a round waits for missing messages after its computation.
        startup_timeout: seconds to wait for the first in-neighbours' hello, and for any
            neighbour to return after all went silent.
        max_ahead: rounds ahead of the current one a message may be and still be queued.
        save_params: write the final parameters.
        bind: the address to bind; default ``addresses[peer_id]``.
        heartbeat_interval: seconds between heartbeats.
        heartbeat_timeout: seconds of silence after which a neighbour is presumed dead.
        catchup_after: rounds behind its freshest neighbour at which a peer catches up.
        catchup_timeout: seconds a catching-up peer waits for the state it asked for; a
            neighbour that sends none in time is not asked again.
        checkpoint_every: write ``OUT/checkpoints/peer-XXXX.npz`` every this many rounds
            and after the last (0: never).
        resume: start from this peer's checkpoint (from round 0 if there is none).
        run_digest: identifies the run's training configuration; a checkpoint of another
            run is refused.
        keys: this peer's CURVE keys (``gossip.wire.load_keys`` of a ``gossip keys``
            directory): encrypt and authenticate every connection. None: plain TCP. Every
            peer of a run must use keys, or none.
        speed: this peer's factor on its compute time (>= 1; config ``slow_peers``,
            ``slowdown``, ``stragglers``): after its local steps a peer sleeps ``speed - 1``
            times as long as they took, to stand for a slower machine (testing, and the
            event simulator's validation).
        step_time: > 0: after its local steps a peer sleeps until they took ``step_time *
            H * speed`` seconds (if they took less): a compute time set by the config, as
            the event simulator's ``step_time``. 0: ``speed`` times their real duration.
        mode: ``"sync"`` (rounds with a barrier) or ``"async"`` (no barrier: each peer
            steps, pushes and mixes what has arrived; ``gossip.peer.asynchronous``).
        local_time: > 0: time-budgeted local work: each round runs as many local steps as
            fit in ``local_time`` seconds (at ``step_time * speed`` seconds a step, or the
            step time measured at start-up times ``speed``), at least one. 0: H steps.
        max_staleness: async: a message more than this many of the receiver's rounds old
            is not mixed (counted in ``messages_stale``); 0: any age.
    """

    addresses: list[str]
    out_dir: Path
    round_deadline: float = _RUN.round_deadline
    startup_timeout: float = _RUN.startup_timeout
    max_ahead: int = _RUN.max_ahead
    save_params: bool = _RUN.save_params
    bind: str | None = None
    heartbeat_interval: float = _RUN.heartbeat_interval
    heartbeat_timeout: float = _RUN.heartbeat_timeout
    catchup_after: int = _RUN.catchup_after
    catchup_timeout: float = _RUN.catchup_timeout
    checkpoint_every: int = _RUN.checkpoint_every
    resume: bool = False
    run_digest: str = ""
    keys: CurveKeys | None = None
    speed: float = 1.0
    step_time: float = _RUN.step_time
    mode: str = _RUN.mode
    local_time: float = _RUN.local_time
    max_staleness: int = _RUN.max_staleness
