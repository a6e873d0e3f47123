"""Running-sum push-sum (gossip.rules.running_sum): exact averaging under asynchrony, random
delays, drops and stale messages, with no training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gossip.round import PeerState, Shard, make_peer_round
from gossip.rules import ASYNC_RULES, make_rule, running_push_sum
from gossip.rules.running_sum import MIN_PUSH_WEIGHT, two_sum
from gossip.sim.simulator import gather
from gossip.topology import make_topology


def _async_gossip(n: int, ticks: int, drop: float, max_delay: int, seed: int,
                  flush: int = 0):
    """Asynchronous gossip driven tick by tick: each tick a random subset of peers mixes the
    newest message that has arrived on each in-link (if newer than the last taken in), then
    pushes its own, which reaches each out-neighbour after 1..max_delay ticks, or never
    (``drop``). The last ``flush`` ticks drop nothing.

    Returns:
        ``(params (n, 3), rule state, initial params, in-flight mass per tick)``.
    """
    topology = make_topology("exponential", n, weights="push")
    graph = topology.round_graph(0)
    nbr, w, self_w = (np.asarray(a) for a in graph)
    k = nbr.shape[1]
    rule = running_push_sum(1, slots=k)
    rng = np.random.default_rng(seed)
    x0 = jnp.asarray(rng.normal(size=(n, 3)).astype(np.float32) * 10)
    params, state = x0, jax.vmap(rule.init)(x0)
    message = jax.jit(jax.vmap(rule.message))
    mix = jax.jit(jax.vmap(rule.mix))
    history: list[list] = [[] for _ in range(n)]  # history[j][v]: j's v-th message (numpy)
    arrival = [dict() for _ in range(n)]  # arrival[i][(slot, v)] = tick it arrives
    taken = np.full((n, k), -1)
    in_flight = []
    for tick in range(ticks):
        fire = rng.random(n) < 0.5
        # As the round orders it: a firing peer pushes its message (the running sums that
        # its mix below commits), which reaches each out-neighbour after 1..max_delay ticks,
        # or never (``drop``); then it mixes the newest message that has arrived on each
        # in-link, if newer than the last it took in.
        own = jax.device_get(message(params, state))
        for j in np.flatnonzero(fire):
            history[j].append(jax.tree.map(lambda a, j=j: a[j], own))
            v = len(history[j]) - 1
            for i, s in zip(*np.nonzero(nbr == j), strict=True):
                lost = tick < ticks - flush and rng.random() < drop
                if nbr[i, s] != i and not lost:
                    arrival[i][(s, v)] = tick + 1 + rng.integers(max_delay)
        slot_payloads, slot_w = [], np.zeros((n, k), np.float32)
        for i in range(n):
            row = []
            for s in range(k):
                j = nbr[i, s]
                arrived = [v for (ss, v), t in arrival[i].items() if ss == s and t <= tick]
                v = max(arrived, default=-1)
                if fire[i] and v > taken[i, s]:
                    row.append(history[j][v])
                    slot_w[i, s] = w[i, s]
                    taken[i, s] = v
                else:
                    row.append(jax.tree.map(lambda a, j=j: a[j], own))
            slot_payloads.append(jax.tree.map(lambda *a: np.stack(a), *row))
        payloads = jax.tree.map(lambda *a: jnp.asarray(np.stack(a)), *slot_payloads)
        mixed = mix(params, state, payloads, jnp.asarray(slot_w), jnp.asarray(self_w))
        params, state = _where_peers(jnp.asarray(fire), mixed, (params, state))
        # Mass not yet taken in: a_ij (σ_j(newest sent) − ρ_ij) over every link.
        seen = np.asarray(state.seen_weight).sum(2)
        sent_now = np.asarray(state.sent_weight).sum(1)
        flight = sum(w[i, s] * (sent_now[nbr[i, s]] - seen[i, s])
                     for i in range(n) for s in range(k) if nbr[i, s] != i)
        in_flight.append((float(np.asarray(state.weight).sum()), float(flight)))
    return params, state, x0, in_flight


def _where_peers(mask, new, old):
    return jax.tree.map(
        lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b), new, old)


@pytest.mark.parametrize("drop", [0.0, 0.3])
def test_async_running_sum_is_exact_under_delays_and_drops(drop):
    n = 8
    params, state, x0, mass = _async_gossip(n, ticks=260, drop=drop, max_delay=4, seed=1,
                                            flush=60)
    # The total mass, in the peers plus in flight, is n at every tick.
    for held, flight in mass:
        assert held + flight == pytest.approx(n, abs=1e-4)
    # And every peer ends at the exact average (drops lose nothing).
    np.testing.assert_allclose(np.asarray(params), np.broadcast_to(x0.mean(0), (n, 3)),
                               atol=1e-5 * 10)
    spread = np.abs(np.asarray(params) - np.asarray(x0.mean(0))).max()
    assert spread < 1e-5 * float(jnp.abs(x0).max())


def test_plain_push_sum_loses_mass_where_running_sums_do_not():
    # One message lost: plain push-sum's total mass drops, running-sum push-sum's does not.
    own = {"x": jnp.array([2.0])}
    for rule, from_b in ((make_rule("push_sum"), 0.5), (running_push_sum(1, 1), 1.5)):
        a, b = rule.init(own), rule.init(own)
        msg = rule.message(own, a)
        payloads = jax.tree.map(lambda m: m[None], msg)
        # Round 1: b's message to a is lost (weight 0); a keeps half its mass, b too.
        _, a1 = rule.mix(own, a, payloads, jnp.array([0.0]), jnp.array(0.5))
        _, b1 = rule.mix(own, b, payloads, jnp.array([0.0]), jnp.array(0.5))
        # Round 2: b's next message arrives at a.
        msg2 = rule.message(own, b1)
        _, a2 = rule.mix(own, a1, jax.tree.map(lambda m: m[None], msg2), jnp.array([0.5]),
                         jnp.array(0.5))
        # a's mass: half its own, plus half of what b pushed: plain push-sum only round 2's
        # mass (0.5), running sums rounds 1 and 2 (1 + 0.5).
        assert float(a2.weight) == pytest.approx(0.25 + 0.5 * from_b)


def test_two_sum_is_exact():
    a, b = jnp.float32(1e8), jnp.float32(3.14159)
    s, e = two_sum(a, b)
    assert float(s) != 1e8 + 3.14159  # float32 rounded the sum ...
    assert float(s) + float(e) == pytest.approx(1e8 + float(b), abs=1e-6)  # ... e keeps it


def test_running_sums_keep_the_mass_exact_over_many_rounds():
    # Synchronous gossip on a ring, 2000 rounds: the compensated running sums end as close to
    # the average as plain push-sum (the mixing's own rounding, ~12 float32 ulps of 2500);
    # uncompensated float32 running sums drift by ~0.4 there.
    g = make_topology("ring", 6, weights="push").round_graph(0)
    x0 = jnp.arange(6.0)[:, None] * 1000.0 + 0.125

    def error(rule):
        def one(carry, _):
            p, s = carry
            payloads = gather(jax.vmap(rule.message)(p, s), jnp.asarray(g.neighbours))
            return jax.vmap(rule.mix)(p, s, payloads, jnp.asarray(g.weights),
                                      jnp.asarray(g.self_weight)), None

        (params, state), _ = jax.lax.scan(one, (x0, jax.vmap(rule.init)(x0)), None,
                                          length=2000)
        assert float(state.weight.sum()) == pytest.approx(6.0, abs=1e-5)
        return float(jnp.abs(params - x0.mean()).max())

    plain = error(make_rule("push_sum"))
    assert error(running_push_sum(1, slots=2)) <= max(2 * plain, 1e-3)


def test_round_does_not_keep_back_an_undelivered_share():
    rule = running_push_sum(1, slots=1)
    local = lambda p, o, x, y, size, key: (p, o, jnp.zeros(()))  # noqa: E731
    peer_round = make_peer_round(rule, local)
    params = {"x": jnp.ones(2)}
    state = PeerState(params, (), rule.init(params))
    shard = Shard(jnp.zeros((1, 1)), jnp.zeros((1,)), jnp.ones((), jnp.int32))
    msg, pending, _ = peer_round.begin(state, shard, jax.random.key(0))
    payloads = jax.tree.map(lambda m: m[None], msg)
    out = peer_round.finish(pending, payloads, jnp.array([0.0]), jnp.array(0.5),
                            jnp.array(0.5))
    # Plain push-sum would keep 1.0; the running sums carry the share in the next message.
    assert float(out.rule_state.weight) == pytest.approx(0.5)
    assert ASYNC_RULES["push_sum"] is running_push_sum


def test_a_peer_that_hears_nothing_stops_pushing_before_its_weight_underflows():
    # Peer 0 pushes half its mass to peer 1 every tick and hears nothing back (its
    # in-neighbour is away): its weight halves until it is below MIN_PUSH_WEIGHT, then it
    # keeps it. Its parameters stay exact, and the mass (its own plus the running sums peer 1
    # has or will take in) stays 1.
    rule = running_push_sum(1, slots=1)
    x = {"w": jnp.array([3.0, -2.0])}
    state = rule.init(x)
    none = jax.tree.map(lambda a: jnp.zeros((1, *a.shape)), rule.message(x, state))
    mix = jax.jit(lambda p, s: rule.mix(p, s, none, jnp.zeros(1), jnp.asarray(0.5)))
    weights = []
    for _ in range(200):
        x, state = mix(x, state)
        weights.append(float(state.weight))
    pushed = float(state.sent_weight.sum())
    assert MIN_PUSH_WEIGHT / 2 <= weights[-1] < MIN_PUSH_WEIGHT
    assert weights[-1] == weights[-100] and weights[-1] > np.finfo(np.float32).tiny
    assert weights[-1] + 0.5 * pushed == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(np.asarray(x["w"]), [3.0, -2.0])
    # Whatever its weight, a local update moves its parameters by exactly the update.
    moved, _ = rule.adapt(x, state, {"w": jnp.array([0.5, 0.25])})
    np.testing.assert_array_equal(np.asarray(moved["w"]), [3.5, -1.75])


def test_absorbing_the_last_messages_pushes_nothing():
    # A peer that has sent its last message takes in its neighbours' (``absorb``: self weight
    # 1): its running sums stay those of the last message, so a checkpoint made after it
    # holds what the neighbours took in, and the mass it took stays with it.
    rule = running_push_sum(1, slots=1)
    local = lambda p, o, x, y, size, key: (p, o, jnp.zeros(()))  # noqa: E731
    peer_round = make_peer_round(rule, local)
    params = {"x": jnp.array([2.0, -1.0])}
    state = PeerState(params, (), rule.init(params))
    neighbour = rule.init({"x": jnp.array([4.0, 1.0])})
    last = rule.message({"x": jnp.array([4.0, 1.0])}, neighbour)  # its running sums: (z, 1)
    payloads = jax.tree.map(lambda m: m[None], last)
    out = peer_round.absorb(state, payloads, jnp.array([0.5]))
    for a, b in zip(jax.tree.leaves(out.rule_state.sent), jax.tree.leaves(state.rule_state.sent),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(out.rule_state.sent_weight, state.rule_state.sent_weight)
    assert float(out.rule_state.weight) == pytest.approx(1.5)  # 1 kept + 0.5 taken in
    np.testing.assert_allclose(out.params["x"], [(2.0 + 0.5 * 4.0) / 1.5, (-1.0 + 0.5) / 1.5])
