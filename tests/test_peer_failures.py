"""Dead neighbours cost at most the deadline; the launcher reports failures and never leaks."""

import os
import re
import signal
import subprocess

from peer_utils import (
    FAST,
    assert_ports_free,
    gossip_cmd,
    processes_mentioning,
    records,
    started,
    wait_for,
)

from gossip.launch.local import free_ports

DEADLINE = 0.5


def test_a_neighbour_that_never_starts_costs_at_most_the_deadline(tmp_path):
    rounds = 8
    peers = ",".join(f"tcp://127.0.0.1:{p}" for p in free_ports(3))
    common = ["--peers", peers, "--out", str(tmp_path), "--rounds", str(rounds),
              "--round-deadline", str(DEADLINE), "--startup-timeout", "8", *FAST]
    with started(gossip_cmd("peer", "--id", "0", *common), tmp_path / "0.log") as p0, \
         started(gossip_cmd("peer", "--id", "1", *common), tmp_path / "1.log") as p1:
        assert p0.wait(timeout=120) == 0 and p1.wait(timeout=120) == 0
    assert "gossip peer 0: 8 rounds in" in (tmp_path / "0.log").read_text()
    for i in (0, 1):
        rec = records(tmp_path / f"peer-{i:04d}.jsonl")
        assert [r["round"] for r in rec] == list(range(1, rounds + 1))
        # ring of 3: peer 2 is a neighbour of both, so at least one message is missing every
        # round (two, in rounds where the other peer had not started yet on a loaded machine)
        assert rec[-1]["messages_missing"] >= rounds
        assert rec[-1]["messages_missing"] + rec[-1]["messages_received"] == 2 * rounds
        step = max(r["round_time"] - r["wait_time"] for r in rec)
        assert rec[-1]["time"] <= rounds * (step + DEADLINE) + 1.0, rec[-1]
    assert re.search(r"starting without hello from peer\(s\) \[(1, )?2\]",
                     (tmp_path / "0.log").read_text())


def test_a_peer_killed_mid_run_is_reported_and_the_others_finish(tmp_path):
    rounds = 40
    cmd = gossip_cmd("launch", "--local", "3", "--out", str(tmp_path), "--rounds", str(rounds),
                     "--local-steps", "300", "--round-deadline", "0.3", "--no-progress", *FAST)
    with started(cmd, tmp_path / "launch.log") as launcher:
        victim = tmp_path / "peer-0002.jsonl"
        wait_for(lambda: len(records(victim)) >= 2, 120, "peer 2's second round")
        (pid,) = processes_mentioning(f"--id 2 --peers {tmp_path}")
        os.kill(pid, signal.SIGKILL)
        killed_at = len(records(victim))
        assert launcher.wait(timeout=120) == 1
    out = (tmp_path / "launch.log").read_text()
    assert "peer 2 failed (exit code -9)" in out
    assert "average-model test accuracy" in out  # summary of the peers that finished
    assert re.search(r"^peers finished\s+2 of 3  \(see the lines above\)$", out, re.M), out
    # said before any peer started: where the run and the logs are
    assert out.index(f"their logs in {tmp_path}/logs/peer-XXXX.log") < out.index("failed")
    assert killed_at < rounds
    for i in (0, 1):
        rec = records(tmp_path / f"peer-{i:04d}.jsonl")
        assert rec[-1]["round"] == rounds
        assert rec[-1]["messages_missing"] >= rounds - killed_at - 1
        step = max(r["round_time"] - r["wait_time"] for r in rec)
        assert rec[-1]["time"] <= rounds * (step + 0.3) + 1.0, rec[-1]
    assert processes_mentioning(str(tmp_path)) == []
    assert_ports_free(tmp_path / "peers.txt")


def test_restarts_bring_a_killed_peer_back(tmp_path):
    cmd = gossip_cmd("launch", "--local", "3", "--out", str(tmp_path), "--rounds", "40",
                     "--local-steps", "300", "--round-deadline", "0.3", "--restarts", "1",
                     "--startup-timeout", "3", "--checkpoint-every", "2", "--no-progress",
                     *FAST)
    with started(cmd, tmp_path / "launch.log") as launcher:
        victim = tmp_path / "peer-0002.jsonl"
        wait_for(lambda: len(records(victim)) >= 2, 120, "peer 2's second round")
        (pid,) = processes_mentioning(f"--id 2 --peers {tmp_path}")
        os.kill(pid, signal.SIGKILL)
        assert launcher.wait(timeout=180) == 0, (tmp_path / "launch.log").read_text()
    out = (tmp_path / "launch.log").read_text()
    assert re.search(r"peer 2 failed \(exit code -9\): .*; restarting it with --resume in 1 s "
                     r"\(restart 1 of 1\)", out)
    assert re.search(r"restarts +1 \(peer 2: 1\)", out)
    summary = records(tmp_path / "metrics.jsonl")[-1]
    assert summary["restarts_per_peer"] == [0, 0, 1] and summary["peers_finished"] == 3
    log = (tmp_path / "logs" / "peer-0002.log").read_text()
    assert "restarting peer 2 (--resume)" in log and "resumed from" in log
    assert records(victim)[-1]["round"] == 40
    assert processes_mentioning(str(tmp_path)) == []


def test_sigterm_stops_every_peer_and_frees_every_port(tmp_path):
    cmd = gossip_cmd("launch", "--local", "3", "--out", str(tmp_path), "--rounds", "100000",
                     "--no-progress", *FAST)
    with started(cmd, tmp_path / "launch.log") as launcher:
        wait_for(lambda: all(records(tmp_path / f"peer-{i:04d}.jsonl") for i in range(3)),
                 120, "every peer's first round")
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=30) == 143
    assert "stopped; all 3 peers terminated" in (tmp_path / "launch.log").read_text()
    assert processes_mentioning(str(tmp_path)) == []
    assert_ports_free(tmp_path / "peers.txt")


def test_a_bad_config_starts_nothing(tmp_path):
    run = subprocess.run(gossip_cmd("launch", "--local", "3", "--out", str(tmp_path / "x"),
                                    "--topology", "hypercube"),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.startswith("gossip: error: unknown topology 'hypercube'")
    assert not (tmp_path / "x").exists()


def test_a_peer_list_that_disagrees_with_the_config_is_refused(tmp_path):
    (tmp_path / "c.toml").write_text("peers = 8\n")
    run = subprocess.run(gossip_cmd("peer", "--id", "0", "--peers", "tcp://a:1,tcp://b:2",
                                    "--config", str(tmp_path / "c.toml")),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "the config file sets peers = 8, but this command has peers = 2" in run.stderr
