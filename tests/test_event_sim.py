"""The event simulator (gossip sim --engine event): parity with the round simulator, the
clock of sync, time-budgeted and async runs, exact async push-sum under drops, bad input."""

import jax
import numpy as np
import pytest
from sim_utils import assert_sim_refuses, averaging

from gossip.config import resolve
from gossip.experiment import build_experiment
from gossip.sim.events import EventOptions, budget_steps, run_events
from gossip.sim.timing import STRAGGLER_RANGE, TimeModel, peer_speeds
from gossip.simulate import simulate

LEAST_SQUARES = dict(dataset="least_squares", model="linear", batch_size=0, lr=0.1,
                     optimizer="sgd", peers=8, topology="ring",
                     dataset_options={"peers": 8, "rows_per_peer": 20, "dim": 5,
                                      "heterogeneity": 0.1})


def _run(**overrides):
    config = resolve({}, {**LEAST_SQUARES, **overrides})
    return simulate(build_experiment(config), progress=False)


@pytest.mark.parametrize("rule", ["dpsgd", "push_sum"])
def test_sync_with_zero_delay_and_equal_speeds_gives_the_round_simulators_parameters(rule):
    _, expected = _run(rule=rule, rounds=30, eval_every=30)
    record, params = _run(rule=rule, rounds=30, eval_every=30, engine="event",
                          step_time=0.01)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert record["time_s"] == pytest.approx(30 * 0.01)
    assert record["steps_min"] == record["steps_max"] == 30


def test_async_least_squares_ends_within_syncs_distance_to_the_optimum():
    common = dict(rule="push_sum", rounds=200, eval_every=200, engine="event",
                  step_time=0.01, latency=0.003)
    sync, _ = _run(**common)
    run_async, _ = _run(**common, mode="async")
    lossy, _ = _run(**common, mode="async", drop=0.2)
    # The bound test_cli_sim holds D-PSGD to on this problem; sync ends at 0.004, async
    # (each message mixed one step late) at 0.0055, async with 20 % lost at 0.0072.
    for record in (sync, run_async, lossy):
        assert record["opt_distance"] < 0.01, record
    assert lossy["messages_lost"] > 0.15 * lossy["messages_sent"]
    assert run_async["staleness_max"] >= 1


def test_sync_time_follows_the_slow_peer_and_budgets_fill_it():
    # Ring of 8, one peer 4x slower, 2 ms per message: the slow peer sets the pace (40 ms a
    # round), and its neighbours end each round 2 ms after it.
    common = dict(rule="dpsgd", rounds=10, eval_every=10, engine="event", step_time=0.01,
                  slow_peers=1, slowdown=4.0, latency=0.002)
    sync, _ = _run(**common)
    assert sync["time_s"] == pytest.approx(10 * 0.04 + 0.002)
    assert sync["steps_min"] == sync["steps_max"] == 10
    # Time-budgeted, 40 ms: the fast peers fit 4 steps, the slow one 1; every peer's work
    # now ends together, so each round also waits the 2 ms of its neighbours' messages.
    budget, _ = _run(**common, local_time=0.04)
    assert budget["time_s"] == pytest.approx(10 * (0.04 + 0.002))
    assert (budget["steps_min"], budget["steps_max"]) == (10, 40)


def test_async_fast_peers_outrun_a_slow_one():
    common = dict(rule="push_sum", rounds=40, eval_every=20, engine="event",
                  step_time=0.01, slow_peers=1, slowdown=4.0, latency=0.002)
    sync, _ = _run(**common)
    run_async, _ = _run(**common, mode="async")
    # The same total work (8 x 40 rounds): the slow peer does a quarter of a fast one's.
    assert run_async["steps_max"] >= 3.5 * run_async["steps_min"]
    assert run_async["time_s"] < 0.5 * sync["time_s"]
    assert run_async["staleness_max"] > 4 and run_async["staleness_mean"] > 0
    bounded, _ = _run(**common, mode="async", max_staleness=4)
    assert bounded["messages_stale"] > 0 and bounded["staleness_max"] <= 4


def test_async_push_sum_without_training_is_exact_under_drops_and_delays():
    n = 8
    engine, state, data, graph, want, scale = averaging(n, seed=3)
    clock = TimeModel(0.01, peer_speeds(n, 0, slow_peers=2, slowdown=3.0, stragglers=0.5),
                      latency=0.004, drop=0.3, seed=0)
    reports = list(run_events(engine, state, data, lambda t: graph, clock,
                              EventOptions("async", rounds=250, eval_every=250), 64,
                              jax.random.key(0)))
    final = reports[-1]
    assert final.stats["messages_lost"] > 0.2 * final.stats["messages_sent"]
    got = np.asarray(final.state.params["x"])  # (the engine donated x0's buffers)
    assert np.abs(got - want).max() < 1e-5 * scale


def test_peer_speeds_and_link_delay():
    speed = peer_speeds(16, seed=1, slow_peers=2, slowdown=4.0, stragglers=0.25)
    assert np.array_equal(speed, peer_speeds(16, seed=1, slow_peers=2, slowdown=4.0,
                                             stragglers=0.25))
    assert (speed == 4.0).sum() == 2
    others = speed[(speed != 4.0) & (speed != 1.0)]
    assert len(others) == round(0.25 * 14)
    assert ((others >= STRAGGLER_RANGE[0]) & (others <= STRAGGLER_RANGE[1])).all()
    clock = TimeModel(0.01, speed, latency=0.001, bandwidth=8.0)  # 8 Mbit/s: 1 MB/s
    assert clock.delay(1_000_000) == pytest.approx(1.001)
    assert list(budget_steps(np.array([0.01, 0.04, 0.05]), 0.04, 100)) == [4, 1, 1]


def test_running_sums_keep_a_deadline_run_finite_but_a_straggler_never_on_time_delivers_none():
    # A 4x straggler whose messages always miss the half-step deadline: plain push-sum loses
    # their mass every round, the others' weights drain and SGP's update diverges. Running
    # sums keep the run finite (the update enters the numerator scaled by the weight), but
    # what the straggler pushes never arrives: none of its messages is ever on time, so the
    # live mass drains all the same (``mass``, of 8).
    common = dict(rule="push_sum", rounds=120, eval_every=40, engine="event",
                  step_time=0.01, round_deadline=0.005, slow_peers=1, slowdown=4.0, seed=1)
    plain, _ = _run(**common)
    running, _ = _run(**common, running_sums=True)
    assert plain["messages_late"] == running["messages_late"] == 240
    assert not plain["opt_distance"] < 1 and plain["peers_finite"] < 8  # diverged (NaN)
    assert running["opt_distance"] < 0.05 and running["peers_finite"] == 8
    assert running["mass"] < 0.1


def test_running_sums_bring_a_lost_messages_mass_with_the_next_one():
    # Lost messages (20 %), no straggler: each lost share comes with the sender's next message
    # that arrives. What is missing at a record is in flight on the links whose last
    # messages were lost (seed 1: between 5.8 and 7.7 of 8 at every 20th round up to 240,
    # no drain); plain push-sum loses it for good.
    common = dict(rule="push_sum", rounds=120, eval_every=120, engine="event",
                  step_time=0.01, drop=0.2, seed=1)
    plain, _ = _run(**common)
    running, _ = _run(**common, running_sums=True)
    assert plain["messages_lost"] == running["messages_lost"] > 0.15 * running["messages_sent"]
    assert plain["mass"] < 1e-3
    assert 5.0 < running["mass"] <= 8 + 1e-4 and running["opt_distance"] < 0.02


@pytest.mark.parametrize(("argv", "names"), [
    (["--engine", "event", "--mode", "async", "--rule", "dpsgd"],
     ["rule 'dpsgd' has no asynchronous mode", "push_sum"]),
    (["--engine", "event", "--mode", "async", "--rule", "push_sum", "--topology",
      "one_peer_exponential"], ["static topology"]),
    (["--mode", "async", "--rule", "push_sum"], ["--mode", "--engine event"]),
    (["--engine", "event", "--slowdown", "0.5"], ["slowdown must be >= 1", "0.5"]),
    (["--engine", "event", "--drop", "1"], ["drop must be a probability in [0, 1)"]),
    (["--engine", "event", "--drop", "-0.1"], ["drop must be a probability in [0, 1)"]),
    (["--engine", "event", "--local-time", "0"], ["--local-time must be > 0"]),
    (["--engine", "event", "--local-time", "-1"], ["--local-time must be > 0"]),
    (["--engine", "evnt"], ["unknown engine 'evnt'"]),
    (["--engine", "event", "--byzantine", "1", "--attack", "sign_flip"],
     ["event simulator has no attackers"]),
    (["--engine", "event", "--slow-peers", "5"], ["slow_peers (5) must be at most peers"]),
    (["--running-sums", "--rule", "dpsgd"], ["rule 'dpsgd' has no running-sum form",
                                             "--running-sums", "push_sum"]),
    (["--running-sums", "--rule", "push_sum", "--topology", "one_peer_exponential"],
     ["--running-sums needs a static topology"]),
])
def test_bad_input_gets_one_clear_line_exit_2(tmp_path, capsys, argv, names):
    assert_sim_refuses(tmp_path / "run", capsys, argv, names)
