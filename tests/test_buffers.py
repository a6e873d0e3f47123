"""Aligned host buffers for the mix: contents, alignment, and JAX using them in place."""

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from gossip.peer.buffers import ALIGN, aligned_empty, stack_aligned


@pytest.mark.parametrize("shape, dtype", [((3, 5), np.float32), ((), np.float64),
                                          ((7,), ml_dtypes.bfloat16), ((2, 1), np.int32)])
def test_aligned_empty_shape_dtype_alignment(shape, dtype):
    a = aligned_empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    assert a.ctypes.data % ALIGN == 0


def test_stack_aligned_equals_np_stack_for_mixed_inputs():
    rng = np.random.default_rng(0)
    tree = {"w": rng.standard_normal((4, 3)).astype(np.float32), "b": np.arange(3.0)}
    frame = np.frombuffer(tree["w"].tobytes(), np.float32).reshape(4, 3)  # read-only view
    messages = [tree, {"w": frame, "b": jnp.asarray(tree["b"] + 1)},
                jax.tree.map(lambda x: x * 2, tree)]
    stacked = stack_aligned(messages)
    expected = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *messages)
    for got, want in zip(jax.tree.leaves(stacked), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype and got.ctypes.data % ALIGN == 0


def test_jax_uses_an_aligned_stack_in_place():
    # the point of the alignment: no second copy when the mix receives the stack
    stacked = stack_aligned([{"x": np.ones(1024, np.float32)}] * 2)["x"]
    assert jax.device_put(stacked).unsafe_buffer_pointer() == stacked.ctypes.data
