"""Conformance suite of the compression operators: every operator through the same properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gossip.compress import (
    COMPRESSORS,
    check_tree,
    decode_tree,
    encode_tree,
    error_feedback,
    index_dtype,
    make_compressor,
    spec_tree,
)
from gossip.errors import ConfigError

NAMES = sorted(COMPRESSORS)
SHAPES = [(1,), (7, 45), (300,)]


def _x(shape, seed=0):
    return jax.random.normal(jax.random.key(seed), shape)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_fields_match_the_declared_spec_and_pass_the_check(name, shape):
    comp = make_compressor(name, 0.1)
    x = _x(shape)
    fields = jax.jit(comp.encode)(x, jax.random.key(1))
    spec = comp.spec(shape, x.dtype)
    assert sorted(fields) == sorted(spec)
    for k, v in fields.items():
        assert (v.shape, v.dtype) == (spec[k].shape, spec[k].dtype), (k, v.shape, v.dtype)
    comp.check({k: np.asarray(v) for k, v in fields.items()}, shape)
    out = jax.jit(comp.decode, static_argnums=(1, 2))(fields, shape, x.dtype)
    assert out.shape == x.shape and out.dtype == x.dtype


@pytest.mark.parametrize("name", NAMES)
def test_contraction_holds_with_the_declared_delta(name):
    comp = make_compressor(name, 0.05)
    for seed in range(3):
        x = _x((7, 45), seed) * jnp.exp(_x((7, 45), seed + 10))  # uneven magnitudes
        d = x.size
        if comp.random:  # in expectation over the key
            errs = jax.jit(jax.vmap(lambda k, x=x: jnp.sum(
                (comp.decode(comp.encode(x, k), x.shape, x.dtype) - x) ** 2)))(
                jax.random.split(jax.random.key(seed), 200))
            err = float(np.mean(errs))
            bound = (1 - comp.delta(d)) * float(jnp.sum(x ** 2))
            assert err <= 1.05 * bound, (err, bound)
        else:
            err = float(jnp.sum((comp.decode(comp.encode(x, None), x.shape, x.dtype) - x) ** 2))
            assert err <= (1 - comp.delta(d)) * float(jnp.sum(x ** 2)) * (1 + 1e-5) + 1e-12
        assert 0 < comp.delta(d) <= 1


def test_rand_k_is_unbiased_with_its_scale():
    comp = make_compressor("rand_k", 0.1)
    x = _x((50,))
    scale = comp.unbiased_scale(50)
    assert scale == pytest.approx(10.0)
    draws = jax.vmap(lambda k: comp.decode(comp.encode(x, k), x.shape, x.dtype))(
        jax.random.split(jax.random.key(3), 4000))
    np.testing.assert_allclose(scale * draws.mean(0), x, atol=0.3)  # ~5 sigma of 4000 draws
    assert all(make_compressor(n).unbiased_scale is None for n in NAMES if n != "rand_k")


def test_exact_cases():
    x = jnp.array([0.5, -3.0, 2.0, 0.0, 1.0])
    top = make_compressor("top_k", 0.4)  # k = 2
    f = top.encode(x, None)
    np.testing.assert_array_equal(f["idx"], [1, 2])
    np.testing.assert_allclose(top.decode(f, (5,), jnp.float32), [0, -3, 2, 0, 0])
    sign = make_compressor("sign")
    np.testing.assert_allclose(sign.decode(sign.encode(x, None), (5,), jnp.float32),
                               [1.3, -1.3, 1.3, 1.3, 1.3], rtol=1e-6)
    for name, levels in (("int8", 127), ("int4", 7)):
        q = make_compressor(name, block=0)
        f = q.encode(x, None)
        np.testing.assert_allclose(f["scale"], [3.0 / levels], rtol=1e-6)
        np.testing.assert_allclose(q.decode(f, (5,), jnp.float32), x, atol=1.5 / levels + 1e-6)
    assert index_dtype(256) == np.uint8 and index_dtype(257) == np.uint16
    assert index_dtype(70000) == np.uint32


@pytest.mark.parametrize("name", NAMES)
def test_error_feedback_residual_algebra(name):
    ef = error_feedback(make_compressor(name, 0.1))
    tree = {"a": _x((7, 45)), "b": _x((3,), 1)}
    residual = ef.init(tree)
    total_in = jax.tree.map(jnp.zeros_like, tree)
    total_out = jax.tree.map(jnp.zeros_like, tree)
    for t in range(5):
        x = jax.tree.map(lambda a, t=t: a * (1 + t), tree)
        encoded, new = ef.compress(x, residual, jax.random.key(t))
        sent = decode_tree(ef.compressor, encoded, x)
        for k in tree:  # D(q) + e' = x + e
            np.testing.assert_allclose(sent[k] + new[k], x[k] + residual[k], rtol=1e-5,
                                       atol=1e-5)
        total_in = jax.tree.map(jnp.add, total_in, x)
        total_out = jax.tree.map(jnp.add, total_out, sent)
        residual = new
    for k in tree:  # what was sent plus what is still owed is all that went in
        np.testing.assert_allclose(total_out[k] + residual[k], total_in[k], rtol=1e-4,
                                   atol=1e-4)


def test_tree_helpers_and_the_check_of_hostile_fields():
    comp = make_compressor("top_k", 0.1)
    like = {"w": jnp.zeros((300,)), "b": jnp.zeros((4,))}
    tree = {"w": _x((300,)), "b": _x((4,), 1)}
    enc = encode_tree(comp, tree, jax.random.key(0))
    assert jax.tree.map(lambda a: (a.shape, a.dtype), enc) == jax.tree.map(
        lambda s: (s.shape, s.dtype), spec_tree(comp, like))
    check_tree(comp, jax.device_get(enc), like)
    bad = jax.device_get(enc)
    bad["w"]["idx"] = bad["w"]["idx"].copy()
    bad["w"]["idx"][1] = bad["w"]["idx"][0]
    with pytest.raises(ValueError, match="sorted and unique"):
        check_tree(comp, bad, like)


def test_bad_options_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown compression operator 'zip'"):
        make_compressor("zip")
    for ratio in (0, 1.5, -0.1):
        with pytest.raises(ConfigError, match=r"compress_ratio must be in \(0, 1\]"):
            make_compressor("top_k", ratio)
