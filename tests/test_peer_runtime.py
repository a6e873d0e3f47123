"""The peer runtime in one process: two peers in threads, compiled once, records complete."""

import threading

import jax
import numpy as np

from gossip.config import resolve
from gossip.peer.launch import free_ports
from gossip.peer.runtime import Peer, PeerOptions
from gossip.peer.setup import build_peer_task


def test_two_peers_in_threads_compile_once_and_agree(tmp_path):
    config = resolve({}, {"peers": 2, "rounds": 6, "eval_every": 3, "topology": "random_matching",
                          "model_options": {"hidden": [16]}, "round_deadline": 20.0})
    addresses = [f"tcp://127.0.0.1:{p}" for p in free_ports(2)]
    peers = [Peer(build_peer_task(config, i), PeerOptions(addresses, tmp_path)) for i in (0, 1)]
    results: dict[int, dict] = {}
    threads = [threading.Thread(target=lambda p=p: results.__setitem__(p.i, p.run()))
               for p in peers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == [0, 1]
    for peer in peers:
        rec = results[peer.i]
        assert rec["round"] == 6 and "local_acc" in rec and 0 <= rec["local_acc"] <= 1
        assert rec["messages_missing"] == rec["messages_rejected"] == 0
        # random matching of 2 peers: the pair talks every round
        assert rec["messages_received"] == rec["messages_sent"] == 6
        for fn in (peer.fn.local_round, peer.fn.message, peer.fn.mix, peer.fn.evaluate):
            assert fn._cache_size() == 1  # compiled once, never again across rounds
    # two peers mixing with equal weights end equal (after their last exchange)
    for a, b in zip(jax.tree.leaves(peers[0].params), jax.tree.leaves(peers[1].params),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
