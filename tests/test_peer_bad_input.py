"""A running peer fed garbage by a plain pyzmq socket keeps running, untouched."""

import time

import jax
import msgpack
import numpy as np
import zmq
from peer_utils import FAST, gossip_cmd, records, started, wait_for

from gossip.config import resolve
from gossip.launch.local import free_ports
from gossip.launch.peer_task import build_peer_task
from gossip.wire import encode, make_template

ROUNDS = 20
# Peer 1 never starts: the rounds do not wait for it, but take long enough (local steps) for
# the attack to land mid-run.
CONFIG = ["--rounds", str(ROUNDS), "--local-steps", "200", "--round-deadline", "1",
          "--startup-timeout", "2", "--save-params", *FAST]


def message_template():
    config = resolve({}, {"peers": 2, "model_options": {"hidden": [32]}})
    task = build_peer_task(config, 1)
    rule = task.rule
    return make_template(jax.eval_shape(rule.message, task.params, rule.init(task.params)))


def with_header(frames, **changes):
    header = msgpack.unpackb(frames[0])
    header.update(changes)
    return [msgpack.packb(header), *frames[1:]]


def with_leaf(frames, field, value):
    header = msgpack.unpackb(frames[0])
    header["leaves"][0][["path", "dtype", "shape", "nbytes", "codec"].index(field)] = value
    return [msgpack.packb(header), *frames[1:]]


def bad_messages(template):
    rng = np.random.default_rng(0)
    arrays = [np.zeros(s.shape, s.dtype) for s in template.leaves]
    valid = jax.tree.unflatten(template.treedef, arrays)
    good = encode("gossip", 1, 2, template, valid)
    nan = [a.copy() for a in arrays]
    nan[0].flat[0] = np.nan
    inf = [a.copy() for a in arrays]
    inf[-1].flat[-1] = np.inf
    return [
        ("header is not valid msgpack", [rng.bytes(64)]),
        ("header is not valid msgpack", [b"\xc1not msgpack", *good[1:]]),
        ("protocol version 99", with_header(good, v=99)),
        ("structure hash", with_header(good, struct="0123456789abcdef")),
        ("dtype float64, expected float32", with_leaf(good, "dtype", "float64")),
        ("shape (3,), expected", with_leaf(good, "shape", [3])),
        ("header says 7 bytes", with_leaf(good, "nbytes", 7)),
        ("frame has 4 bytes", [good[0], b"\x00" * 4, *good[2:]]),
        ("frames, expected", good[:2]),
        ("frames, expected", [*good, b"extra"]),
        ("contains NaN or Inf", encode("gossip", 1, 2, template,
                                       jax.tree.unflatten(template.treedef, nan))),
        ("contains NaN or Inf", encode("gossip", 1, 2, template,
                                       jax.tree.unflatten(template.treedef, inf))),
        ("state that was not asked for", encode("state", 1, 2, template, valid)),
    ]


def test_garbage_is_rejected_and_the_peer_finishes_untouched(tmp_path):
    template = message_template()
    victim_addrs = ",".join(f"tcp://127.0.0.1:{p}" for p in free_ports(2))
    alone_addrs = ",".join(f"tcp://127.0.0.1:{p}" for p in free_ports(2))
    victim, alone = tmp_path / "victim", tmp_path / "alone"
    ctx = zmq.Context()
    attacker = ctx.socket(zmq.DEALER)
    attacker.setsockopt(zmq.LINGER, 0)
    try:
        with started(gossip_cmd("peer", "--id", "0", "--peers", victim_addrs, "--out",
                                str(victim), *CONFIG), tmp_path / "victim.log") as proc, \
             started(gossip_cmd("peer", "--id", "0", "--peers", alone_addrs, "--out",
                                str(alone), *CONFIG), tmp_path / "alone.log") as ref:
            wait_for(lambda: records(victim / "peer-0000.jsonl"), 120, "the first round")
            attacker.connect(victim_addrs.split(",")[0])
            bad = bad_messages(template)
            for _, frames in bad:
                attacker.send_multipart(frames)
            far_ahead = jax.tree.unflatten(template.treedef,
                                           [np.zeros(s.shape, s.dtype) for s in template.leaves])
            attacker.send_multipart(encode("gossip", 1, 10**6, template, far_ahead))
            time.sleep(0.2)
            attacker.send_multipart([b"\x00" * (template.max_frame_bytes + 4096)])  # > MAXMSGSIZE
            assert proc.wait(timeout=60) == 0
            assert ref.wait(timeout=60) == 0
    finally:
        attacker.close()
        ctx.term()
    last = records(victim / "peer-0000.jsonl")[-1]
    assert last["round"] == ROUNDS
    assert last["messages_rejected"] == len(bad)
    assert last["messages_ahead"] == 1
    assert last["messages_received"] == 0
    assert last["transport_disconnects"] >= 1
    log = [ln for ln in (tmp_path / "victim.log").read_text().splitlines()
           if "rejected a message" in ln]
    assert len(log) == len(bad)
    for (reason, _), line in zip(bad, log, strict=True):
        assert reason in line, (reason, line)
    # Its parameters are those of the same peer with nobody to talk to, bit for bit.
    got = np.load(victim / "params" / "peer-0000.npz")
    want = np.load(alone / "params" / "peer-0000.npz")
    for leaf in want.files:
        np.testing.assert_array_equal(got[leaf], want[leaf])
