"""Real peers (in threads) against a neighbour that lies: fuzzed and poisoned messages, forged
claims of being ahead, and (CURVE) another member's id. Every random choice is seeded."""

import re
import time

import jax
import msgpack
import numpy as np
from hostile import Impostor, make_peers, max_abs, peers_config, relabel, running
from peer_utils import records, wait_for

from gossip.launch.local import free_ports
from gossip.wire import encode, load_keys, write_keys

F32_MAX = np.finfo(np.float32).max
NASTY = [None, True, -1, 2**64 - 1, 1.5, "", "gossip", [], [1, 2], {"a": 1}, b"\x00", 10**6]


def poisoned(frames, sender, round_):
    """A valid gossip message whose first leaf is all float32 max (finite, and huge)."""
    out = relabel(frames, sender=sender, round=round_)
    out[1] = np.full(len(out[1]) // 4, F32_MAX, np.float32).tobytes()
    return out


def mutate(rng, frames):
    """One random mutation of a message: bit flips, truncation, frames, header fields."""
    frames = [bytes(f) for f in frames]
    op = rng.integers(7)
    i = int(rng.integers(len(frames)))
    if op == 0 and frames[i]:  # bit flips
        b = bytearray(frames[i])
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
        frames[i] = bytes(b)
    elif op == 1:
        frames[i] = frames[i][:int(rng.integers(len(frames[i]) + 1))]
    elif op == 2:
        del frames[i]
    elif op == 3:
        frames.insert(i, frames[i])
    else:
        header = msgpack.unpackb(frames[0])
        value = NASTY[int(rng.integers(len(NASTY)))]
        if op == 4:
            keys = ["v", "kind", "sender", "round", "struct", "leaves"]
            header[keys[int(rng.integers(6))]] = value
        elif op == 5 and header["leaves"]:
            header["leaves"][int(rng.integers(len(header["leaves"])))][int(rng.integers(5))] = value
        else:
            header["extra"] = value
        frames[0] = msgpack.packb(header)
    return frames or [b""]


def test_a_fuzzing_neighbour_and_a_float32_max_message_leave_two_peers_finite(tmp_path, caplog):
    # Ring of 3: peers 0 and 1 are real; peer 2 is the fuzzer, bound at peer 2's address.
    config = peers_config(3, rounds=40, local_steps=5, round_deadline=0.5)
    addresses = [f"tcp://127.0.0.1:{p}" for p in free_ports(3)]
    peers = make_peers(config, [0, 1], tmp_path, addresses)
    template = peers[0].template
    fuzzer = Impostor(addresses, [0, 1], bind=addresses[2])
    rng = np.random.default_rng(2024)
    fuzzed = 0
    try:
        with running(peers) as results:
            for j in (0, 1):
                fuzzer.send(j, encode("hello", 2, 0, template))
            fuzzer.wait_for_gossip(beat=encode("heartbeat", 2, 0, template))
            r = max(fuzzer.rounds.values())
            base = next(iter(fuzzer.gossip.values()))
            fuzzer.send(0, poisoned(base, 2, r + 2))  # the first message of peer 2 for r + 2
            answered = set()
            while len(results) < 2:
                fuzzer.listen(0 if fuzzed < 3000 else 1)
                r = max(fuzzer.rounds.values())
                if r not in answered:  # honest-looking traffic, so rounds need not wait
                    answered.add(r)
                    for j in (0, 1):
                        fuzzer.send(j, encode("heartbeat", 2, r, template))
                        fuzzer.send(j, relabel(fuzzer.gossip.get(1 - j, base), sender=2,
                                               round=r))
                if fuzzed < 3000:
                    frames = relabel(fuzzer.gossip.get(0, base), sender=2,
                                     round=int(r + rng.integers(-1, 3)))
                    fuzzed += fuzzer.send(int(rng.integers(2)), mutate(rng, frames))
    finally:
        fuzzer.close()
    assert fuzzed == 3000
    for peer in peers:
        last = results[peer.i]
        assert last["round"] == 40 and last["params_finite"] is True
        assert np.isfinite(max_abs(peer.params))
    c0, c1 = peers[0].counters, peers[1].counters
    assert c0.mixes_discarded >= 1  # the float32-max mix, discarded after the next steps
    assert re.search(r"discarding that mix, whose messages came from peer\(s\) \[(1, )?2\]",
                     caplog.text)
    assert c0.rejected_malformed + c1.rejected_malformed > 1000
    assert c0.messages_rejected == sum(getattr(c0, f"rejected_{r}") for r in (
        "malformed", "own_id", "spoofed", "implausible", "not_neighbour", "duplicate",
        "unasked_state", "state_round"))


def test_forged_claims_of_being_ahead_delay_no_round_beyond_the_catch_up_timeout(tmp_path):
    catchup_timeout = 1.0
    # A round deadline of a minute: a forged claim that blocked a round would show.
    config = peers_config(2, rounds=30, local_steps=30, round_deadline=60.0)
    peers = make_peers(config, [0, 1], tmp_path, catchup_timeout=catchup_timeout)
    liar = Impostor(peers[0].options.addresses, [0, 1])
    template = peers[0].template
    zeros = jax.tree.unflatten(template.treedef,
                               [np.zeros(s.shape, s.dtype) for s in template.leaves])
    metrics = tmp_path / "peer0" / "peer-0000.jsonl"
    try:
        with running(peers) as results:
            wait_for(lambda: len(records(metrics)) >= 3, 120, "round 3")
            t = records(metrics)[-1]["round"]
            liar.send(0, encode("heartbeat", 1, t + 100, template))  # the attack
            liar.send(0, encode("gossip", 1, 2**64 - 1, template, zeros))
            liar.send(0, encode("heartbeat", 1, t + 5, template))  # possible: asked, once
            liar.send(1, encode("heartbeat", 0, t + 100, template))
            liar.send(1, encode("gossip", 0, 2**63, template, zeros))
            start = time.monotonic()
    finally:
        liar.close()
    assert time.monotonic() - start < 30
    for peer in peers:
        recs = records(tmp_path / f"peer{peer.i}" / f"peer-{peer.i:04d}.jsonl")
        assert [r["round"] for r in recs] == list(range(1, 31))
        usual = float(np.median([r["round_time"] for r in recs]))
        assert max(r["round_time"] for r in recs) <= usual + catchup_timeout + 1.0, recs
        assert results[peer.i]["params_finite"]
        c = peer.counters
        assert c.rejected_implausible >= 1 and c.messages_ahead >= 1
    c0 = peers[0].counters
    assert c0.catch_ups + c0.catch_up_failures <= 1  # asked peer 1 once at most


def test_with_curve_another_members_id_is_rejected_and_never_mixed(tmp_path):
    keys_dir = tmp_path / "keys"
    write_keys(keys_dir, 3)
    keys = {i: load_keys(keys_dir, i, 3) for i in range(3)}
    config = peers_config(3, rounds=20, local_steps=30, round_deadline=2.0,
                          startup_timeout=2.0)
    peers = make_peers(config, [0, 1], tmp_path, keys=keys)
    # Peer 2's key (a member of the run) speaking as peer 1 to peer 0.
    liar = Impostor(peers[0].options.addresses, [0],
                    curve=(keys[2].public, keys[2].secret, keys[2].peers))
    template = peers[0].template
    huge = jax.tree.unflatten(template.treedef,
                              [np.full(s.shape, 1e30, s.dtype) for s in template.leaves])
    metrics = tmp_path / "peer0" / "peer-0000.jsonl"
    try:
        with running(peers) as results:
            wait_for(lambda: len(records(metrics)) >= 2, 120, "round 2")
            t = records(metrics)[-1]["round"]
            liar.send(0, encode("hello", 1, t, template))
            liar.send(0, encode("heartbeat", 1, t, template))
            for r in range(t, t + 6):
                liar.send(0, encode("gossip", 1, r, template, huge))
            wait_for(lambda: peers[0].counters.rejected_spoofed == liar.sent, 60,
                     "the spoofed messages to arrive")
    finally:
        liar.close()
    c0 = peers[0].counters
    assert c0.rejected_spoofed == liar.sent == 8 and c0.messages_rejected == 8
    assert c0.mixes_discarded == 0 and max_abs(peers[0].params) < 1e3
    assert c0.messages_received <= 20  # one a round at most: peer 1's own
    assert results[0]["round"] == results[1]["round"] == 20
