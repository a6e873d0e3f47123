"""Host buffers for the mix: the K received messages stacked once, where JAX can use them.

A received leaf is a read-only view of a libzmq frame, whose data is only 16-byte aligned.
JAX on CPU takes a host array without copying only when it is 64-byte aligned; anything else
it copies when the jitted mix receives it. Stacking the K messages with ``np.stack`` and
handing the result to the mix therefore copied every byte twice (the stack, then JAX's
copy). ``stack_aligned`` copies each message once, into one 64-byte aligned (K, ...) array
per leaf that JAX then uses in place (``docs/benchmarks.md``, the wire path's stages).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

ALIGN = 64
"""Bytes: the alignment at which JAX's CPU client uses a host buffer without copying it."""


def aligned_empty(shape: tuple[int, ...], dtype: Any, align: int = ALIGN) -> np.ndarray:
    """An uninitialised array whose data starts on an ``align``-byte boundary.

    Args:
        shape: the array's shape.
        dtype: its dtype.
        align: the alignment in bytes (a power of two).

    Returns:
        A writeable C-contiguous array of ``shape`` and ``dtype``.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def stack_aligned(messages: Sequence[Any]) -> Any:
    """Stacks K messages (pytrees of the same structure) into leaves (K, ...), 64-byte aligned.

    Each message's leaf is copied once, into its slot; numpy, JAX and zero-copy views of
    received frames are all accepted.

    Args:
        messages: K >= 1 pytrees with the same structure, shapes and dtypes.

    Returns:
        One pytree like the messages with leaves of shape (K, *leaf_shape).
    """
    def leaf(*xs: Any) -> np.ndarray:
        first = np.asarray(xs[0])
        out = aligned_empty((len(xs), *first.shape), first.dtype)
        for k, x in enumerate(xs):
            out[k] = np.asarray(x)
        return out

    return jax.tree.map(leaf, *messages)
