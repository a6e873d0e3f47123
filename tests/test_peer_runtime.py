"""The peer runtime in one process: two peers in threads, compiled once, records complete."""

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from peer_utils import run_in_threads

from gossip.config import resolve
from gossip.launch.local import free_ports
from gossip.launch.peer_task import build_peer_task, run_digest
from gossip.peer.checkpoint import CheckpointError, checkpoint_path, load_checkpoint
from gossip.peer.runtime import Peer, PeerOptions


def test_two_peers_in_threads_compile_once_and_agree(tmp_path):
    config = resolve({}, {"peers": 2, "rounds": 6, "eval_every": 3, "topology": "random_matching",
                          "model_options": {"hidden": [16]}, "round_deadline": 20.0})
    addresses = [f"tcp://127.0.0.1:{p}" for p in free_ports(2)]
    options = PeerOptions(addresses, tmp_path, checkpoint_every=4, run_digest=run_digest(config))
    peers = [Peer(build_peer_task(config, i), options) for i in (0, 1)]
    results = run_in_threads(peers, timeout=120)
    assert sorted(results) == [0, 1]
    for peer in peers:
        rec = results[peer.i]
        assert rec["round"] == 6 and "local_acc" in rec and 0 <= rec["local_acc"] <= 1
        assert rec["messages_missing"] == rec["messages_rejected"] == 0
        # random matching of 2 peers: the pair talks every round
        assert rec["messages_received"] == rec["messages_sent"] == 6
        for fn in (peer.fn.early, peer.fn.local, peer.fn.message, peer.fn.finish,
                   peer.fn.evaluate, peer.fn.keep_finite):
            assert fn._cache_size() == 1  # compiled once, never again across rounds
        assert peer.fn.finite._cache_size() == 2  # local steps' and final state's checks
        assert rec["params_finite"] is True and rec["mixes_discarded"] == 0
    # two peers mixing with equal weights end equal (after their last exchange)
    for a, b in zip(jax.tree.leaves(peers[0].params), jax.tree.leaves(peers[1].params),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)

    # checkpoints every 4 rounds and after the last: the file holds the final state
    trees, meta = load_checkpoint(checkpoint_path(tmp_path, 1), peers[1]._state_trees())
    assert meta["round"] == 6 and meta["peer"] == 1
    for a, b in zip(jax.tree.leaves(trees), jax.tree.leaves(peers[1]._state_trees()),
                    strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))
    # resuming at the last round runs nothing and keeps the checkpoint's parameters
    resumed = Peer(build_peer_task(config, 1), dataclasses.replace(options, resume=True))
    assert resumed.run() == {"peer": 1, "round": 6}
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(trees["params"]),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)
    # a checkpoint of another run (another config digest) is refused before anything starts
    other = Peer(build_peer_task(config, 1),
                 dataclasses.replace(options, resume=True, run_digest="0" * 16))
    with pytest.raises(CheckpointError,
                       match=r"another run \(config digest .* this run's is '0{16}'"):
        other.run()


def test_a_slowed_peer_stretches_its_compute_time():
    # Peer._stretch alone (no sockets): the compute time it sleeps to and returns is the
    # slowdown times what the steps took, or the set step time times H times the slowdown.
    peer = Peer.__new__(Peer)
    peer.task = SimpleNamespace(rule=SimpleNamespace(local_steps=2))
    peer.h = 2  # local steps per round
    peer.options = PeerOptions(addresses=[], out_dir=Path("."), speed=4.0)
    assert peer._stretch(0.0) == 0.0  # nothing to stretch: no sleep
    peer.options = PeerOptions(addresses=[], out_dir=Path("."), speed=1.0)
    assert peer._stretch(0.25) == 0.25  # full speed: as it was
    peer.options = PeerOptions(addresses=[], out_dir=Path("."), speed=2.0, step_time=0.001)
    assert peer._stretch(0.0) == pytest.approx(0.004)  # padded to 0.001 s x H=2 x 2
