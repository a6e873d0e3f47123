"""The real peer: the synchronous round loop of DESIGN §3 over ZeroMQ.

A peer drives the same pure functions as the simulator (``make_local_round``, the gossip
rule's ``message`` and ``mix``, ``round_key``), so N peer processes and the simulator with N
peers end with the same parameters. Round t:

1. compute: H local steps; the message is taken after them (``"atc"``) or, for ``"cta"``
   rules, before them, so it is sent while the steps run;
2. send the message to the out-neighbours of round t as soon as it is ready;
3. wait, at most ``round_deadline`` seconds after the computation, for the round-t
   messages of the in-neighbours (a receiving thread validates and queues them meanwhile);
4. mix with what arrived, missing slots weighted 0 and the rest renormalised by the rule.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gossip.peer.inbox import Counters, Inbox
from gossip.pytree import save_npz
from gossip.rules import GossipRule, add_local_update
from gossip.summary import METRIC_SHORT
from gossip.topology import Topology
from gossip.training import LossFn, make_local_round, make_local_step, round_key
from gossip.wire import Template, Transport, encode, make_template

log = logging.getLogger("gossip.peer")
Params = Any


@dataclasses.dataclass(frozen=True)
class PeerTask:
    """What one peer trains: built from a run config by ``gossip.peer.setup``.

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


@dataclasses.dataclass(frozen=True)
class PeerOptions:
    """How a peer talks to the others.

    Attributes:
        addresses: every peer's ZeroMQ address; entry i is peer i.
        out_dir: where ``peer-XXXX.jsonl`` (and ``params/peer-XXXX.npz``) go.
        round_deadline: seconds a round waits for missing messages after its computation.
        startup_timeout: seconds to wait for the round-0 in-neighbours' hello.
        max_ahead: rounds ahead of the current one a message may be and still be queued.
        save_params: write the final parameters.
        bind: the address to bind; default ``addresses[peer_id]``.
    """

    addresses: list[str]
    out_dir: Path
    round_deadline: float = 30.0
    startup_timeout: float = 60.0
    max_ahead: int = 8
    save_params: bool = False
    bind: str | None = None


class _Compiled:
    """The peer's jitted functions, compiled once before the first round."""

    def __init__(self, task: PeerTask) -> None:
        rule = task.rule
        local_round = make_local_round(make_local_step(task.loss_fn, task.optimizer),
                                       task.batch_size, rule.local_steps)
        self.local_round = jax.jit(local_round)
        self.message = jax.jit(rule.message)
        self.mix = jax.jit(rule.mix)
        self.evaluate = jax.jit(lambda p, x, y: (task.metric_fn(p, x, y), task.loss_fn(p, x, y)))
        self.add_update = jax.jit(add_local_update)

    def stack(self, messages: list[Any]) -> Any:
        """Stacks K messages (pytrees) into one pytree with leaves (K, ...)."""
        return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *messages)


class Peer:
    """One peer process's state and round loop.

    Args:
        task: what to train.
        options: how to communicate.
    """

    def __init__(self, task: PeerTask, options: PeerOptions) -> None:
        self.task, self.options = task, options
        self.i = task.peer_id
        self.n = task.topology.n
        self.fn = _Compiled(task)
        self.params = jax.tree.map(jnp.asarray, task.params)
        self.opt_state = task.optimizer.init(self.params)
        self.rule_state = task.rule.init(self.params)
        self.template: Template = make_template(
            jax.eval_shape(task.rule.message, self.params, self.rule_state))
        self.counters = Counters()
        self.x, self.y = jnp.asarray(task.x), jnp.asarray(task.y)
        self.size = jnp.asarray(len(task.x), jnp.int32)
        self.x_test, self.y_test = jnp.asarray(task.x_test), jnp.asarray(task.y_test)
        self.transport: Transport | None = None
        self.inbox: Inbox | None = None

    # -- topology -----------------------------------------------------------------------------

    def in_neighbours(self, t: int) -> tuple[np.ndarray, np.ndarray, float]:
        """``(neighbours (k,), weights (k,), self_weight)`` of this peer in round t."""
        g = self.task.topology.round_graph(t)
        return g.neighbours[self.i], g.weights[self.i], g.self_weight[self.i]

    def senders(self, t: int) -> set[int]:
        """The peers this peer receives from in round t."""
        return {int(j) for j in self.in_neighbours(t)[0] if j != self.i}

    def receivers(self, t: int) -> set[int]:
        """The peers this peer sends to in round t."""
        return {int(j) for j in self.task.topology.out_neighbours(t)[self.i]}

    # -- life cycle ---------------------------------------------------------------------------

    def run(self, on_round: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Binds, waits for neighbours, runs every round, says bye and closes.

        Args:
            on_round: called with each round's metrics record.

        Returns:
            The last metrics record.
        """
        out = self.options.out_dir
        out.mkdir(parents=True, exist_ok=True)
        self.transport = Transport(self.i, self.options.addresses, bind=self.options.bind,
                                   max_frame_bytes=self.template.max_frame_bytes + 1024)
        self.inbox = Inbox(self.transport, self.template, self.n, self.options.max_ahead,
                           self.counters)
        for t in range(min(self.options.max_ahead + 1, self.task.rounds)):
            self.inbox.expect(t, self.senders(t))
        clean = False
        try:
            self.inbox.start()
            self._warm_up()
            self._hello()
            record = self._rounds(out / f"peer-{self.i:04d}.jsonl", on_round)
            self._bye()
            clean = True
        finally:
            self.inbox.stop()
            self.transport.close(linger_ms=1000 if clean else 0)
        if self.options.save_params:
            (out / "params").mkdir(exist_ok=True)
            save_npz(out / "params" / f"peer-{self.i:04d}.npz", jax.device_get(self.params))
        return record

    def _warm_up(self) -> None:
        """Compiles every jitted function once (compilation must not eat into deadlines)."""
        key = round_key(self.task.train_key, self.i, 0)
        stepped, _, _ = self.fn.local_round(self.params, self.opt_state, self.x, self.y,
                                            self.size, key)
        msg = self.fn.message(stepped, self.rule_state)
        k = self.task.topology.k
        _, weights, self_weight = self.in_neighbours(0)
        self.fn.mix(stepped, self.rule_state, self.fn.stack([msg] * k), weights, self_weight)
        self.fn.add_update(stepped, stepped, stepped)
        self.fn.evaluate(stepped, self.x_test, self.y_test)

    def _send_all(self, frames: list[Any], dests: set[int]) -> None:
        for j in sorted(dests):
            ok = self.transport.send(j, frames)
            if not ok:
                self.counters.send_failures += 1
                log.info("send to peer %d failed: its queue is full (unreachable?)", j)

    def _hello(self) -> None:
        hello = encode("hello", self.i, 0, self.template)
        self._send_all(hello, self.senders(0) | self.receivers(0))
        missing = self.inbox.wait_hello(self.senders(0), self.options.startup_timeout)
        if missing:
            log.warning("starting without hello from peer(s) %s after %.1f s",
                        sorted(missing), self.options.startup_timeout)

    def _bye(self) -> None:
        last = self.task.rounds - 1
        bye = encode("bye", self.i, self.task.rounds, self.template)
        self._send_all(bye, self.senders(last) | self.receivers(last)
                       | set(self.transport.dealers))
        # A receiver says bye only after its last round, so our last message has reached it
        # (or it gave up on it) before we close our sockets.
        self.inbox.wait_gone(self.receivers(last), self.options.round_deadline)

    # -- rounds -------------------------------------------------------------------------------

    def _rounds(self, metrics_path: Path, on_round: Callable[[dict[str, Any]], None] | None
                ) -> dict[str, Any]:
        task, opts = self.task, self.options
        record: dict[str, Any] = {}
        start = time.perf_counter()
        with metrics_path.open("w") as sink:
            for t in range(task.rounds):
                # Messages up to max_ahead rounds past the next one are accepted from now on.
                if t + opts.max_ahead + 1 < task.rounds:
                    self.inbox.expect(t + opts.max_ahead + 1,
                                      self.senders(t + opts.max_ahead + 1))
                round_start = time.perf_counter()
                loss, wait = self.round(t)
                record = self._record(t, loss, time.perf_counter() - start,
                                      time.perf_counter() - round_start, wait)
                sink.write(json.dumps(record) + "\n")
                sink.flush()
                if on_round:
                    on_round(record)
        return record

    def round(self, t: int) -> tuple[float, float]:
        """Runs round t: compute, send, wait, mix.

        Returns:
            ``(loss, wait)``: the mean training loss of the H local steps and the seconds
            spent waiting for messages.
        """
        fn, rule = self.fn, self.task.rule
        key = round_key(self.task.train_key, self.i, t)
        receivers = self.receivers(t)
        if rule.order == "cta":
            msg = fn.message(self.params, self.rule_state)
            self._send_message(t, msg, receivers)
            stepped, opt_state, loss = fn.local_round(self.params, self.opt_state, self.x,
                                                      self.y, self.size, key)
            base = self.params
        else:
            stepped, opt_state, loss = fn.local_round(self.params, self.opt_state, self.x,
                                                      self.y, self.size, key)
            msg = fn.message(stepped, self.rule_state)
            self._send_message(t, msg, receivers)
            base = stepped
        loss = float(loss)  # waits for the computation
        wait_start = time.perf_counter()
        received = self.inbox.wait_round(t, self.options.round_deadline)
        wait = time.perf_counter() - wait_start
        neighbours, weights, self_weight = self.in_neighbours(t)
        slots, w = [], np.array(weights)
        for k, j in enumerate(neighbours):
            payload = received.get(int(j)) if j != self.i else None
            if payload is None:  # padding slot or missing message: weight 0
                w[k] = 0.0
                slots.append(msg)
            else:
                slots.append(payload)
        mixed, self.rule_state = fn.mix(base, self.rule_state, fn.stack(slots), w, self_weight)
        self.params = fn.add_update(mixed, stepped, base) if rule.order == "cta" else mixed
        self.opt_state = opt_state
        return loss, wait

    def _send_message(self, t: int, msg: Any, receivers: set[int]) -> None:
        if not receivers:
            return
        frames = encode("gossip", self.i, t, self.template, jax.device_get(msg))
        self._send_all(frames, receivers)
        sent = len(receivers)
        self.counters.messages_sent += sent
        self.counters.bytes_sent += sent * self.template.nbytes
        self.counters.header_bytes_sent += sent * len(frames[0])

    def _record(self, t: int, loss: float, elapsed: float, round_time: float, wait: float
                ) -> dict[str, Any]:
        task = self.task
        record: dict[str, Any] = {
            "peer": self.i, "round": t + 1, "step": (t + 1) * task.rule.local_steps,
            "time": round(elapsed, 4), "round_time": round(round_time, 4),
            "wait_time": round(wait, 4), "loss": loss,
        }
        if (t + 1) % task.eval_every == 0 or t + 1 == task.rounds:
            metric, test_loss = self.fn.evaluate(self.params, self.x_test, self.y_test)
            record[f"local_{METRIC_SHORT[task.metric_name]}"] = float(metric)
            record["local_loss"] = float(test_loss)
        record.update(dataclasses.asdict(self.counters))
        return record
