"""The wire codec: round trips without copies, and every check of DESIGN §4 refusing bad input."""

import math

import jax
import jax.numpy as jnp
import ml_dtypes
import msgpack
import numpy as np
import pytest
import zmq

from gossip.rules import make_rule
from gossip.wire import PROTOCOL_VERSION, WireError, decode, encode, make_template
from gossip.wire.codec import structure_hash

N = 4


def payload():
    rng = np.random.default_rng(0)
    return {"dense": {"kernel": rng.standard_normal((5, 3)).astype(np.float32),
                      "bias": np.zeros(3, np.float32)},
            "scale": np.asarray(2.0, np.float64),
            "half": np.ones((2, 2), ml_dtypes.bfloat16),
            "count": np.arange(4, dtype=np.int32)}


@pytest.fixture
def template():
    return make_template(payload())


def test_round_trip_keeps_values_dtypes_and_structure(template):
    frames = encode("gossip", 2, 7, template, payload())
    msg = decode(frames, template, N)
    assert (msg.kind, msg.sender, msg.round) == ("gossip", 2, 7)
    assert jax.tree.structure(msg.payload) == jax.tree.structure(payload())
    for got, want in zip(jax.tree.leaves(msg.payload), jax.tree.leaves(payload()), strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert msg.payload_bytes == template.nbytes == sum(x.nbytes for x in jax.tree.leaves(payload()))
    assert msg.header_bytes == len(frames[0])


def test_encode_and_decode_share_memory_with_the_buffers(template):
    data = payload()
    frames = encode("gossip", 0, 0, template, data)
    leaves = jax.tree.leaves(data)
    assert all(f is leaf or np.shares_memory(f, leaf) for f, leaf in zip(frames[1:], leaves,
                                                                           strict=True))
    zframes = [zmq.Frame(f) for f in frames]
    msg = decode(zframes, template, N)
    for got, frame in zip(jax.tree.leaves(msg.payload), zframes[1:], strict=True):
        assert np.shares_memory(got, np.frombuffer(frame.buffer, np.uint8))


def test_jax_arrays_and_rule_payloads_encode(key):
    params = {"w": jax.random.normal(key, (8, 4)), "b": jnp.zeros(4)}
    rule = make_rule("push_sum")
    message = rule.message(params, rule.init(params))
    template = make_template(jax.eval_shape(lambda: message))
    msg = decode(encode("gossip", 1, 0, template, message), template, N)
    np.testing.assert_array_equal(msg.payload.z["w"], np.asarray(message.z["w"]))
    assert msg.payload.weight.shape == () and float(msg.payload.weight) == 1.0


def test_hello_and_bye_have_no_leaves(template):
    for kind in ("hello", "bye"):
        frames = encode(kind, 3, 0, template)
        assert len(frames) == 1
        msg = decode(frames, template, N)
        assert msg.kind == kind and msg.payload is None and msg.payload_bytes == 0


def test_state_messages_are_checked_against_the_params_template(template):
    params = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    params_template = make_template(params)
    frames = encode("state", 1, 9, params_template, params)
    msg = decode(frames, template, N, params_template)
    assert (msg.kind, msg.round) == ("state", 9)
    np.testing.assert_array_equal(msg.payload["w"], params["w"])
    with pytest.raises(WireError, match="unexpected 'state' message"):
        decode(frames, template, N)  # a receiver that takes no state
    with pytest.raises(WireError, match="structure hash"):
        decode(encode("state", 1, 9, template, payload()), template, N, params_template)
    for kind in ("heartbeat", "state_request"):
        assert decode(encode(kind, 3, 4, template), template, N, params_template).payload is None


def test_structure_hash_depends_on_paths_dtypes_and_shapes(template):
    p = payload()
    assert make_template(p).struct_hash == template.struct_hash
    p["dense"]["bias"] = np.zeros(4, np.float32)
    assert make_template(p).struct_hash != template.struct_hash
    p = payload()
    p["count"] = p["count"].astype(np.int64)
    assert make_template(p).struct_hash != template.struct_hash


def _header(frames):
    return msgpack.unpackb(frames[0])


def _with_header(frames, **changes):
    h = _header(frames)
    h.update(changes)
    return [msgpack.packb(h), *frames[1:]]


def _with_leaf(frames, i, field, value):
    h = _header(frames)
    h["leaves"][i][["path", "dtype", "shape", "nbytes", "codec"].index(field)] = value
    return [msgpack.packb(h), *frames[1:]]


def _bad_messages(template):
    good = encode("gossip", 1, 3, template, payload())
    nan = payload()
    nan["dense"]["kernel"][2, 1] = np.nan
    inf = payload()
    inf["scale"] = np.asarray(-np.inf)
    kernel_bytes = good[1].tobytes()
    return {
        "empty message": [],
        "header is not valid msgpack": [b"\xc1\xff\x00garbage", *good[1:]],
        "header is a msgpack list": [msgpack.packb([1, 2]), *good[1:]],
        "header key 'sender' is missing": [msgpack.packb({"v": 1, "kind": "gossip"})],
        "header key 'sender' is missing or not int": _with_header(good, sender=True),
        "over the limit": [b"\x00" * (template.header_limit + 1)],
        f"protocol version 99, expected {PROTOCOL_VERSION}": _with_header(good, v=99),
        "unknown kind 'evil'": _with_header(good, kind="evil"),
        "sender id 4 is not in [0, 4)": _with_header(good, sender=N),
        "negative round": _with_header(good, round=-1),
        "structure hash 'deadbeefdeadbeef' does not match": _with_header(
            good, struct="deadbeefdeadbeef"),
        "4 leaves in the header, expected 5": _with_header(
            good, leaves=_header(good)["leaves"][:4]),
        "5 frames, expected 6": good[:-1],
        "7 frames, expected 6": [*good, b"extra"],
        "leaf 'count': header names leaf 'other'": _with_leaf(good, 0, "path", "other"),
        "leaf 'count': unknown codec 'zstd'": _with_leaf(good, 0, "codec", "zstd"),
        "leaf 'count': dtype 'object' is not allowed": _with_leaf(good, 0, "dtype", "object"),
        "leaf 'count': dtype float32, expected int32": _with_leaf(good, 0, "dtype", "float32"),
        "leaf 'count': shape (2, 2), expected (4,)": _with_leaf(good, 0, "shape", [2, 2]),
        "leaf 'count': shape 'x' is not a list of ints": _with_leaf(good, 0, "shape", "x"),
        "leaf 'count': header says 15 bytes": _with_leaf(good, 0, "nbytes", 15),
        # equal to the expected entry under ``==``, but not of the documented types
        "leaf 'count': shape [4.0] is not a list of ints": _with_leaf(good, 0, "shape", [4.0]),
        "leaf 'count': shape [True, True, True, True] is not": _with_leaf(
            good, 0, "shape", [True] * 4),
        "leaf 'count': header says 16.0 bytes": _with_leaf(good, 0, "nbytes", 16.0),
        "leaf 'count': frame has 12 bytes, expected 16": [good[0], kernel_bytes[:12],
                                                         *good[2:]],
        "leaf 'dense/kernel': contains NaN or Inf": encode("gossip", 1, 3, template, nan),
        "leaf 'scale': contains NaN or Inf": encode("gossip", 1, 3, template, inf),
    }


@pytest.mark.parametrize("reason", list(_bad_messages(make_template(payload()))))
def test_bad_messages_are_refused_with_a_reason_naming_the_leaf(template, reason):
    frames = _bad_messages(template)[reason]
    with pytest.raises(WireError) as err:
        decode(frames, template, N)
    assert reason in str(err.value)
    assert "\n" not in str(err.value)


def test_the_header_is_the_msgpack_map_of_the_protocol(template):
    # encode packs the map piece by piece, the leaves' entries once per template: the bytes
    # are msgpack.packb of the documented map, with the arrays' own entries
    expected = {"v": PROTOCOL_VERSION, "kind": "gossip", "sender": 3, "round": 2**40,
                "struct": template.struct_hash,
                "leaves": [[s.path, np.dtype(s.dtype).name if s.path != "half" else "bfloat16",
                            list(s.shape), s.nbytes, "raw"] for s in template.leaves]}
    assert encode("gossip", 3, 2**40, template, payload())[0] == msgpack.packb(expected)
    hello = encode("hello", 1, 0, template)
    assert hello == [msgpack.packb({**expected, "kind": "hello", "sender": 1, "round": 0,
                                    "leaves": []})]
    other = payload()
    other["count"] = np.arange(5, dtype=np.int64)  # not the template's: says what it is
    entries = _header(encode("gossip", 0, 0, template, other))["leaves"]
    assert entries[0] == ["count", "int64", [5], 40, "raw"]
    assert entries[1:] == expected["leaves"][1:]


def test_a_template_without_its_precomputed_entries_works_the_same(template):
    bare = template._replace(entries=b"", layout=())  # the per-leaf paths only
    frames = encode("gossip", 1, 3, bare, payload())
    assert frames[0] == encode("gossip", 1, 3, template, payload())[0]
    got = decode(frames, bare, N).payload
    assert jax.tree.all(jax.tree.map(np.array_equal, got, payload()))
    bad = _bad_messages(template)
    for reason in ("leaf 'count': shape [4.0] is not", "leaf 'dense/kernel': contains NaN"):
        with pytest.raises(WireError, match=reason.replace("[", r"\[").replace("]", r"\]")):
            decode(bad[next(k for k in bad if k.startswith(reason))], bare, N)


def test_errors_after_the_header_name_the_sender_and_round(template):
    frames = _with_header(encode("gossip", 2, 9, template, payload()), struct="0" * 16)
    with pytest.raises(WireError, match=r"from peer 2, round 9: structure hash"):
        decode(frames, template, N)


def test_huge_finite_values_are_not_mistaken_for_inf():
    big = {"x": np.full(1000, 3e38, np.float32)}  # their float32 sum overflows
    t = make_template(big)
    np.testing.assert_array_equal(decode(encode("gossip", 0, 0, t, big), t, N).payload["x"],
                                  big["x"])


def test_template_refuses_dtypes_that_cannot_be_sent():
    with pytest.raises(WireError, match="complex64 cannot be sent"):
        make_template({"c": np.zeros(2, np.complex64)})


def test_max_frame_bytes_covers_the_largest_leaf(template):
    assert template.max_frame_bytes >= max(math.prod(s.shape) * s.dtype.itemsize
                                           for s in template.leaves)


def test_structure_hash_is_the_documented_text_digest():
    import hashlib

    text = "b|float32|3\nw|float32|2,3\ns|float64|"
    want = hashlib.sha256(text.encode()).hexdigest()[:16]
    t = make_template({"b": np.zeros(3, np.float32), "w": np.zeros((2, 3), np.float32),
                       "s": np.zeros((), np.float64)})
    assert [leaf.path for leaf in t.leaves] == ["b", "s", "w"]  # jax order: sorted keys
    assert structure_hash([("b", "float32", (3,)), ("w", "float32", (2, 3)),
                           ("s", "float64", ())]) == want
    assert t.struct_hash == hashlib.sha256(
        b"b|float32|3\ns|float64|\nw|float32|2,3").hexdigest()[:16]
