"""The asynchronous real peer (``--mode async``): no round barrier (DESIGN §3).

Each peer loops at its own pace, running the per-peer round of :mod:`gossip.round` with
running-sum push-sum (``gossip.rules.running_sum``, the rule the event simulator runs in
async mode):

1. ``local``: its local steps (H, or as many as fit in ``local_time``);
2. ``message``: its running sums, pushed to its out-neighbours (those alive) at once;
3. ``finish`` with the newest message of each in-neighbour that arrived since its last mix
   (``Inbox.take_latest``); a slot with nothing new, or with a message more than
   ``max_staleness`` of this peer's rounds old (dropped, ``messages_stale``), has weight 0.

A peer never waits for a neighbour's message. Its round ``c`` (the messages it pushed so far)
is what its messages carry; the staleness of a mixed message is ``c`` minus its round
(``staleness_mean``/``staleness_max`` in the record, as the event simulator's).

The end. A peer stops stepping after ``rounds`` rounds, or as soon as every in-neighbour has
stopped (a straggler does not go on alone). Its last message carries round ``rounds``
whatever its count: that tells its out-neighbours it was the last. Running sums lose no mass
to late or skipped messages, only to a last message never taken in; so a peer that has
stopped keeps taking in (``absorb``: its own share stays whole, it pushes nothing more)
until every in-neighbour's last message arrived, then says bye. With every last message
taken in, the peers' push-sum weights sum to N exactly (``mass`` in the record). A last
message that never comes (its sender died and did not come back within
``round_deadline`` seconds of silence) is counted in ``final_missing``, and a last message
this peer could not send in ``final_unsent``: either makes ``gossip peer`` exit non-zero.

Checkpoints and ``--resume`` work as in sync mode: a checkpoint holds the running sums
with the parameters, so a peer restarted from one conserves the total mass exactly (what it
pushed after the checkpoint is pushed again; receivers drop its repeated rounds as stale
until it passes them). There is no catch-up: peers are at different rounds by design.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from gossip.peer.runtime import Peer
from gossip.summary_table import METRIC_SHORT
from gossip.training import round_key
from gossip.wire import encode

log = logging.getLogger("gossip.peer")
_WAIT_S = 0.5  # a stopped peer re-checks its in-neighbours this often while it takes in


class AsyncPeer(Peer):
    """A real peer in asynchronous mode (see the module docstring).

    Args:
        task: what to train (its rule must have ``"async"`` in ``modes``: running-sum
            push-sum, built by ``gossip.experiment`` for ``mode = "async"``).
        options: how to communicate (``mode == "async"``).
    """

    def _zero_message(self) -> Any:
        shapes = jax.eval_shape(self.task.rule.message, self.state.params,
                                self.state.rule_state)
        return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)

    def _warm_up(self) -> None:
        super()._warm_up()
        _, weights, _ = self.in_neighbours(0)
        self.fn.absorb(self.state, self.fn.stack([self._zero_message()] * self.task.topology.k),
                       np.zeros_like(weights))

    def _prepare_inbox(self, start: int) -> None:
        self.inbox.jump(start, {})
        self.inbox.go_async(self.senders(0), self.task.rounds)

    def _bye(self) -> None:
        bye = encode("bye", self.i, self.inbox.current, self.template)
        receivers = self.receivers(0)
        self._send_all(bye, self.senders(0) | receivers | set(self.transport.dealers))
        # Our last message is out; keep the sockets until the receivers took it in and left.
        self.inbox.wait_left(receivers, self.options.round_deadline)

    def _rounds(self, c: int, on_round: Callable[[dict[str, Any]], None] | None
                ) -> dict[str, Any]:
        task, opts, fn = self.task, self.options, self.fn
        senders, receivers = self.senders(0), self.receivers(0)
        neighbours, weights, self_weight = self.in_neighbours(0)
        self.inbox.beat_targets = frozenset(senders | receivers)
        record: dict[str, Any] = {}
        metrics_path = opts.out_dir / f"peer-{self.i:04d}.jsonl"
        start = time.perf_counter()
        self.inbox.begin(c)
        self.final_unsent = self.final_missing = 0
        self._unsent: set[int] = set()  # out-neighbours our last message did not reach
        self._last_msg = self._zero_message()  # fills empty slots until a message is made
        with metrics_path.open("a" if opts.resume else "w") as sink:
            last = False
            while not last:
                self._wait_if_isolated(c)
                round_start = time.perf_counter()
                times = self.stage_times = {"compute_time": 0.0, "send_time": 0.0,
                                            "mix_time": 0.0}
                key = round_key(task.train_key, self.i, c)
                begin = time.perf_counter()
                out = self._local(key)
                if out is None and self._roll_back(c):
                    out = self._local(key)
                times["compute_time"] = self._stretch(time.perf_counter() - begin)
                last = c + 1 >= task.rounds or senders <= self.inbox.finished
                if out is None:
                    log.warning("round %d: the local steps are not finite from the last "
                                "finite state either: this round only gossips", c)
                    # No local step (steps = 0): the round still pushes and mixes, so the
                    # running sums go on (and a last message goes out).
                    pending, loss = fn.local(self.state, self.shard, key, np.int32(0))
                    loss = float("nan")
                else:
                    pending, loss = out
                    self._good = self.state
                begin = time.perf_counter()
                msg = self._last_msg = fn.message(pending, None)
                # A receiver that is not alive now gets the last message when it is again
                # (``_absorb``): without it, that receiver's mass is short.
                sent = self._send_message(task.rounds if last else c, msg, receivers)
                if last:
                    self._unsent = receivers - sent
                times["send_time"] = time.perf_counter() - begin
                begin = time.perf_counter()
                loss, stale = float(loss), self._mix(c, pending, msg, neighbours, weights,
                                                     self_weight)
                times["mix_time"] = time.perf_counter() - begin
                c += 1
                self.inbox.publish(c, self.params)
                round_time = time.perf_counter() - round_start
                self.inbox.ran(round_time)
                record = self._async_record(c - 1, loss, time.perf_counter() - start,
                                            round_time, stale, final=False)
                self._emit(sink, record, on_round)
                if opts.checkpoint_every and c % opts.checkpoint_every == 0:
                    self._checkpoint(c)
            absorbed = self._absorb(senders, neighbours, weights)
            record = self._async_record(c - 1, record["loss"], time.perf_counter() - start,
                                        0.0, [], final=True)
            record["messages_absorbed"] = absorbed
            self._emit(sink, record, on_round)
        if opts.checkpoint_every:
            self._checkpoint(c)
        return record

    def _roll_back(self, t: int) -> bool:
        """As the sync peer's, but only the parameters and optimizer state go back: the
        running sums, last-seen sums and weight stay, since the messages made from them are
        out and the ones taken in are gone (restoring them would lose or double mass). The
        old parameters are adopted as a catch-up is (``rule.rebase``)."""
        current = self.state
        if not super()._roll_back(t):
            return False
        good = self.state
        self.state = self.fn.adopt(current._replace(opt_state=good.opt_state), good.params)
        return True

    def _slots(self, arrived: dict[int, tuple[int, Any]], own: Any, neighbours: np.ndarray,
               weights: np.ndarray) -> tuple[Any, np.ndarray]:
        """The K payloads and weights of a mix from the messages that arrived (weight 0 and
        this peer's own message in a slot with none)."""
        slots, w = [], np.array(weights, np.float32)
        for k, j in enumerate(neighbours):
            got = arrived.get(int(j)) if j != self.i else None
            if got is None:
                w[k] = 0.0
                slots.append(own)
            else:
                slots.append(got[1])
        return self.fn.stack(slots), w

    def _mix(self, c: int, pending: Any, msg: Any, neighbours: np.ndarray,
             weights: np.ndarray, self_weight: float) -> list[int]:
        """Round c's mix of the newest messages; returns the staleness of each one mixed."""
        arrived = self.inbox.take_latest(c + 1)
        # (a last message, round >= rounds, is never stale)
        staleness = {j: 0 if r >= self.task.rounds else max(c - r, 0)
                     for j, (r, _) in arrived.items()}
        bound = self.options.max_staleness
        if bound:
            old = [j for j, lag in staleness.items() if lag > bound]
            self.counters.messages_stale += len(old)
            for j in old:
                arrived.pop(j)
        payloads, w = self._slots(arrived, msg, neighbours, weights)
        self.state, ok = self.fn.keep_finite(
            self.fn.finish(pending, payloads, w, self_weight, np.float32(0)), self.state)
        self._mixed_with, self._mixed_round = sorted(arrived), c
        if not bool(ok):
            self.counters.mixes_discarded += 1
            log.warning("round %d: the mix is not finite: discarded (its messages came from "
                        "peer(s) %s)", c, self._mixed_with)
            self._mixed_with = []
        return [staleness[j] for j in arrived]

    def _absorb(self, senders: set[int], neighbours: np.ndarray, weights: np.ndarray) -> int:
        """Takes in the in-neighbours' messages until each one's last message arrived, and
        sends this peer's last message again to each out-neighbour it could not reach, once
        that one is alive again (a restarted peer). Gives up on a peer dead and silent for
        ``round_deadline`` seconds (``final_missing``, ``final_unsent``). Returns how many
        messages were taken in."""
        taken, quiet_since = 0, time.monotonic()
        while True:
            if self._unsent:
                back = self.inbox.alive(self._unsent)
                if back:
                    self._unsent -= self._send_message(self.task.rounds, self._last_msg, back)
            self.inbox.wait_latest(senders, _WAIT_S)
            done = self.inbox.finished_now()  # their last messages are in this take, or taken
            arrived = self.inbox.take_latest(self.inbox.current)
            if arrived:
                quiet_since = time.monotonic()
                payloads, w = self._slots(arrived, self._last_msg, neighbours, weights)
                new, ok = self.fn.keep_finite(self.fn.absorb(self.state, payloads, w),
                                              self.state)
                if bool(ok):
                    self.state = new
                else:
                    self.counters.mixes_discarded += 1
                    log.warning("taking in the last messages gave non-finite numbers: "
                                "discarded (from peer(s) %s)", sorted(arrived))
                taken += len(arrived)
            pending = {j for j in senders if j not in done} | self._unsent
            if not pending:
                break
            gone = {j for j in pending if not self.inbox.alive({j})}
            if gone and time.monotonic() - quiet_since > self.options.round_deadline:
                log.warning("peer(s) %s left without taking or sending a last message: the "
                            "push-sum mass in flight between us is lost", sorted(gone))
                break
            if not gone and time.monotonic() - quiet_since > max(
                    self.options.round_deadline, self.options.heartbeat_timeout) * 10:
                log.warning("peer(s) %s sent nothing for %.0f s: giving up their last "
                            "message", sorted(pending), time.monotonic() - quiet_since)
                break
        self.final_missing = len({j for j in senders if j not in self.inbox.finished})
        self.final_unsent = len(self._unsent)
        return taken

    def _async_record(self, c: int, loss: float, elapsed: float, round_time: float,
                      staleness: list[int], final: bool) -> dict[str, Any]:
        record = self._record(c, loss, elapsed, round_time, 0.0)
        record["staleness_mean"] = float(np.mean(staleness)) if staleness else 0.0
        record["staleness_max"] = int(max(staleness)) if staleness else 0
        record["messages_mixed"] = len(staleness)
        record["mass"] = float(jax.device_get(self.state.rule_state.weight))
        if final:
            if "local_loss" not in record:  # the model after taking in the last messages
                metric, test_loss = self.fn.evaluate(self.params, self.x_test, self.y_test)
                record[f"local_{METRIC_SHORT[self.task.metric_name]}"] = float(metric)
                record["local_loss"] = float(test_loss)
            record["final"] = True
            record["final_missing"] = self.final_missing
            record["final_unsent"] = self.final_unsent
        return record

