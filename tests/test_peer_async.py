"""Asynchronous and time-budgeted real peers (``--mode async``, ``--local-time``).

One ``gossip launch --local 8`` in async mode, shared by the assertions on it (a ring, one
peer 4x slower); a time-budgeted run of three peers in threads; the local-step budget
against the event simulator's; bad input.
"""

import contextlib
import json
import os
import signal
import subprocess

import numpy as np
import pytest
from peer_utils import (
    FAST,
    gossip_cmd,
    processes_mentioning,
    records,
    run_in_threads,
    started,
    wait_for,
)

from gossip.cli import main
from gossip.config import resolve
from gossip.launch.local import free_ports
from gossip.launch.peer_task import build_peer_task, peer_speed, run_digest
from gossip.peer.asynchronous import AsyncPeer
from gossip.peer.runtime import Peer, PeerOptions, budget_steps
from gossip.sim.events import budget_steps as event_budget_steps

N, ROUNDS, SLOWDOWN = 8, 24, 4.0
ASYNC = ["--rule", "push_sum", "--mode", "async", "--topology", "ring", "--rounds", str(ROUNDS),
         "--slow-peers", "1", "--slowdown", str(SLOWDOWN), "--step-time", "0.08", "--seed", "3"]


@pytest.fixture(scope="module")
def async_run(tmp_path_factory):
    """``gossip launch --local 8 --mode async``, one peer 4x slower: its output directory."""
    out = tmp_path_factory.mktemp("async")
    cmd = gossip_cmd("launch", "--local", str(N), "--out", str(out / "run"), "--no-progress",
                     "--no-plot", *FAST, *ASYNC)
    with started(cmd, out / "launch.log") as launcher:
        code = launcher.wait(timeout=240)
    assert code == 0, (out / "launch.log").read_text()[-3000:]
    assert processes_mentioning(str(out / "run")) == []
    return out / "run"


def _peers(run):
    return {i: records(run / f"peer-{i:04d}.jsonl") for i in range(N)}


def test_async_fast_peers_do_at_least_twice_the_slow_peers_steps(async_run):
    config = resolve({}, {"peers": N, "slow_peers": 1, "slowdown": SLOWDOWN, "seed": 3})
    slow = [i for i in range(N) if peer_speed(config, i) > 1]
    assert len(slow) == 1
    last = {i: rs[-1] for i, rs in _peers(async_run).items()}
    steps = {i: r["step"] for i, r in last.items()}
    for i in set(range(N)) - set(slow):
        assert steps[i] >= 2 * steps[slow[0]], steps
    # Every peer's run ends with its accuracy reported, finite parameters, nothing lost.
    for r in last.values():
        assert r["final"] is True and 0 <= r["local_acc"] <= 1 and r["params_finite"]
        assert r["final_missing"] == r["final_unsent"] == r["messages_rejected"] == 0
    summary = json.loads((async_run / "metrics.jsonl").read_text())
    assert summary["peers_finished"] == N and 0 <= summary["avg_model_acc"] <= 1


def test_async_peers_keep_the_total_push_sum_mass(async_run):
    # The push-sum weights do not depend on the training: their sum is N when every peer
    # took in its in-neighbours' last running sums, training or not.
    last = [rs[-1] for rs in _peers(async_run).values()]
    assert sum(r["mass"] for r in last) == pytest.approx(N, abs=1e-4)
    assert all(r["mass"] > 0 for r in last)


def test_async_records_say_what_was_mixed_and_when(async_run):
    for rs in _peers(async_run).values():
        rounds = [r for r in rs if not r.get("final")]
        assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1))
        assert all(r["staleness_max"] >= r["staleness_mean"] >= 0 for r in rounds)
        assert all(r["messages_mixed"] <= 2 for r in rounds)  # a ring: two in-neighbours
        times = [r["time"] for r in rs]
        assert times == sorted(times)
        assert rs[-1]["messages_stale"] == 0  # no --max-staleness: any age is mixed
    assert sum(r["messages_mixed"] for rs in _peers(async_run).values() for r in rs) > 0


def test_time_budgeted_real_peers_run_more_steps_on_the_fast_ones(tmp_path):
    # Two peers in threads, 0.02 s a step, 0.08 s of local work a round; the slowed peer
    # (4x) fits one step, the other four. The same count as the event simulator's.
    config = resolve({}, {"peers": 2, "rounds": 2, "eval_every": 2, "slow_peers": 1,
                          "slowdown": 4.0, "step_time": 0.02, "local_time": 0.08,
                          "model_options": {"hidden": [16]}, "round_deadline": 30.0})
    addresses = [f"tcp://127.0.0.1:{p}" for p in free_ports(2)]
    peers = [Peer(build_peer_task(config, i), PeerOptions(
        addresses, tmp_path, run_digest=run_digest(config), step_time=0.02, local_time=0.08,
        speed=peer_speed(config, i))) for i in range(2)]
    results = run_in_threads(peers, timeout=180)
    speeds = np.array([peer_speed(config, i) for i in range(2)])
    expected = event_budget_steps(0.02 * speeds, 0.08, 4096)
    assert sorted(expected) == [1, 4]
    assert [p.h for p in peers] == list(expected)
    assert [results[i]["step"] for i in range(2)] == [2 * int(h) for h in expected]


def test_the_step_budget_is_the_event_simulators():
    for step_s, local_time in [(0.01, 0.04), (0.04, 0.04), (0.05, 0.04), (0.003, 0.1),
                               (1e-6, 1.0)]:
        assert budget_steps(step_s, local_time) == int(
            event_budget_steps(np.array([step_s]), local_time, 4096)[0])


@pytest.mark.parametrize(("argv", "names"), [
    (["--mode", "async", "--rule", "dpsgd"], ["rule 'dpsgd' has no asynchronous mode"]),
    (["--mode", "async", "--rule", "push_sum", "--topology", "one_peer_exponential"],
     ["static topology"]),
    (["--mode", "asinc"], ["unknown mode 'asinc'"]),
    (["--local-time", "0"], ["--local-time must be > 0"]),
    (["--local-time", "-0.5"], ["--local-time must be > 0"]),
    (["--max-staleness", "-1"], ["max_staleness"]),
])
def test_bad_input_on_real_peers_is_one_line_exit_2(tmp_path, capsys, argv, names):
    out = tmp_path / "run"
    assert main(["launch", "--local", "3", "--no-progress", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gossip: error: "), err
    for name in names:
        assert name in err, err
    assert not out.exists()


def test_gossip_peer_refuses_async_with_a_rule_that_has_no_async_mode(tmp_path):
    run = subprocess.run(gossip_cmd("peer", "--id", "0", "--peers",
                                    "tcp://127.0.0.1:1,tcp://127.0.0.1:2", "--out",
                                    str(tmp_path / "x"), "--mode", "async", "--rule", "dpsgd"),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip() == ("gossip: error: rule 'dpsgd' has no asynchronous mode; "
                                  "--mode async works with rule push_sum (and no --compress "
                                  "or --outer-optimizer)")


def test_an_async_peer_killed_mid_run_resumes_and_the_mass_stays_exact(tmp_path):
    # Three async peers (every one the others' neighbour), checkpoints every 5 rounds; peer
    # 1 is killed after round 6 and restarted with --resume. Its checkpoint holds its running
    # sums, and the others send it their last message again once it is back, so the peers'
    # weights still sum to 3 at the end, and every peer exits 0. While peer 1 is down the
    # others' weights shrink (their pushes to it wait in their running sums); they train on
    # with finite parameters (SGP's update, divided by the weight, diverged here).
    out = tmp_path / "run"
    addresses = ",".join(f"tcp://127.0.0.1:{p}" for p in free_ports(3))
    common = ["--peers", addresses, "--out", str(out), "--rule", "push_sum", "--mode",
              "async", "--rounds", "40", "--step-time", "0.2",
              "--checkpoint-every", "5", "--round-deadline", "300", "--heartbeat-timeout",
              "2", *FAST]
    path = [out / f"peer-{i:04d}.jsonl" for i in range(3)]
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(started(gossip_cmd("peer", "--id", str(i), *common),
                                             tmp_path / f"{i}.log")) for i in range(3)]
        wait_for(lambda: len(records(path[1])) >= 6 or any(p.poll() is not None
                                                             for p in procs),
                 240, "round 6 of peer 1")
        assert all(p.poll() is None for p in procs), (tmp_path / "1.log").read_text()[-2000:]
        os.kill(procs[1].pid, signal.SIGKILL)
        procs[1].wait()
        resumed = stack.enter_context(started(
            gossip_cmd("peer", "--id", "1", "--resume", *common), tmp_path / "resumed.log"))
        for i in (0, 2):
            assert procs[i].wait(timeout=300) == 0, (tmp_path / f"{i}.log").read_text()[-2000:]
        assert resumed.wait(timeout=300) == 0, (tmp_path / "resumed.log").read_text()[-2000:]
    assert processes_mentioning(str(out)) == []
    assert "resumed from" in (tmp_path / "resumed.log").read_text()
    last = [records(p)[-1] for p in path]
    assert all(r["final"] and r["final_missing"] == 0 and r["params_finite"] for r in last)
    assert all(r["local_acc"] > 0.5 for r in last), last  # they trained (digits: 10 classes)
    assert sum(r["mass"] for r in last) == pytest.approx(3.0, abs=1e-4)


def test_async_peers_whose_local_steps_diverge_still_gossip_and_keep_the_mass(tmp_path):
    # Two async peers in threads with an infinite learning rate (no local step is finite): each
    # round only gossips (no local step), the parameters stay finite, the mass stays 2, and
    # the jitted mix and message compile once.
    config = resolve({}, {"peers": 2, "rounds": 4, "eval_every": 4, "rule": "push_sum",
                          "mode": "async", "lr": float("inf"), "model_options": {"hidden": [8]},
                          "round_deadline": 60.0})
    addresses = [f"tcp://127.0.0.1:{p}" for p in free_ports(2)]
    peers = [AsyncPeer(build_peer_task(config, i), PeerOptions(
        addresses, tmp_path, run_digest=run_digest(config), mode="async",
        checkpoint_every=0)) for i in range(2)]
    results = run_in_threads(peers, timeout=180)
    assert sorted(results) == [0, 1]
    assert sum(results[i]["mass"] for i in range(2)) == pytest.approx(2.0, abs=1e-5)
    for peer in peers:
        rec = records(tmp_path / f"peer-{peer.i:04d}.jsonl")
        # rounds 1..k (k < 4 when its neighbour stopped first), then the final record
        rounds = [r["round"] for r in rec]
        assert rounds == [*range(1, len(rec)), len(rec) - 1] and rec[-1]["final"]
        assert all(np.isnan(r["loss"]) and r["params_finite"] for r in rec)
        # each round's failure is blamed on its local steps or on the mix before them
        assert rec[-1]["local_divergences"] + rec[-1]["mixes_discarded"] >= len(rec) - 1
        assert rec[-1]["final_missing"] == rec[-1]["final_unsent"] == 0
        for fn in (peer.fn.message, peer.fn.finish, peer.fn.absorb):
            assert fn._cache_size() == 1
