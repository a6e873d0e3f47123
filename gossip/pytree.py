"""Pytree helpers: stable leaf paths, sizes, and ``.npz`` files keyed by leaf path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import jax
import numpy as np


def _key_name(entry: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def leaf_paths(tree: Any) -> list[str]:
    """The ``/``-joined path of every leaf, in ``jax.tree.leaves`` order.

    Example: ``{"Dense_0": {"kernel": k}}`` gives ``["Dense_0/kernel"]``.
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return ["/".join(_key_name(e) for e in path) for path, _ in flat]


def describe(x: Any) -> str:
    """``float32[3, 2]``: the dtype and shape of an array or ``ShapeDtypeStruct``."""
    return f"{np.dtype(x.dtype)}{list(x.shape)}"


def tree_nbytes(tree: Any) -> int:
    """Total bytes of the leaves (arrays or ``ShapeDtypeStruct``)."""
    return int(sum(np.prod(x.shape, dtype=np.int64) * np.dtype(x.dtype).itemsize
                   for x in jax.tree.leaves(tree)))


def save_npz(path: str | Path | BinaryIO, tree: Any) -> None:
    """Writes a pytree of arrays as ``.npz`` with keys = leaf paths.

    ``path`` is a file name or a binary file open for writing.
    """
    arrays = dict(zip(leaf_paths(tree), (np.asarray(x) for x in jax.tree.leaves(tree)),
                      strict=True))
    np.savez(path, **arrays)


def load_npz(path: str | Path, like: Any) -> Any:
    """Reads a ``.npz`` written by ``save_npz`` into the structure of ``like``.

    Raises:
        ValueError: a leaf is missing or its shape or dtype differs from ``like``'s.
    """
    with np.load(path, allow_pickle=False) as data:
        leaves = []
        for name, ref in zip(leaf_paths(like), jax.tree.leaves(like), strict=True):
            if name not in data:
                raise ValueError(f"{path}: missing leaf {name!r}")
            arr = data[name]
            if arr.shape != tuple(ref.shape) or arr.dtype != np.dtype(ref.dtype):
                raise ValueError(f"{path}: leaf {name!r} is {describe(arr)}, "
                                 f"expected {describe(ref)}")
            leaves.append(arr)
    return jax.tree.unflatten(jax.tree.structure(like), leaves)
