"""The real peer: the synchronous round loop of DESIGN §3 over ZeroMQ, with failures.

A peer runs the per-peer round of :mod:`gossip.round`, the same pure functions the
simulator vmaps, so N peer processes and the simulator with N peers end with the same
parameters. The round's order lives there; the peer only moves messages and keeps time.
Round t:

1. ``early``/``local``/``message``: the H local steps and the message (a ``cta`` rule's
   message is ready before the steps and is sent while they run); with ``local_time``, H is
   as many steps as fit in that many seconds (``budget_steps``, fixed at start-up from the
   set or measured step time times the peer's slowdown, as the event simulator does);
2. send the message to the live out-neighbours of round t as soon as it is ready;
3. wait, at most ``round_deadline`` seconds after the computation, for the round-t
   messages of the in-neighbours (a receiving thread validates and queues them meanwhile);
4. ``finish`` with what arrived, missing slots weighted 0.

Failures (see ``membership``): a round waits only for live neighbours that are not lagging;
a peer that lost every neighbour pauses until one returns (at most ``startup_timeout``); a
peer ``catchup_after`` rounds behind its freshest neighbour (restarted, late, or cut off)
asks it for its parameters and round and continues from there, waiting at most
``catchup_timeout`` for the answer, and never asking again a neighbour that gave none. Every
``checkpoint_every`` rounds a peer writes an atomic checkpoint; ``resume`` restarts from it.
The asynchronous peer (``--mode async``, no barrier) is ``gossip.peer.asynchronous``.

Numbers that are not finite (see ``_Guard``): after the local steps and after the mix the
peer checks that its parameters, rule state and loss are finite. A mix whose result is not
finite is discarded (the round's start state is kept). Local steps that are not finite blame
the mix before them: the peer rolls back to the state that mix started from, names the
neighbours whose messages went into it, and runs the round's local steps again from there.
Each is counted (``mixes_discarded``, ``local_divergences``); the run goes on. A peer whose
parameters are still not finite at the end says so (``params_finite`` false in its last
record) and ``gossip peer`` exits non-zero.

An attacker (``--attack NAME``, or one of a run's ``--byzantine K`` seeded attackers) runs
the same round and sends, instead of its message, the attack's forgery of it
(``gossip.attacks``), with the same key as in the simulator. Its view of the honest peers
is what it received in the previous round (the simulator's attackers see the whole round).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from gossip.attacks import attack_key, view_of
from gossip.peer.buffers import stack_aligned
from gossip.peer.checkpoint import (
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from gossip.peer.inbox import Counters, Inbox
from gossip.peer.membership import Membership
from gossip.peer.task import PeerOptions, PeerTask
from gossip.pytree import save_npz
from gossip.round import PeerState, Shard, finite, keep_finite, make_peer_round
from gossip.rules import RobustState
from gossip.summary_table import METRIC_SHORT
from gossip.training import make_local_round, make_local_step, round_key
from gossip.wire import Template, Transport, encode, make_template

log = logging.getLogger("gossip.peer")


class _Compiled:
    """The peer's jitted functions, compiled once before the first round."""

    def __init__(self, task: PeerTask, steps: int) -> None:
        peer_round = make_peer_round(task.rule, make_local_round(
            make_local_step(task.loss_fn, task.optimizer), task.batch_size, steps))
        self.early = jax.jit(peer_round.early)
        self.local = jax.jit(peer_round.local)
        self.message = jax.jit(peer_round.message)
        self.finish = jax.jit(peer_round.finish)
        # Jitted too, so a caught-up state is made of the same kind of arrays as a round's
        # (a state of host-made arrays would compile keep_finite and local again).
        self.adopt = jax.jit(peer_round.adopt)
        self.absorb = jax.jit(peer_round.absorb)
        # jax.jit of one module-level function is one cache shared by every peer in the
        # process; a partial gives this peer a cache of its own (compile-once is per peer).
        self.finite = jax.jit(functools.partial(finite))
        self.keep_finite = jax.jit(functools.partial(keep_finite))
        self.evaluate = jax.jit(lambda p, x, y: (task.metric_fn(p, x, y), task.loss_fn(p, x, y)))
        attack = task.attack
        self.attack = None if attack is None else jax.jit(
            lambda own, view, key: attack(own, view, attack_key(key)))

    def stack(self, messages: list[Any]) -> Any:
        """Stacks K messages (pytrees) into one pytree with leaves (K, ...): one copy, into
        buffers the jitted mix uses without copying again (``buffers.stack_aligned``)."""
        return stack_aligned(messages)


MAX_BUDGET_STEPS = 4096  # the most local steps a time-budgeted round takes (event_sim's cap)
_MEASURE_RUNS = 7


def budget_steps(step_seconds: float, local_time: float, max_steps: int = MAX_BUDGET_STEPS
                 ) -> int:
    """Local steps of a time-budgeted round: as many as fit in ``local_time`` seconds at
    ``step_seconds`` a step, in [1, max_steps] (the event simulator's
    ``gossip.sim.events.budget_steps``, for one peer)."""
    return int(min(max(1, math.floor(local_time / step_seconds + 1e-9)), max_steps))


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
        params = jax.tree.map(jnp.asarray, task.params)
        self.state = PeerState(params, task.optimizer.init(params), task.rule.init(params))
        self.shard = Shard(jnp.asarray(task.x), jnp.asarray(task.y),
                           jnp.asarray(len(task.x), jnp.int32))
        # Local steps per round: the rule's H, or as many as fit in local_time (fixed at start).
        self.h = task.rule.local_steps
        if options.local_time > 0:
            step_s = options.speed * (options.step_time or self._measure_step_time())
            self.h = budget_steps(step_s, options.local_time)
        self.fn = _Compiled(task, self.h)
        # A rule with a payload check (compressed messages) validates what arrives against
        # its operator's declared fields, besides the template's leaf checks.
        check = (None if task.rule.check is None
                 else functools.partial(task.rule.check, params=jax.device_get(params)))
        self.template: Template = make_template(
            jax.eval_shape(task.rule.message, params, self.state.rule_state), check)
        self.params_template: Template = make_template(params)
        self.counters = Counters()
        self.x_test, self.y_test = jnp.asarray(task.x_test), jnp.asarray(task.y_test)
        self.transport: Transport | None = None
        self.inbox: Inbox | None = None
        self._round_peers: dict[int, set[int]] = {}
        self._alone = False
        # The rollback target: the start state of the last round whose local steps were
        # finite, and the neighbours whose messages went into the mix that followed them.
        self._good: PeerState | None = None
        self._mixed_with: list[int] = []
        self._mixed_round = -1
        # An attacker's view of the honest peers: what it received in the previous round.
        self._received: tuple[list[Any], list[float]] = ([], [])
        # Seconds of the last round's stages: local steps, encode + send, finish (stack + mix).
        self.stage_times = {"compute_time": 0.0, "send_time": 0.0, "mix_time": 0.0}

    def _measure_step_time(self) -> float:
        """Seconds of one local step of this peer, compiled (median of a few runs), as the
        event simulator measures its base step time."""
        one = jax.jit(make_local_round(make_local_step(self.task.loss_fn, self.task.optimizer),
                                       self.task.batch_size, 1))
        args = (self.state.params, self.state.opt_state, self.shard.x, self.shard.y,
                self.shard.size, jax.random.key(0))
        jax.block_until_ready(one(*args))
        times = []
        for _ in range(_MEASURE_RUNS):
            begin = time.perf_counter()
            jax.block_until_ready(one(*args))
            times.append(time.perf_counter() - begin)
        return float(np.median(times))

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

    def near(self, t: int) -> set[int]:
        """The peers this peer talks to from round t to ``max_ahead`` rounds later: it sends
        them heartbeats and watches their liveness."""
        last = min(t + self.options.max_ahead, self.task.rounds - 1)
        # Each round's peers are computed once (a window slides along), not max_ahead times.
        self._round_peers = {r: p for r, p in self._round_peers.items() if r >= t}
        for r in range(t, last + 1):
            if r not in self._round_peers:
                self._round_peers[r] = self.senders(r) | self.receivers(r)
        return set().union(*(self._round_peers[r] for r in range(t, last + 1)))

    def _expected(self, start: int, stop: int) -> dict[int, set[int]]:
        return {r: self.senders(r) for r in range(start, min(stop, self.task.rounds))}

    # -- life cycle ---------------------------------------------------------------------------

    def run(self, on_round: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Binds, waits for neighbours, runs every round, says bye and closes.

        Args:
            on_round: called with each round's metrics record.

        Returns:
            The last metrics record.

        Raises:
            CheckpointError: ``resume`` found a checkpoint that cannot be used.
            OSError: the address cannot be bound.
        """
        opts = self.options
        opts.out_dir.mkdir(parents=True, exist_ok=True)
        start = self._restore() if opts.resume else 0
        if start >= self.task.rounds:
            log.warning("the checkpoint is at round %d of %d: nothing left to run (raise "
                        "rounds to go on)", start, self.task.rounds)
            self._save_params()
            return {"peer": self.i, "round": start}
        frame_bytes = max(self.template.max_frame_bytes, self.params_template.max_frame_bytes)
        self.transport = Transport(self.i, opts.addresses, bind=opts.bind,
                                   max_frame_bytes=frame_bytes + 1024, curve=opts.keys,
                                   recv_hwm=2 * (opts.max_ahead + 2))
        members = Membership(opts.heartbeat_timeout, opts.catchup_after, rounds=self.task.rounds)
        self.inbox = Inbox(self.transport, self.template, self.n, opts.max_ahead,
                           self.counters, members, self.params_template, opts.heartbeat_interval)
        self._prepare_inbox(start)
        self.inbox.publish(start, self.params)
        clean = False
        try:
            self.inbox.start()
            self._warm_up()
            self.inbox.beat_targets = frozenset(self.near(start))
            self._hello(start)
            record = self._rounds(start, on_round)
            self._bye()
            clean = True
        finally:
            self.inbox.stop()
            self.transport.close(linger_ms=1000 if clean else 0)
        self._save_params()
        return record

    def _prepare_inbox(self, start: int) -> None:
        """Before the receiving thread starts: what the inbox accepts from round ``start``."""
        self.inbox.jump(start, self._expected(start, start + self.options.max_ahead + 1))

    @property
    def params(self) -> Any:
        """This peer's current parameters."""
        return self.state.params

    def _save_params(self) -> None:
        if self.options.save_params:
            (self.options.out_dir / "params").mkdir(exist_ok=True)
            save_npz(self.options.out_dir / "params" / f"peer-{self.i:04d}.npz",
                     jax.device_get(self.params))

    def _warm_up(self) -> None:
        """Compiles every jitted function once (compilation must not eat into deadlines)."""
        key = round_key(self.task.train_key, self.i, 0)
        pending, _ = self.fn.local(self.state, self.shard, key)
        msg = self.fn.message(pending, self.fn.early(self.state))
        _, weights, self_weight = self.in_neighbours(0)
        self.fn.finish(pending, self.fn.stack([msg] * self.task.topology.k), weights,
                       self_weight, np.float32(0))
        self.fn.evaluate(self.params, self.x_test, self.y_test)
        if self.fn.attack is not None:
            self.fn.attack(msg, view_of([], [], own=msg), key)
        self.fn.finite((self.state.params, self.state.rule_state, jnp.zeros(())))
        self.fn.finite((self.state.params, self.state.rule_state))
        self.fn.keep_finite(self.state, self.state)

    def _send_all(self, frames: list[Any], dests: set[int]) -> set[int]:
        """Sends ``frames`` to every peer of ``dests``; returns those whose queue was full."""
        failed = set()
        for j in sorted(dests):
            if not self.transport.send(j, frames):
                failed.add(j)
                self.counters.send_failures += 1
                log.info("send to peer %d failed: its queue is full (unreachable?)", j)
        return failed

    def _hello(self, t: int) -> None:
        # Everyone of the first max_ahead rounds: a peer not heard from is not waited for.
        hello = encode("hello", self.i, t, self.template)
        self._send_all(hello, self.near(t))
        missing = self.inbox.wait_hello(self.near(t), self.options.startup_timeout)
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
        self.inbox.wait_gone(self.receivers(last), last, self.options.round_deadline)

    # -- checkpoints --------------------------------------------------------------------------

    def _state_trees(self) -> dict[str, Any]:
        return self.state._asdict()

    def _meta(self, next_round: int) -> dict[str, Any]:
        return {"peer": self.i, "peers": self.n, "round": next_round,
                "run": self.options.run_digest,
                "train_key": np.asarray(jax.random.key_data(self.task.train_key)).tolist()}

    def _checkpoint(self, next_round: int) -> None:
        save_checkpoint(checkpoint_path(self.options.out_dir, self.i),
                        jax.device_get(self._state_trees()), self._meta(next_round))

    def _restore(self) -> int:
        """Loads this peer's checkpoint; returns the round to continue from."""
        path = checkpoint_path(self.options.out_dir, self.i)
        if not path.exists():
            log.warning("--resume: no checkpoint at %s, starting from round 0", path)
            return 0
        trees, meta = load_checkpoint(path, self._state_trees())
        if type(meta.get("round")) is not int or meta["round"] < 0:
            raise CheckpointError(f"checkpoint {path}: round {meta.get('round')!r} is not a "
                                  "round number")
        expected = self._meta(meta["round"])
        names = {"peer": "peer id", "peers": "number of peers", "run": "config digest",
                 "train_key": "training key (seed)"}
        for key, name in names.items():
            if meta.get(key) != expected[key]:
                raise CheckpointError(
                    f"checkpoint {path}: written by another run ({name} {meta.get(key)!r}, this "
                    f"run's is {expected[key]!r}); resume with the config that wrote it")
        self.state = PeerState(**{k: jax.tree.map(jnp.asarray, v) for k, v in trees.items()})
        log.warning("resumed from %s at round %d", path, meta["round"])
        return int(meta["round"])

    # -- failures -----------------------------------------------------------------------------

    def _wait_if_isolated(self, t: int) -> None:
        near = self.near(t)
        if self._alone:  # gave up waiting: go on until a neighbour is heard again
            self._alone = not self.inbox.alive(near)
        elif self.inbox.isolated(near):
            log.warning("round %d: every neighbour is silent; waiting up to %.0f s for one to "
                        "return", t, self.options.startup_timeout)
            if not self.inbox.wait_contact(near, self.options.startup_timeout):
                log.warning("no neighbour returned: going on alone")
                self._alone = True

    def _catch_up(self, t: int) -> int:
        """If a neighbour is ``catchup_after`` rounds ahead, takes its parameters and round.

        Returns:
            The round to run next.
        """
        leader = self.inbox.leader(self.near(t), t)
        if leader is None:
            return t
        self.inbox.expect_state(leader)
        self._send_all(encode("state_request", self.i, t, self.template), {leader})
        state = self.inbox.wait_state(self.options.catchup_timeout)
        if state is None:
            self.counters.catch_up_failures += 1
            log.warning("round %d: peer %d said it was ahead but sent no usable state within "
                        "%.1f s; it is not asked again", t, leader, self.options.catchup_timeout)
            return t
        self.state = self.fn.adopt(self.state, jax.tree.map(jnp.array, state.payload))
        self._good, self._mixed_with = None, []
        self.inbox.jump(state.round, self._expected(state.round,
                                                    state.round + self.options.max_ahead + 1))
        self.counters.catch_ups += 1
        log.warning("caught up from round %d to round %d with peer %d's parameters", t,
                    state.round, leader)
        return state.round

    # -- rounds -------------------------------------------------------------------------------

    def _rounds(self, t: int, on_round: Callable[[dict[str, Any]], None] | None
                ) -> dict[str, Any]:
        task, opts = self.task, self.options
        record: dict[str, Any] = {}
        metrics_path = opts.out_dir / f"peer-{self.i:04d}.jsonl"
        start = time.perf_counter()
        self.inbox.begin(t)
        with metrics_path.open("a" if opts.resume else "w") as sink:
            while t < task.rounds:
                self._wait_if_isolated(t)
                t = self._catch_up(t)
                self.inbox.beat_targets = frozenset(self.near(t))
                # Messages up to max_ahead rounds past the next one are accepted from now on.
                if t + opts.max_ahead + 1 < task.rounds:
                    self.inbox.expect(t + opts.max_ahead + 1,
                                      self.senders(t + opts.max_ahead + 1))
                round_start = time.perf_counter()
                loss, wait = self.round(t)
                self.inbox.publish(t + 1, self.params)
                round_time = time.perf_counter() - round_start
                self.inbox.ran(round_time)
                record = self._record(t, loss, time.perf_counter() - start, round_time, wait)
                self._emit(sink, record, on_round)
                t += 1
                if opts.checkpoint_every and (t % opts.checkpoint_every == 0 or t == task.rounds):
                    self._checkpoint(t)
        return record

    @staticmethod
    def _emit(sink: TextIO, record: dict[str, Any],
              on_round: Callable[[dict[str, Any]], None] | None) -> None:
        """Writes a round's record to the peer's metrics file (flushed: it is followed
        live) and hands it to ``on_round``."""
        sink.write(json.dumps(record) + "\n")
        sink.flush()
        if on_round:
            on_round(record)

    def _local(self, key: jax.Array) -> tuple[Any, Any] | None:
        """The round's local steps from ``self.state``; None when they are not finite."""
        pending, loss = self.fn.local(self.state, self.shard, key)
        ok = self.fn.finite((pending.params, pending.rule_state, loss))
        return (pending, loss) if bool(ok) else None  # waits for the computation

    def _roll_back(self, t: int) -> bool:
        """Round t's local steps were not finite: back to the state before the last mix.

        Returns:
            True when there was such a state (``self.state`` is now that state).
        """
        if self._mixed_with:
            self.counters.mixes_discarded += 1
            log.warning("round %d: the local steps after round %d's mix are not finite: "
                        "discarding that mix, whose messages came from peer(s) %s", t,
                        self._mixed_round, self._mixed_with)
        else:
            self.counters.local_divergences += 1
            log.warning("round %d: the local steps are not finite (no neighbour's message "
                        "went into the last mix)", t)
        good, self._good, self._mixed_with = self._good, None, []
        if good is None or good is self.state:
            return False
        self.state = good
        return True

    def round(self, t: int) -> tuple[float, float]:
        """Runs round t: compute, send, wait, finish (the order is gossip.round's).

        Returns:
            ``(loss, wait)``: the mean training loss of the H local steps (NaN when they
            were not finite even from the last finite state: the round then neither sends
            nor mixes) and the seconds spent waiting for messages.
        """
        fn = self.fn
        times = self.stage_times = {"compute_time": 0.0, "send_time": 0.0, "mix_time": 0.0}
        key = round_key(self.task.train_key, self.i, t)
        receivers = self.receivers(t)
        early = fn.early(self.state)
        if early is not None:  # sent while the local steps run
            begin = time.perf_counter()
            sent = self._send_message(t, self._forge(early, key), receivers)
            times["send_time"] += time.perf_counter() - begin
        begin = time.perf_counter()
        out = self._local(key)
        if out is None and self._roll_back(t):
            # Again from the state before the last mix. A cta message is out already (from
            # the state rolled back from): it only fills the slots of missing messages.
            out = self._local(key)
        times["compute_time"] = self._stretch(time.perf_counter() - begin)
        if out is None:
            log.warning("round %d: the local steps are not finite from the last finite "
                        "state either: this round neither sends nor mixes", t)
            self.inbox.wait_round(t, 0.0)
            return float("nan"), 0.0
        pending, loss = out
        self._good = self.state
        msg = fn.message(pending, early)
        if early is None:
            begin = time.perf_counter()
            sent = self._send_message(t, self._forge(msg, key), receivers)
            times["send_time"] += time.perf_counter() - begin
        undelivered = self.task.topology.share(t, self.i, receivers - sent)
        loss = float(loss)
        wait_start = time.perf_counter()
        received = self.inbox.wait_round(t, self.options.round_deadline)
        wait = time.perf_counter() - wait_start
        mix_start = time.perf_counter()
        neighbours, weights, self_weight = self.in_neighbours(t)
        slots, w = [], np.array(weights)
        for k, j in enumerate(neighbours):
            payload = received.get(int(j)) if j != self.i else None
            if payload is None:  # padding slot or missing message: weight 0
                w[k] = 0.0
                slots.append(msg)
            else:
                slots.append(payload)
        self.state, ok = fn.keep_finite(
            fn.finish(pending, fn.stack(slots), w, self_weight, np.float32(undelivered)),
            self.state)
        self._mixed_with, self._mixed_round = sorted(received), t
        if fn.attack is not None:
            arrived = [k for k, j in enumerate(neighbours) if j != self.i and int(j) in received]
            self._received = ([received[int(neighbours[k])] for k in arrived],
                              [float(weights[k]) for k in arrived])
        mixed = bool(ok)  # waits for the mix
        times["mix_time"] = time.perf_counter() - mix_start
        if not mixed:
            self.counters.mixes_discarded += 1
            log.warning("round %d: the mix is not finite: discarded (its messages came from "
                        "peer(s) %s); the round's start state is kept", t, self._mixed_with)
            self._mixed_with = []
        return loss, wait

    def _forge(self, msg: Any, key: jax.Array) -> Any:
        """What this peer sends for its honest message ``msg``: ``msg``, or an attacker's
        forgery (``gossip.attacks``) with the view of the messages it received last round."""
        if self.fn.attack is None:
            return msg
        return self.fn.attack(msg, view_of(*self._received, own=msg), key)

    def _stretch(self, computed: float) -> float:
        """Sleeps to stretch the local steps' ``computed`` seconds: to ``speed`` times that,
        or to ``step_time * H * speed`` when a step time is set (``PeerOptions``).

        Returns:
            The stretched compute time (seconds).
        """
        opts = self.options
        target = opts.speed * (opts.step_time * self.h if opts.step_time > 0 else computed)
        if target > computed:
            time.sleep(target - computed)
        return max(target, computed)

    def _send_message(self, t: int, msg: Any, receivers: set[int]) -> set[int]:
        """Sends round t's message to the live ``receivers``; returns those it was sent to."""
        # Only to live peers: the queue of a dead or not yet started peer would fill with
        # messages it never uses, and delay what it needs when it comes (a state answer).
        receivers = self.inbox.alive(receivers)
        if not receivers:
            return set()
        frames = encode("gossip", self.i, t, self.template, jax.device_get(msg))
        sent = receivers - self._send_all(frames, receivers)
        self.counters.messages_sent += len(sent)
        self.counters.bytes_sent += len(sent) * self.template.nbytes
        self.counters.header_bytes_sent += len(sent) * len(frames[0])
        return sent

    def _record(self, t: int, loss: float, elapsed: float, round_time: float, wait: float
                ) -> dict[str, Any]:
        task = self.task
        record: dict[str, Any] = {
            "peer": self.i, "round": t + 1, "step": (t + 1) * self.h,
            "time": round(elapsed, 4), "round_time": round(round_time, 4),
            "wait_time": round(wait, 4),
            **{name: round(seconds, 4) for name, seconds in self.stage_times.items()},
            "loss": loss,
            "params_finite": bool(self.fn.finite((self.state.params, self.state.rule_state))),
            "neighbours_alive": len(self.inbox.alive(self.near(t))),
        }
        if task.attack is not None:
            record["attacker"] = True
        if isinstance(self.state.rule_state, RobustState):
            record["robust_flagged"] = int(self.state.rule_state.flagged)
        if (t + 1) % task.eval_every == 0 or t + 1 == task.rounds:
            metric, test_loss = self.fn.evaluate(self.params, self.x_test, self.y_test)
            record[f"local_{METRIC_SHORT[task.metric_name]}"] = float(metric)
            record["local_loss"] = float(test_loss)
        record.update(dataclasses.asdict(self.counters))
        return record
