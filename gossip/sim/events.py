"""The event-driven simulator: the per-peer round on a simulated clock (a driver).

Every peer runs :mod:`gossip.round` (``early``, ``local``, ``message``, ``finish``) as in the
round simulator; this driver only decides *when* each peer does it and *which* messages it
has by then, from a :class:`gossip.sim.timing.TimeModel` (compute speeds, link delay, drops).
It never reorders a round.

Modes:

- ``sync``: rounds with a barrier per peer, as real peers run them. Peer i starts round t
  when it has finished round t-1, runs its local steps (``steps * step_time * speed[i]``
  seconds), sends, and mixes when the round-t messages of all its in-neighbours have arrived,
  or ``round_deadline`` seconds after its own work when one is missing (lost, or late: a late
  message is not used). All peers' round t is one vmapped call (the round's events are one
  bucket): with zero delays and equal speeds it gives the round simulator's parameters.
- time-budgeted (``sync`` with ``local_time`` > 0): in each round peer i runs as many local
  steps as fit in ``local_time`` seconds, at least one (``max(1, floor(local_time /
  step_seconds[i]))``, at most ``max_steps``). The mix is not reweighted for unequal work
  (see docs/simulator.md).
- ``async``: no rounds. Each peer loops: local work, push its message to its out-neighbours,
  mix whatever has arrived since its last mix (the newest message per in-link), repeat. Only
  a rule with ``"async"`` in ``modes`` (running-sum push-sum) is exact here. A message older
  than ``max_staleness`` of the receiver's rounds is not mixed (counted as stale). The events
  of the peers that fall in one time bucket (default: the link delay, which keeps the order
  of causes and effects exact) are one vmapped call over those peers, padded to a power of
  two so each size compiles once.

The run ends when every peer has done ``rounds`` rounds (sync) or when the peers together
have done ``peers * rounds`` (async: the same computation as a sync run, spread by speed).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gossip.round import PeerState, Shard, make_peer_round
from gossip.rules import GossipRule
from gossip.sim.simulator import PeerData, SimState, gather
from gossip.sim.timing import TimeModel
from gossip.topology import RoundGraph
from gossip.training import LossFn, make_local_round, make_local_step, round_key

Params = Any
MODES = ("sync", "async")
_MIN_BATCH = 8  # the smallest padded batch of an async bucket
_EPS = 1e-12


class EventOptions(NamedTuple):
    """How an event simulation runs.

    Attributes:
        mode: ``"sync"`` or ``"async"``.
        rounds: rounds per peer (sync), or rounds per peer on average (async).
        eval_every: report every this many rounds (and after the last).
        local_time: seconds of local work per round (time-budgeted); 0: H local steps.
        round_deadline: sync: seconds a peer waits for a missing message after its work.
        max_staleness: async: the oldest message mixed, in the receiver's rounds (0: any).
        time_bucket: async: events within this many seconds share one vmapped call (0: the
            link delay, the widest that keeps the order of causes and effects).
    """

    mode: str = "sync"
    rounds: int = 100
    eval_every: int = 25
    local_time: float = 0.0
    round_deadline: float = 30.0
    max_staleness: int = 0
    time_bucket: float = 0.0


class EventReport(NamedTuple):
    """What the engine reports at an evaluation point.

    Attributes:
        round: rounds done (sync), or the peers' total rounds // N (async).
        state: the peers' stacked state.
        loss: (N,) each peer's training loss in its last round.
        stats: ``time_s`` (simulated seconds), ``steps_min``/``steps_max``/``steps_mean``
            (local steps per peer so far), ``messages_sent``, ``messages_lost``,
            ``messages_late`` (sync: past the deadline), ``messages_stale`` (async: past
            ``max_staleness``), ``staleness_mean``/``staleness_max`` (of what was mixed).
    """

    round: int
    state: SimState
    loss: np.ndarray
    stats: dict[str, float]


def budget_steps(speed_seconds: np.ndarray, local_time: float, max_steps: int) -> np.ndarray:
    """(N,) local steps per round: as many as fit in ``local_time``, in [1, max_steps]."""
    fit = np.floor(local_time / speed_seconds + 1e-9).astype(np.int64)
    return np.clip(fit, 1, max_steps)


class EventEngine(NamedTuple):
    """The jitted transitions the event loop calls.

    Attributes:
        round: ``round(state, data, graph, steps, key) -> (state, loss)``: all peers' round
            (sync), ``graph.weights`` already 0 where a message was missing.
        tick: ``tick(state, hist, data, idx, rounds, steps, src, src_slot, weights,
            self_weight, write_slot, key) -> (state, hist, loss)``: the peers ``idx`` (B,)
            (padding: N) run their round and mix the buffered messages ``hist[src,
            src_slot]`` (B, K); their messages go to ``hist[idx, write_slot]``.
        message_of: ``message_of(state) -> messages`` of every peer (leaves (N, ...)): the
            shapes of the message buffer.
        budgeted: whether ``steps`` is used (time-budgeted work).
        h: the local steps of a round (time-budgeted: the most a round may take).
    """

    round: Callable[..., tuple[SimState, jax.Array]]
    tick: Callable[..., tuple[SimState, Any, jax.Array]]
    message_of: Callable[[SimState], Any]
    budgeted: bool
    h: int


def make_event_engine(loss_fn: LossFn, optimizer: optax.GradientTransformation,
                      rule: GossipRule, batch_size: int, max_steps: int | None = None
                      ) -> EventEngine:
    """Builds the event simulator's transitions for one model, optimizer and rule.

    Args:
        loss_fn: ``loss(params, x, y) -> ()`` of one peer.
        optimizer: the optax optimizer every peer uses.
        rule: the gossip rule.
        batch_size: batch size per peer and local step.
        max_steps: time-budgeted work: the most local steps a round may take (the rounds then
            take a per-peer ``steps``); None: the rule's H, always.

    Returns:
        The engine's jitted transitions.
    """
    budgeted = max_steps is not None
    h = max_steps if budgeted else rule.local_steps
    peer_round = make_peer_round(rule, make_local_round(
        make_local_step(loss_fn, optimizer), batch_size, h))

    def local(peers: PeerState, shard: Shard, keys: jax.Array, steps: jax.Array | None
              ) -> Any:
        if budgeted:
            return jax.vmap(peer_round.local)(peers, shard, keys, steps)
        return jax.vmap(peer_round.local)(peers, shard, keys)

    def sync_round(state: SimState, data: PeerData, graph: RoundGraph, steps: jax.Array,
                   train_key: jax.Array) -> tuple[SimState, jax.Array]:
        n = data.size.shape[0]
        keys = jax.vmap(lambda p: round_key(train_key, p, state.round))(jnp.arange(n))
        peers = PeerState(state.params, state.opt_state, state.rule_state)
        early = jax.vmap(peer_round.early)(peers)
        pending, loss = local(peers, Shard(data.x, data.y, data.size), keys, steps)
        payloads = gather(jax.vmap(peer_round.message)(pending, early), graph.neighbours)
        new = jax.vmap(peer_round.finish)(pending, payloads, graph.weights,
                                          graph.self_weight, jnp.zeros_like(graph.self_weight))
        return SimState(new.params, new.opt_state, new.rule_state, state.round + 1), loss

    def tick(state: SimState, hist: Any, data: PeerData, idx: jax.Array, rounds: jax.Array,
             steps: jax.Array, src: jax.Array, src_slot: jax.Array, weights: jax.Array,
             self_weight: jax.Array, write_slot: jax.Array, train_key: jax.Array
             ) -> tuple[SimState, Any, jax.Array]:
        take = lambda a: jnp.take(a, idx, axis=0, mode="clip")  # noqa: E731
        peers = jax.tree.map(take, PeerState(state.params, state.opt_state, state.rule_state))
        shard = Shard(take(data.x), take(data.y), take(data.size))
        keys = jax.vmap(lambda p, r: round_key(train_key, p, r))(idx, rounds)
        early = jax.vmap(peer_round.early)(peers)
        pending, loss = local(peers, shard, keys, steps)
        messages = jax.vmap(peer_round.message)(pending, early)
        # What was buffered before this call: a message sent in this bucket is not read in it.
        payloads = jax.tree.map(lambda m: m[src, src_slot], hist)
        new = jax.vmap(peer_round.finish)(pending, payloads, weights, self_weight,
                                          jnp.zeros_like(self_weight))
        put = lambda a, b: a.at[idx].set(b, mode="drop")  # noqa: E731 (padding idx = N)
        state = SimState(*jax.tree.map(put, (state.params, state.opt_state, state.rule_state),
                                       tuple(new)), state.round)
        hist = jax.tree.map(lambda hh, m: hh.at[idx, write_slot].set(m, mode="drop"), hist,
                            messages)
        return state, hist, loss

    def message_of(state: SimState) -> Any:
        return jax.vmap(rule.message)(state.params, state.rule_state)

    return EventEngine(jax.jit(sync_round, donate_argnums=0),
                       jax.jit(tick, donate_argnums=(0, 1)), jax.jit(message_of), budgeted, h)


def run_events(engine: EventEngine, state: SimState, data: PeerData,
               graph_of: Callable[[int], RoundGraph], time: TimeModel,
               options: EventOptions, msg_bytes: int, train_key: jax.Array,
               ) -> Iterator[EventReport]:
    """Runs an event simulation, yielding a report at every evaluation point.

    Args:
        engine: the jitted transitions (:func:`make_event_engine`).
        state: the initial stacked state.
        data: every peer's padded shard.
        graph_of: ``graph_of(t)``: the topology's round graph of round t (numpy arrays);
            async mode uses round 0's (a static topology: ``gossip.experiment.async_rule``).
        time: when things happen.
        options: mode, rounds, budgets, deadline, staleness bound, bucket.
        msg_bytes: encoded size of one message (what the link delay is computed from).
        train_key: the run's training key.

    Yields:
        An :class:`EventReport` after every ``eval_every`` rounds and after the last.
    """
    n = len(time.speed)
    step_s = time.step_seconds()
    steps = (budget_steps(step_s, options.local_time, engine.h) if engine.budgeted
             else np.full(n, engine.h))
    period = steps * step_s
    delay = time.delay(msg_bytes)
    run = _sync if options.mode == "sync" else _async
    yield from run(engine, state, data, graph_of, time, options, train_key, steps, period,
                   delay)


def _valid_slots(graph: RoundGraph) -> np.ndarray:
    nbr = np.asarray(graph.neighbours)
    return (nbr != np.arange(nbr.shape[0])[:, None]) & (np.asarray(graph.weights) > 0)


def _sync(engine: EventEngine, state: SimState, data: PeerData,
          graph_of: Callable[[int], RoundGraph], time: TimeModel, options: EventOptions,
          train_key: jax.Array, steps: np.ndarray, period: np.ndarray, delay: float
          ) -> Iterator[EventReport]:
    start = np.zeros(len(period))
    done_steps = np.zeros(len(period), np.int64)
    stats = collections.Counter()
    steps_dev = jnp.asarray(steps, jnp.int32)
    for t in range(options.rounds):
        graph = graph_of(t)
        nbr = np.asarray(graph.neighbours)
        valid = _valid_slots(graph)
        weights = np.asarray(graph.weights, np.float32)
        ready = start + period
        arrival = ready[nbr] + delay
        lost = valid & (time.drops(t).random(valid.shape) < time.drop)
        deadline = ready + options.round_deadline
        late = valid & ~lost & (arrival > deadline[:, None] + _EPS)
        ok = valid & ~lost & ~late
        waited = np.where(ok, arrival, -np.inf).max(axis=1, initial=-np.inf)
        end = np.maximum(ready, waited)
        end = np.where((valid & ~ok).any(axis=1), np.maximum(end, deadline), end)
        round_graph = RoundGraph(jnp.asarray(nbr), jnp.asarray(np.where(ok, weights, 0)),
                                 jnp.asarray(graph.self_weight))
        state, loss = engine.round(state, data, round_graph, steps_dev, train_key)
        start = end
        done_steps += steps
        stats.update(messages_sent=int(valid.sum()),
                     messages_lost=int(lost.sum()), messages_late=int(late.sum()))
        if (t + 1) % options.eval_every == 0 or t + 1 == options.rounds:
            yield EventReport(t + 1, state, np.asarray(jax.device_get(loss)),
                              _stats(float(end.max()), done_steps, stats, []))


def _stats(time_s: float, done_steps: np.ndarray, counts: collections.Counter,
           staleness: list[int]) -> dict[str, float]:
    return {"time_s": round(time_s, 6), "steps_min": int(done_steps.min()),
            "steps_max": int(done_steps.max()), "steps_mean": float(done_steps.mean()),
            "messages_sent": int(counts["messages_sent"]),
            "messages_lost": int(counts["messages_lost"]),
            "messages_late": int(counts["messages_late"]),
            "messages_stale": int(counts["messages_stale"]),
            "staleness_mean": float(np.mean(staleness)) if staleness else 0.0,
            "staleness_max": int(max(staleness)) if staleness else 0}


def _pad(size: int, n: int) -> int:
    return min(max(_MIN_BATCH, 1 << (size - 1).bit_length()), max(n, 1 << (n - 1).bit_length()))


def _async(engine: EventEngine, state: SimState, data: PeerData,
           graph_of: Callable[[int], RoundGraph], time: TimeModel, options: EventOptions,
           train_key: jax.Array, steps: np.ndarray, period: np.ndarray, delay: float
           ) -> Iterator[EventReport]:
    n = len(period)
    graph = graph_of(0)
    nbr = np.asarray(graph.neighbours)
    k = nbr.shape[1]
    valid = _valid_slots(graph)
    weights = np.asarray(graph.weights, np.float32)
    self_w = np.asarray(graph.self_weight, np.float32)
    # Receivers of each sender: (receiver, slot) pairs.
    out = [list(zip(*np.nonzero((nbr == j) & valid), strict=True)) for j in range(n)]
    # A sender's messages live in a ring of `depth`; an evicted one is never needed for
    # exactness (running sums: a newer one carries it), only skipped.
    depth = int(min(64, max(4, math.ceil(delay / max(period.min(), _EPS)) + 4)))
    template = engine.message_of(state)
    hist = jax.tree.map(lambda m: jnp.repeat(m[:, None], depth, axis=1), template)
    queues = [[collections.deque() for _ in range(k)] for _ in range(n)]
    taken = np.full((n, k), -1, np.int64)
    count = np.zeros(n, np.int64)  # rounds done = messages sent
    next_t = period.astype(np.float64).copy()
    done_steps = np.zeros(n, np.int64)
    last_loss = np.zeros(n, np.float32)
    stats: collections.Counter = collections.Counter()
    staleness: list[int] = []
    bucket = options.time_bucket or delay
    drops = time.drops(0)
    target, reported = n * options.rounds, 0
    now = 0.0
    while int(count.sum()) < target:
        t0 = float(next_t.min())
        batch = np.flatnonzero(next_t <= t0 + max(bucket, _EPS) - (_EPS if bucket else 0))
        batch = batch[np.lexsort((batch, next_t[batch]))]
        size = _pad(len(batch), n)
        src = np.zeros((size, k), np.int64)
        slot = np.zeros((size, k), np.int64)
        w = np.zeros((size, k), np.float32)
        for b, i in enumerate(batch):
            for s in np.flatnonzero(valid[i]):
                j, q, newest = nbr[i, s], queues[i][s], -1
                while q and q[0][0] <= next_t[i] + _EPS:
                    newest = q.popleft()[1]
                if newest <= taken[i, s]:
                    continue
                lag = int(count[i] - newest)
                if options.max_staleness and lag > options.max_staleness:
                    stats["messages_stale"] += 1
                    continue
                if newest < count[j] - depth:  # evicted from the ring: a newer one will come
                    continue
                src[b, s], slot[b, s], w[b, s] = j, newest % depth, weights[i, s]
                taken[i, s] = newest
                staleness.append(max(lag, 0))
        for i in batch:  # sends, after every read of this bucket
            for r, s in out[i]:
                stats["messages_sent"] += 1
                if drops.random() < time.drop:
                    stats["messages_lost"] += 1
                else:
                    queues[r][s].append((next_t[i] + delay, int(count[i])))
        idx = np.full(size, n, np.int64)
        idx[:len(batch)] = batch
        sw = np.ones(size, np.float32)
        sw[:len(batch)] = self_w[batch]
        st = np.ones(size, np.int32)
        st[:len(batch)] = steps[batch]
        rounds = np.zeros(size, np.int32)
        rounds[:len(batch)] = count[batch]
        write = np.zeros(size, np.int64)
        write[:len(batch)] = count[batch] % depth
        state, hist, loss = engine.tick(
            state, hist, data, jnp.asarray(idx, jnp.int32), jnp.asarray(rounds),
            jnp.asarray(st), jnp.asarray(src, jnp.int32), jnp.asarray(slot, jnp.int32),
            jnp.asarray(w), jnp.asarray(sw), jnp.asarray(write, jnp.int32), train_key)
        last_loss[batch] = np.asarray(jax.device_get(loss))[:len(batch)]
        now = float(next_t[batch].max())
        count[batch] += 1
        done_steps[batch] += steps[batch]
        next_t[batch] += period[batch]
        progress = int(count.sum()) // n
        if (progress // options.eval_every > reported // options.eval_every
                or int(count.sum()) >= target):
            reported = progress
            yield EventReport(min(progress, options.rounds), state, last_loss.copy(),
                              _stats(now, done_steps, stats, staleness))
            staleness = []
