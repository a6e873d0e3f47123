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
  of causes and effects exact) are one vmapped call: over every peer with a mask when they
  are more than half of the peers (no gather or scatter of the state), else over those
  peers gathered into a batch padded to a power of two (each size compiles once).

The run ends when every peer has done ``rounds`` rounds (sync) or when the peers together
have done ``peers * rounds`` (async: the same computation as a sync run, spread by speed).

Churn (a :class:`gossip.sim.churn.Churn`): a peer away during any part of its round's work
loses that work and keeps the state of its last finished round (as if it checkpointed every
round). In sync mode rounds stay in lockstep: an away peer's state is frozen (``active``
False in the vmapped round), its neighbours get no message from it and wait for it until
``heartbeat_timeout`` after it was last heard (or the round deadline, if sooner); it comes
back at the first round boundary of its neighbourhood after it is back, and so joins the
round its neighbours are in. In async mode an away peer does nothing; messages to it wait in
its queue (late, not lost) and it mixes the newest one per link when it is back. A returning
peer that is ``catchup_after`` rounds or more behind its freshest present in-neighbour takes
that neighbour's parameters and round first (the round's ``adopt``, as a real peer does).
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
from gossip.sim.churn import Churn
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
        catchup_after: churn: a returning peer this many rounds or more behind its freshest
            present in-neighbour adopts that neighbour's parameters and round.
        heartbeat_timeout: churn, sync: seconds after a peer left that its neighbours stop
            waiting for it (the real peers' liveness timeout).
    """

    mode: str = "sync"
    rounds: int = 100
    eval_every: int = 25
    local_time: float = 0.0
    round_deadline: float = 30.0
    max_staleness: int = 0
    time_bucket: float = 0.0
    catchup_after: int = 3
    heartbeat_timeout: float = 5.0


class EventReport(NamedTuple):
    """What the engine reports at an evaluation point.

    Attributes:
        round: rounds done (sync), or the peers' total rounds // N (async).
        state: the peers' stacked state.
        loss: (N,) each peer's training loss in its last round.
        stats: ``time_s`` (simulated seconds), ``steps_min``/``steps_max``/``steps_mean``
            (local steps per peer so far), ``messages_sent``, ``messages_lost``,
            ``messages_late`` (sync: past the deadline), ``messages_stale`` (async: past
            ``max_staleness``), ``staleness_mean``/``staleness_max`` (of what was mixed),
            ``departures``, ``rejoins``, ``catch_ups`` (churn, so far).
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
        round: ``round(state, data, graph, steps, active, key) -> (state, loss)``: all
            peers' round (sync), ``graph.weights`` already 0 where a message was missing;
            a peer with ``active[i]`` False (away: churn) keeps its state.
        tick: ``tick(state, hist, data, idx, rounds, steps, src, src_slot, weights,
            self_weight, write_slot, key) -> (state, hist, loss)``: the peers ``idx`` (B,)
            (padding: N) run their round and mix the buffered messages ``hist[src,
            src_slot]`` (B, K); their messages go to ``hist[idx, write_slot]``.
        message_of: ``message_of(state) -> messages`` of every peer (leaves (N, ...)): the
            shapes of the message buffer.
        adopt: ``adopt(state, src, mask) -> state``: catch-up: every peer i with ``mask[i]``
            takes peer ``src[i]``'s parameters through the round's ``adopt`` (``src``,
            ``mask``: (N,)).
        budgeted: whether ``steps`` is used (time-budgeted work).
        h: the local steps of a round (time-budgeted: the most a round may take).
    """

    round: Callable[..., tuple[SimState, jax.Array]]
    tick: Callable[..., tuple[SimState, Any, jax.Array]]
    message_of: Callable[[SimState], Any]
    adopt: Callable[[SimState, jax.Array, jax.Array], SimState]
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
                   active: jax.Array, train_key: jax.Array) -> tuple[SimState, jax.Array]:
        n = data.size.shape[0]
        keys = jax.vmap(lambda p: round_key(train_key, p, state.round))(jnp.arange(n))
        peers = PeerState(state.params, state.opt_state, state.rule_state)
        early = jax.vmap(peer_round.early)(peers)
        pending, loss = local(peers, Shard(data.x, data.y, data.size), keys, steps)
        payloads = gather(jax.vmap(peer_round.message)(pending, early), graph.neighbours)
        new = jax.vmap(peer_round.finish)(pending, payloads, graph.weights,
                                          graph.self_weight, jnp.zeros_like(graph.self_weight))
        # A peer away this round (churn) keeps its state.
        new = jax.tree.map(lambda a, b: jnp.where(_lead(active, a), a, b), tuple(new),
                           tuple(peers))
        return SimState(*new, state.round + 1), loss

    def adopt(state: SimState, src: jax.Array, mask: jax.Array) -> SimState:
        peers = PeerState(state.params, state.opt_state, state.rule_state)
        theirs = jax.tree.map(lambda a: a[src], state.params)
        new = jax.vmap(peer_round.adopt)(peers, theirs)
        new = jax.tree.map(lambda a, b: jnp.where(_lead(mask, a), a, b), tuple(new),
                           tuple(peers))
        return SimState(*new, state.round)

    def tick(state: SimState, hist: Any, data: PeerData, idx: jax.Array, rounds: jax.Array,
             steps: jax.Array, src: jax.Array, src_slot: jax.Array, weights: jax.Array,
             self_weight: jax.Array, write_slot: jax.Array, train_key: jax.Array,
             full: bool = False) -> tuple[SimState, Any, jax.Array]:
        # full: every peer's row, in order (idx = N for a peer that does not tick): no
        # gather or scatter of the state, a select instead (XLA's CPU scatter is slow).
        old = PeerState(state.params, state.opt_state, state.rule_state)
        if full:
            n = data.size.shape[0]
            mask = idx < n
            peers, shard, ids = old, Shard(data.x, data.y, data.size), jnp.arange(n)
        else:
            take = lambda a: jnp.take(a, idx, axis=0, mode="clip")  # noqa: E731
            peers = jax.tree.map(take, old)
            shard, ids = Shard(take(data.x), take(data.y), take(data.size)), idx
        keys = jax.vmap(lambda p, r: round_key(train_key, p, r))(ids, rounds)
        early = jax.vmap(peer_round.early)(peers)
        pending, loss = local(peers, shard, keys, steps)
        messages = jax.vmap(peer_round.message)(pending, early)
        # What was buffered before this call: a message sent in this bucket is not read in it.
        payloads = jax.tree.map(lambda m: m[src, src_slot], hist)
        new = jax.vmap(peer_round.finish)(pending, payloads, weights, self_weight,
                                          jnp.zeros_like(self_weight))
        if full:
            keep = lambda a, b: jnp.where(_lead(mask, a), a, b)  # noqa: E731
            state = SimState(*jax.tree.map(keep, tuple(new), tuple(old)), state.round)
            depth = jax.tree.leaves(hist)[0].shape[1]
            at = mask[:, None] & (jnp.arange(depth)[None] == write_slot[:, None])  # (N, D)
            hist = jax.tree.map(lambda hh, m: jnp.where(_lead(at, hh), m[:, None], hh), hist,
                                messages)
            return state, hist, loss
        put = lambda a, b: a.at[idx].set(b, mode="drop")  # noqa: E731 (padding idx = N)
        state = SimState(*jax.tree.map(put, tuple(old), tuple(new)), state.round)
        hist = jax.tree.map(lambda hh, m: hh.at[idx, write_slot].set(m, mode="drop"), hist,
                            messages)
        return state, hist, loss

    def message_of(state: SimState) -> Any:
        return jax.vmap(rule.message)(state.params, state.rule_state)

    return EventEngine(jax.jit(sync_round, donate_argnums=0),
                       jax.jit(tick, donate_argnums=(0, 1), static_argnames="full"),
                       jax.jit(message_of),
                       jax.jit(adopt), budgeted, h)


def _lead(mask: jax.Array, like: jax.Array) -> jax.Array:
    """``mask`` (N,) or (N, D) shaped to broadcast against ``like`` (N, ...) or (N, D, ...)."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def run_events(engine: EventEngine, state: SimState, data: PeerData,
               graph_of: Callable[[int], RoundGraph], time: TimeModel,
               options: EventOptions, msg_bytes: int, train_key: jax.Array,
               churn: Churn | None = None) -> Iterator[EventReport]:
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
        churn: when peers leave and come back (None: never).

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
                   delay, churn if churn is not None and churn.active else None)


def _valid_slots(graph: RoundGraph) -> np.ndarray:
    nbr = np.asarray(graph.neighbours)
    return (nbr != np.arange(nbr.shape[0])[:, None]) & (np.asarray(graph.weights) > 0)


def _sync(engine: EventEngine, state: SimState, data: PeerData,
          graph_of: Callable[[int], RoundGraph], time: TimeModel, options: EventOptions,
          train_key: jax.Array, steps: np.ndarray, period: np.ndarray, delay: float,
          churn: Churn | None) -> Iterator[EventReport]:
    n = len(period)
    start = np.zeros(n)
    done_steps = np.zeros(n, np.int64)
    done_rounds = np.zeros(n, np.int64)  # rounds taken part in, or caught up to
    present = np.ones(n, bool)
    left_at = np.zeros(n)  # when a peer that is away now was last heard
    last_loss = jnp.zeros(n, jnp.float32)
    stats = collections.Counter()
    steps_dev = jnp.asarray(steps, jnp.int32)
    active_dev = jnp.ones(n, bool)
    for t in range(options.rounds):
        graph = graph_of(t)
        nbr = np.asarray(graph.neighbours)
        valid = _valid_slots(graph)
        weights = np.asarray(graph.weights, np.float32)
        ready = start + period
        if churn is not None:
            was = present
            present = _present(churn, start, ready, left_at)
            stats["departures"] += int((was & ~present).sum())
            back = ~was & present
            stats["rejoins"] += int(back.sum())
            if back.any():
                state = _catch_up_sync(engine, state, np.flatnonzero(back), nbr,
                                       valid & present[nbr], done_rounds,
                                       options.catchup_after, stats)
            active_dev = jnp.asarray(present)
        gone = valid & ~present[nbr]  # the sender is away: no message
        arrival = ready[nbr] + delay
        lost = valid & (time.drops(t).random(valid.shape) < time.drop) & ~gone
        deadline = ready + options.round_deadline
        late = valid & ~lost & ~gone & (arrival > deadline[:, None] + _EPS)
        ok = valid & ~lost & ~late & ~gone
        waited = np.where(ok, arrival, -np.inf).max(axis=1, initial=-np.inf)
        end = np.maximum(ready, waited)
        end = np.where((valid & ~ok & ~gone).any(axis=1), np.maximum(end, deadline), end)
        # An away neighbour is waited for until the liveness timeout after it was last heard
        # (or the deadline, if sooner).
        give_up = np.minimum(deadline[:, None], left_at[nbr] + options.heartbeat_timeout)
        end = np.maximum(end, np.where(gone, give_up, -np.inf).max(axis=1, initial=-np.inf))
        if not present.all():
            end = _away_ends(end, start, present, nbr, valid)
        round_graph = RoundGraph(jnp.asarray(nbr), jnp.asarray(np.where(ok, weights, 0)),
                                 jnp.asarray(graph.self_weight))
        state, loss = engine.round(state, data, round_graph, steps_dev, active_dev, train_key)
        start = end
        done_steps += np.where(present, steps, 0)
        done_rounds += present
        last_loss = jnp.where(active_dev, loss, last_loss)
        stats.update(messages_sent=int((valid & ~gone).sum()),
                     messages_lost=int(lost.sum()), messages_late=int(late.sum()))
        if (t + 1) % options.eval_every == 0 or t + 1 == options.rounds:
            yield EventReport(t + 1, state, np.asarray(jax.device_get(last_loss)),
                              _stats(float(end[present].max(initial=end.min())), done_steps,
                                     stats, []))


def _present(churn: Churn, start: np.ndarray, ready: np.ndarray, left_at: np.ndarray
             ) -> np.ndarray:
    """(N,) whether each peer is there for all of its round's work (sets ``left_at``)."""
    present = np.ones(len(start), bool)
    for i in range(len(start)):
        hit = churn.overlap(i, start[i], ready[i])
        if hit is not None:
            present[i] = False
            left_at[i] = hit[0]
    return present


def _away_ends(end: np.ndarray, start: np.ndarray, present: np.ndarray, nbr: np.ndarray,
               valid: np.ndarray) -> np.ndarray:
    """An away peer's round "ends" when its present in-neighbours' does (the latest), so it
    comes back at a round boundary of its neighbourhood; with none present, the latest of
    all present peers (none at all: its own start)."""
    there = valid & present[nbr]
    nbr_end = np.where(there, end[nbr], -np.inf).max(axis=1, initial=-np.inf)
    fallback = end[present].max() if present.any() else start
    away_end = np.where(np.isfinite(nbr_end), nbr_end, fallback)
    return np.where(present, end, np.maximum(away_end, start))


def _freshest(i: int, nbr: np.ndarray, there: np.ndarray, rounds: np.ndarray) -> int | None:
    """Peer i's present in-neighbour with the most rounds (the lowest id on a tie)."""
    cands = sorted({int(j) for j in nbr[i][there[i]] if j != i}, key=lambda j: (-rounds[j], j))
    return cands[0] if cands else None


def _catch_up_sync(engine: EventEngine, state: SimState, back: np.ndarray, nbr: np.ndarray,
                   there: np.ndarray, rounds: np.ndarray, catchup_after: int,
                   stats: collections.Counter) -> SimState:
    """Returning peers ``catchup_after`` rounds or more behind their freshest present
    in-neighbour adopt its parameters and round (``rounds`` is updated)."""
    n = len(rounds)
    src, mask = np.arange(n), np.zeros(n, bool)
    before = rounds.copy()
    for i in back:
        j = _freshest(i, nbr, there, before)
        if j is not None and before[j] - before[i] >= catchup_after:
            src[i], mask[i], rounds[i] = j, True, before[j]
    if mask.any():
        stats["catch_ups"] += int(mask.sum())
        state = engine.adopt(state, jnp.asarray(src, jnp.int32), jnp.asarray(mask))
    return state


def _stats(time_s: float, done_steps: np.ndarray, counts: collections.Counter,
           staleness: list[int]) -> dict[str, float]:
    return {"time_s": round(time_s, 6), "steps_min": int(done_steps.min()),
            "steps_max": int(done_steps.max()), "steps_mean": float(done_steps.mean()),
            "messages_sent": int(counts["messages_sent"]),
            "messages_lost": int(counts["messages_lost"]),
            "messages_late": int(counts["messages_late"]),
            "messages_stale": int(counts["messages_stale"]),
            "staleness_mean": float(np.mean(staleness)) if staleness else 0.0,
            "staleness_max": int(max(staleness)) if staleness else 0,
            "departures": int(counts["departures"]), "rejoins": int(counts["rejoins"]),
            "catch_ups": int(counts["catch_ups"])}


def _pad(size: int, n: int) -> int:
    return min(max(_MIN_BATCH, 1 << (size - 1).bit_length()), max(n, 1 << (n - 1).bit_length()))


def _async(engine: EventEngine, state: SimState, data: PeerData,
           graph_of: Callable[[int], RoundGraph], time: TimeModel, options: EventOptions,
           train_key: jax.Array, steps: np.ndarray, period: np.ndarray, delay: float,
           churn: Churn | None) -> Iterator[EventReport]:
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
    losses: list[tuple[np.ndarray, np.ndarray, jax.Array]] = []
    stats: collections.Counter = collections.Counter()
    staleness: list[int] = []
    bucket = options.time_bucket or delay
    drops = time.drops(0)
    target, reported = n * options.rounds, 0
    now = 0.0
    work_start = np.zeros(n)  # when each peer's current work began
    rejoin_at = np.full(n, np.inf)  # when an away peer comes back (inf: not away)
    while int(count.sum()) < target:
        if churn is not None:
            state = _churn_async(engine, state, churn, work_start, next_t, rejoin_at, period,
                                 bucket, nbr, valid, count, options.catchup_after, stats)
        t0 = float(next_t.min())
        batch = np.flatnonzero(next_t <= t0 + max(bucket, _EPS) - (_EPS if bucket else 0))
        batch = batch[np.lexsort((batch, next_t[batch]))]
        # A big bucket runs every peer's row with a mask (no gather/scatter of the state);
        # a small one gathers its peers into a padded batch (powers of two: few compiles).
        full = 2 * len(batch) > n or _pad(len(batch), n) >= n
        size = n if full else _pad(len(batch), n)
        rows = batch if full else np.arange(len(batch))
        src = np.zeros((size, k), np.int64)
        slot = np.zeros((size, k), np.int64)
        w = np.zeros((size, k), np.float32)
        for b, i in zip(rows, batch, strict=True):
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
        idx = np.full(size, n, np.int64)  # n: padding, or a peer that does not tick
        idx[rows] = batch
        sw = np.ones(size, np.float32)
        sw[rows] = self_w[batch]
        st = np.ones(size, np.int32)
        st[rows] = steps[batch]
        rounds = np.zeros(size, np.int32)
        rounds[rows] = count[batch]
        write = np.zeros(size, np.int64)
        write[rows] = count[batch] % depth
        state, hist, loss = engine.tick(
            state, hist, data, jnp.asarray(idx, jnp.int32), jnp.asarray(rounds),
            jnp.asarray(st), jnp.asarray(src, jnp.int32), jnp.asarray(slot, jnp.int32),
            jnp.asarray(w), jnp.asarray(sw), jnp.asarray(write, jnp.int32), train_key,
            full=full)
        # Read at the next report: reading it here would wait for every tick.
        losses.append((batch, rows, loss))
        now = float(next_t[batch].max())
        count[batch] += 1
        done_steps[batch] += steps[batch]
        work_start[batch] = next_t[batch]
        next_t[batch] += period[batch]
        progress = int(count.sum()) // n
        if (progress // options.eval_every > reported // options.eval_every
                or int(count.sum()) >= target):
            reported = progress
            for ids, at, loss in losses:
                last_loss[ids] = np.asarray(jax.device_get(loss))[at]
            losses = []
            yield EventReport(min(progress, options.rounds), state, last_loss.copy(),
                              _stats(now, done_steps, stats, staleness))
            staleness = []


def _churn_async(engine: EventEngine, state: SimState, churn: Churn, work_start: np.ndarray,
                 next_t: np.ndarray, rejoin_at: np.ndarray, period: np.ndarray, bucket: float,
                 nbr: np.ndarray, valid: np.ndarray, count: np.ndarray, catchup_after: int,
                 stats: collections.Counter) -> SimState:
    """Async churn before the next bucket: a peer away during its current work loses that
    work and starts again when it is back (``next_t``, ``work_start``, ``rejoin_at`` are
    updated); the returning peers due before the next bucket rejoin (and maybe catch up)."""
    while True:
        t0 = float(next_t.min())
        moved = False
        for i in np.flatnonzero(next_t <= t0 + max(bucket, _EPS)):
            hit = churn.overlap(int(i), work_start[i], next_t[i])
            while hit is not None:
                stats["departures"] += 1
                if np.isfinite(rejoin_at[i]):  # came back and left again, idle in between
                    stats["rejoins"] += 1
                rejoin_at[i], work_start[i] = hit[1], hit[1]
                next_t[i] = hit[1] + period[i]
                hit = churn.overlap(int(i), work_start[i], next_t[i])
                moved = True
        if not moved:
            break
    due = np.flatnonzero(rejoin_at <= next_t.min())
    if len(due) == 0:
        return state
    due = due[np.argsort(rejoin_at[due], kind="stable")]
    stats["rejoins"] += len(due)
    there = np.zeros_like(valid)  # the in-links of the returning peers from present peers
    there[due] = valid[due] & np.array([[not churn.away(int(j), rejoin_at[i]) for j in row]
                                        for i, row in zip(due, nbr[due], strict=True)])
    rejoin_at[due] = np.inf
    return _catch_up_sync(engine, state, due, nbr, there, count, catchup_after, stats)
