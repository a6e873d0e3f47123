"""Compressed payloads on the wire: they travel compressed, and hostile ones are refused.

The template is the one a real peer builds (``gossip.peer.runtime``): the rule's message
shapes, and the rule's payload check against the operator's declared fields.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gossip.peer.inbox import Counters, Inbox
from gossip.peer.membership import Membership
from gossip.rules import make_rule
from gossip.wire import WireError, decode, encode, make_template

PARAMS = {"b": jnp.linspace(-1.0, 1.0, 4), "w": jnp.sin(jnp.arange(300.0))}


def _setup(**options):
    rule = make_rule(options.pop("rule", "choco"), **options)
    state = rule.init(PARAMS)
    template = make_template(jax.eval_shape(rule.message, PARAMS, state),
                             functools.partial(rule.check, params=jax.device_get(PARAMS)))
    payload = jax.device_get(rule.message(PARAMS, state))
    return rule, template, payload


def _frames(template, payload):
    return encode("gossip", 1, 0, template, payload)


def test_a_compressed_message_travels_compressed_and_decodes():
    _, template, payload = _setup(compress="top_k", compress_ratio=0.1)
    assert template.nbytes == (1 + 4) * 1 + (30 * 2 + 30 * 4)  # b: uint8+f32; w: 30 x (uint16+f32)
    msg = decode(_frames(template, payload), template, 4)
    assert msg.payload_bytes == template.nbytes
    np.testing.assert_array_equal(msg.payload["w"]["idx"], payload["w"]["idx"])


def _mutated(payload, leaf, field, edit):
    out = jax.tree.map(np.array, payload)  # writable copies
    edit(out[leaf][field])
    return out


def _set(i, v):
    def edit(a):
        a[i] = v
    return edit


SPARSE_CASES = {
    "index out of range": ("w", "idx", _set(-1, 400)),
    "duplicate index": ("w", "idx", lambda a: a.__setitem__(1, a[0])),
    "unsorted indices": ("w", "idx", lambda a: a.__setitem__(slice(None), a[::-1].copy())),
    "NaN value": ("w", "val", _set(0, np.nan)),
}


@pytest.mark.parametrize("case", sorted(SPARSE_CASES))
def test_hostile_sparse_payloads_are_rejected(case):
    _, template, payload = _setup(compress="top_k", compress_ratio=0.1)
    bad = _mutated(payload, *SPARSE_CASES[case])
    with pytest.raises(WireError, match="from peer 1, round 0"):
        decode(_frames(template, bad), template, 4)


QUANT_CASES = {
    "NaN scale": ("w", "scale", _set(0, np.nan)),
    "negative scale": ("w", "scale", _set(0, -1.0)),
    "code outside [-127, 127]": ("w", "codes", _set(0, -128)),
}


@pytest.mark.parametrize("case", sorted(QUANT_CASES))
def test_hostile_quantised_payloads_are_rejected(case):
    _, template, payload = _setup(rule="dpsgd", compress="int8")
    bad = _mutated(payload, *QUANT_CASES[case])
    with pytest.raises(WireError):
        decode(_frames(template, bad), template, 4)


def test_int4_codes_outside_the_range_and_truncated_or_miscounted_payloads_are_rejected():
    _, template, payload = _setup(rule="choco", compress="int4")
    bad = _mutated(payload, "w", "codes", _set(0, 0))  # nibble 0 is code -8
    with pytest.raises(WireError, match="4-bit code"):
        decode(_frames(template, bad), template, 4)
    frames = _frames(template, payload)
    truncated = [*frames[:-1], bytes(frames[-1])[:-1]]
    with pytest.raises(WireError, match="bytes"):
        decode(truncated, template, 4)
    # A sender with another ratio (more indices) has another structure: refused.
    _, other, more = _setup(compress="top_k", compress_ratio=0.2)
    _, template, _ = _setup(compress="top_k", compress_ratio=0.1)
    with pytest.raises(WireError):
        decode(_frames(other, more), template, 4)


def test_the_inbox_counts_and_drops_a_hostile_compressed_message():
    _, template, payload = _setup(compress="top_k", compress_ratio=0.1)
    box = Inbox(transport=None, template=template, n_peers=4, max_ahead=2, counters=Counters(),
                membership=Membership(5.0, catchup_after=3), params_template=None)
    box.expect(0, {1})
    box.handle(encode("hello", 1, 0, template))
    box.handle(_frames(template, _mutated(payload, *SPARSE_CASES["duplicate index"])))
    assert box.counters.messages_rejected == 1
    assert box.wait_round(0, timeout=0.0) == {}  # nothing to mix: the parameters stay
    box.handle(_frames(template, payload))
    assert box.counters.messages_rejected == 1
