"""Churn: a peer killed mid-run resumes from its checkpoint; a late peer joins the run.

The peers run on one "host": a network namespace whose loopback is limited to a few Mbit/s,
so rounds are paced by the network (~0.5 s) rather than by a CPU the restart competes for.
"""

import contextlib
import io
import os
import signal
from pathlib import Path

import pytest
from netns import bridged_namespaces, netns_available
from peer_utils import gossip_cmd, processes_mentioning, records, started, wait_for

from gossip.cli import main
from gossip.config import resolve
from gossip.launch.results import summarise_run
from gossip.peer.checkpoint import checkpoint_path, load_checkpoint

N, ROUNDS, VICTIM, KILL_AT = 8, 40, 3, 10
SETTINGS = ["--rounds", str(ROUNDS), "--seed", "5", "--local-steps", "20", "--lr", "0.02",
            "--eval-every", "100", "--set", "model_options={hidden=[32]}"]


def reference_accuracy(tmp_path: Path) -> float:
    """Average-model accuracy of the same run undisturbed (the simulator: the same result as
    N synchronous peers, see test_peer_parity)."""
    out = tmp_path / "reference"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["sim", "--peers", str(N), "--out", str(out), "--no-progress",
                     "--no-plot", *SETTINGS]) == 0
    return records(out / "metrics.jsonl")[-1]["avg_model_acc"]


@pytest.mark.skipif(not netns_available(), reason="needs root and `ip netns`")
def test_a_peer_killed_at_round_10_resumes_and_catches_up(tmp_path):
    with bridged_namespaces(1, "crash") as net:
        net.limit_rate(0, "2mbit", device="lo")
        crash_and_resume(tmp_path, net.exec_prefix(0))


def crash_and_resume(tmp_path: Path, prefix: list[str]) -> None:
    out = tmp_path / "run"
    peers = ",".join(f"tcp://127.0.0.1:{7200 + i}" for i in range(N))
    common = ["--peers", peers, "--out", str(out), "--round-deadline", "5",
              "--heartbeat-timeout", "1.5", "--set", "heartbeat_interval=0.25",
              "--checkpoint-every", "5", "--save-params", *SETTINGS]
    path = [out / f"peer-{i:04d}.jsonl" for i in range(N)]
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(started(
            [*prefix, *gossip_cmd("peer", "--id", str(i), *common)], tmp_path / f"{i}.log"))
            for i in range(N)]
        wait_for(lambda: len(records(path[VICTIM])) >= KILL_AT, 240, "round 10 of the victim")
        os.kill(procs[VICTIM].pid, signal.SIGKILL)
        procs[VICTIM].wait()
        killed_after = len(records(path[VICTIM]))
        # the last checkpoint (every 5 rounds; the kill may fall between a round's record and
        # its checkpoint)
        saved = load_checkpoint(checkpoint_path(out, VICTIM), {})[1]["round"]
        assert saved % 5 == 0 and killed_after - 5 <= saved <= killed_after
        # The others go on without the victim; it restarts once they are well past its checkpoint
        # (catch-up needs a neighbour 3 rounds ahead; a quick restart would just rejoin).
        others = [p for i, p in enumerate(path) if i != VICTIM]
        wait_for(lambda: min(len(records(p)) for p in others) >= saved + 6, 240,
                 "the others 6 rounds past the victim's checkpoint")
        resumed = stack.enter_context(started(
            [*prefix, *gossip_cmd("peer", "--id", str(VICTIM), "--resume", *common)],
            tmp_path / "resumed.log"))
        for i, p in enumerate(procs):
            if i != VICTIM:
                assert p.wait(timeout=240) == 0, (tmp_path / f"{i}.log").read_text()[-2000:]
        assert resumed.wait(timeout=240) == 0, (tmp_path / "resumed.log").read_text()[-2000:]
    assert not processes_mentioning(str(out))

    rec = [records(p) for p in path]
    for i in set(range(N)) - {VICTIM}:  # the other seven finished every round
        assert [r["round"] for r in rec[i]] == list(range(1, ROUNDS + 1))
    log = (tmp_path / "resumed.log").read_text()
    assert f"at round {saved}\n" in log  # resumed from that checkpoint
    victim = rec[VICTIM]
    assert victim[-1]["round"] == ROUNDS and victim[-1]["catch_ups"] >= 1
    assert "caught up from round" in log

    from gossip.experiment import build_experiment
    config = resolve({}, {"peers": N, "rounds": ROUNDS, "seed": 5, "local_steps": 20,
                          "lr": 0.02, "model_options": {"hidden": [32]}})
    summary = summarise_run(build_experiment(config), out, 0.0)
    assert summary["peers_finished"] == N
    assert abs(summary["avg_model_acc"] - reference_accuracy(tmp_path)) <= 0.02


@pytest.mark.skipif(not netns_available(), reason="needs root and `ip netns`")
def test_a_late_peer_joins_the_round_in_progress(tmp_path):
    rounds, late = 45, 3
    peers = ",".join(f"tcp://127.0.0.1:{7300 + i}" for i in range(4))
    common = ["--peers", peers, "--out", str(tmp_path), "--rounds", str(rounds),
              "--startup-timeout", "3", "--heartbeat-timeout", "2",
              "--set", "heartbeat_interval=0.25", "--checkpoint-every", "0",
              "--eval-every", "100", "--set", "model_options={hidden=[32]}",
              # a paced round (>= 0.4 s) leaves the late peer's start-up >= 15 s to join in
              "--set", "step_time=0.4"]
    path = [tmp_path / f"peer-{i:04d}.jsonl" for i in range(4)]
    with bridged_namespaces(1, "late") as net, contextlib.ExitStack() as stack:
        net.limit_rate(0, "1mbit", device="lo")
        start = [*net.exec_prefix(0), *gossip_cmd("peer", *common, "--id")]
        procs = [stack.enter_context(started([*start, str(i)], tmp_path / f"{i}.log"))
                 for i in range(4) if i != late]
        wait_for(lambda: len(records(path[0])) >= 3, 240, "round 3 of the others")
        procs.append(stack.enter_context(started([*start, str(late)], tmp_path / "late.log")))
        for p in procs:
            assert p.wait(timeout=240) == 0, (tmp_path / "late.log").read_text()[-2000:]
    rec = [records(p) for p in path]
    for i in (0, 1, 2):
        assert [r["round"] for r in rec[i]] == list(range(1, rounds + 1))
    # it took the round in progress at once (at most after one round of its own)
    joined = next(r for r in rec[late] if r["catch_ups"] == 1)
    assert rec[late].index(joined) <= 1 and joined["round"] > 3
    assert rec[late][-1]["round"] == rounds
    assert rec[late][-1]["messages_received"] > 0
    assert "caught up from round" in (tmp_path / "late.log").read_text()
    for j in (0, 2):  # its ring neighbours took it in
        alive = [(r["round"], r["neighbours_alive"]) for r in rec[j]]
        assert any(n == 2 for _, n in alive[joined["round"] - 1:]), (
            f"peer {late} joined at round {joined['round']}; peer {j} (round, neighbours "
            f"alive): {alive}")
