"""Property-based fuzzing of the wire codec: any bytes decode to a valid message or a WireError.

Seeded (``derandomize=True``) so a failure reproduces; no example database is written.
"""

import contextlib

import jax
import msgpack
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossip.wire import WireError, decode, encode, make_template, read_header

N = 4
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=400,
                suppress_health_check=[HealthCheck.too_slow])


def payload():
    return {"b": np.arange(3, dtype=np.float32), "s": np.asarray(2.0, np.float64),
            "w": np.ones((2, 3), np.float32), "n": np.arange(4, dtype=np.int16)}


TEMPLATE = make_template(payload())
PARAMS = make_template({"p": np.zeros(5, np.float32)})
VALID = {kind: encode(kind, 1, 3, TEMPLATE, payload() if kind == "gossip" else None)
         for kind in ("gossip", "hello", "heartbeat", "state_request", "bye")}
VALID["state"] = encode("state", 2, 4, PARAMS, {"p": np.ones(5, np.float32)})

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=12)


def outcome(frames):
    """Decodes ``frames``: the message, or the WireError; anything else escapes and fails."""
    try:
        return decode(frames, TEMPLATE, N, PARAMS)
    except WireError as e:
        assert str(e) and "\n" not in str(e)
        return e


def as_bytes(frames):
    return [bytes(memoryview(f).cast("B")) if not isinstance(f, bytes) else f for f in frames]


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=7))
def test_any_frames_decode_or_raise_a_wire_error(frames):
    outcome(frames)


@FUZZ
@given(kind=st.sampled_from(sorted(VALID)), data=st.data())
def test_bit_flips_truncations_and_frame_changes(kind, data):
    frames = as_bytes(VALID[kind])
    ops = data.draw(st.lists(st.sampled_from(["flip", "truncate", "drop", "duplicate",
                                              "extend"]), min_size=1, max_size=4))
    for op in ops:
        if not frames:
            break
        i = data.draw(st.integers(0, len(frames) - 1))
        frame = bytearray(frames[i])
        if op == "flip" and frame:
            pos = data.draw(st.integers(0, len(frame) - 1))
            frame[pos] ^= 1 << data.draw(st.integers(0, 7))
            frames[i] = bytes(frame)
        elif op == "truncate":
            frames[i] = bytes(frame[:data.draw(st.integers(0, len(frame)))])
        elif op == "drop":
            del frames[i]
        elif op == "duplicate":
            frames.insert(i, frames[i])
        else:
            frames[i] = bytes(frame) + data.draw(st.binary(min_size=1, max_size=16))
    result = outcome(frames)
    if not isinstance(result, WireError):  # still valid: it says what the frames say
        assert result.kind in VALID and 0 <= result.sender < N


@FUZZ
@given(kind=st.sampled_from(sorted(VALID)), key=st.sampled_from(
    ["v", "kind", "sender", "round", "struct", "leaves", "extra"]), value=msgpack_values)
def test_any_header_value_is_checked(kind, key, value):
    header = msgpack.unpackb(VALID[kind][0])
    header[key] = value
    result = outcome([msgpack.packb(header), *VALID[kind][1:]])
    if key == "extra":
        assert isinstance(result, WireError) and "unexpected key" in str(result)


@FUZZ
@given(leaf=st.integers(0, len(TEMPLATE.leaves) - 1), field=st.integers(0, 4),
       value=msgpack_values)
def test_any_leaf_entry_value_is_checked(leaf, field, value):
    header = msgpack.unpackb(VALID["gossip"][0])
    header["leaves"][leaf][field] = value
    outcome([msgpack.packb(header), *VALID["gossip"][1:]])


@FUZZ
@given(st.data())
def test_any_leaf_bytes_decode_to_exactly_those_values_or_a_nan_rejection(data):
    frames = as_bytes(VALID["gossip"])
    for i in range(1, len(frames)):
        frames[i] = data.draw(st.binary(min_size=len(frames[i]), max_size=len(frames[i])))
    result = outcome(frames)
    if isinstance(result, WireError):
        assert "contains NaN or Inf" in str(result)
    else:
        for got, frame in zip(jax.tree.leaves(result.payload), frames[1:], strict=True):
            assert got.tobytes() == frame


@FUZZ
@given(st.binary(max_size=2000))
def test_read_header_never_raises_anything_else(blob):
    with contextlib.suppress(WireError):
        read_header([blob], TEMPLATE, N, PARAMS)


def test_float_nbytes_and_extra_keys_are_refused():
    header = msgpack.unpackb(VALID["gossip"][0])
    header["leaves"][0][3] = float(header["leaves"][0][3])
    assert "bytes, shape x itemsize" in str(outcome([msgpack.packb(header),
                                                     *VALID["gossip"][1:]]))
    header = msgpack.unpackb(VALID["hello"][0]) | {"weight": 1.0}
    assert "unexpected key(s) 'weight'" in str(outcome([msgpack.packb(header)]))
