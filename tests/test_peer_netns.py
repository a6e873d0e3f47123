"""Real hosts: a ring of 4 peers in 4 network namespaces on a bridge; one link cut mid-run."""

import contextlib
import subprocess

import pytest
from netns import bridged_namespaces, netns_available
from peer_utils import FAST, gossip_cmd, records, wait_for

pytestmark = pytest.mark.skipif(not netns_available(), reason="needs root and `ip netns`")

PORT = 7100
ROUNDS = 80


def test_ring_over_four_hosts_survives_a_cut_link_and_the_cut_peer_rejoins(tmp_path):
    with bridged_namespaces(4, "ring") as net, contextlib.ExitStack() as stack:
        for i in range(4):  # 1 Mbit/s out of each host: a round takes ~0.15 s of network
            net.limit_rate(i, "1mbit")
        peers = ",".join(f"tcp://{a}:{PORT}" for a in net.addresses)
        procs = []
        for i in range(4):
            log = (tmp_path / f"{i}.log").open("w")
            stack.enter_context(log)
            cmd = [*net.exec_prefix(i), *gossip_cmd(
                "peer", "--id", str(i), "--peers", peers, "--out", str(tmp_path),
                "--rounds", str(ROUNDS), "--round-deadline", "3",
                "--heartbeat-timeout", "1", "--set", "heartbeat_interval=0.2",
                "--checkpoint-every", "0", "--log-level", "info", *FAST)]
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True))
        # bridged_namespaces kills whatever still runs in the namespaces when it exits
        path = [tmp_path / f"peer-{i:04d}.jsonl" for i in range(4)]
        wait_for(lambda: len(records(path[0])) >= 10, 180, "10 rounds of peer 0")
        net.cut(0)
        cut_at = [len(records(p)) for p in path]
        # peers 1 and 3 notice that 0 is gone and go on with one neighbour
        wait_for(lambda: all(len(records(path[j])) >= cut_at[j] + 8
                             and records(path[j])[-1]["neighbours_alive"] == 1 for j in (1, 3)),
                 60, "peers 1 and 3 going on without peer 0")
        isolated_at = len(records(path[0]))
        assert isolated_at <= cut_at[0] + 2  # peer 0 waits for its neighbours, alone
        net.restore(0)
        for i, p in enumerate(procs):
            assert p.wait(timeout=180) == 0, (tmp_path / f"{i}.log").read_text()[-2000:]

    rec = [records(p) for p in path]
    for j in (1, 2, 3):  # every round of the three that stayed connected
        assert [r["round"] for r in rec[j]] == list(range(1, ROUNDS + 1))
    # before the cut, the ring worked across the namespaces: no message missing
    assert all(r["messages_missing"] == 0 for r in rec[2][:cut_at[2] - 1])
    # peer 0 rejoined: it caught up with a neighbour's round, then exchanged again
    joined = next(k for k, r in enumerate(rec[0]) if r["catch_ups"] >= 1)
    assert rec[0][joined]["round"] > isolated_at + 1
    assert rec[0][-1]["round"] == ROUNDS
    assert rec[0][-1]["messages_received"] > rec[0][joined]["messages_received"]
    for j in (1, 3):  # peer 0 is back among its neighbours' live peers
        assert any(r["neighbours_alive"] == 2 for r in rec[j][cut_at[j] + 8:])
    assert "caught up from round" in (tmp_path / "0.log").read_text()
