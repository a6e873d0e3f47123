"""Pytree helpers: stable leaf paths, sizes, and ``.npz`` files keyed by leaf path."""

from __future__ import annotations

from collections.abc import Mapping
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


def tree_from_arrays(arrays: Mapping[str, np.ndarray], like: Any, where: str, *,
                     finite: bool = False, error: type[ValueError] = ValueError) -> Any:
    """Arrays keyed by leaf path, checked against a template, in the template's structure.

    Both ``.npz`` readers use it: ``load_npz`` and ``gossip.peer.checkpoint.load_checkpoint``.

    Args:
        arrays: arrays keyed by ``leaf_paths`` (an open ``.npz`` file or a dict); keys that
            are not leaves of ``like`` are ignored.
        like: the template: a pytree whose leaves are arrays or ``jax.ShapeDtypeStruct``.
        where: what errors name the arrays by, e.g. the file.
        finite: also refuse a floating leaf that holds NaN or infinity.
        error: the exception raised (a ``ValueError``).

    Returns:
        A pytree with the structure of ``like`` whose leaves are the arrays, each of its
        template leaf's shape and dtype.

    Raises:
        ValueError: ``error``, one line: ``WHERE: leaf 'Dense_0/kernel' is float32[3, 2],
            expected float32[4, 2]``, ``... is missing`` or ``... is not finite``.
    """
    leaves = []
    for key, ref in zip(leaf_paths(like), jax.tree.leaves(like), strict=True):
        if key not in arrays:
            raise error(f"{where}: leaf {key!r} is missing")
        arr = arrays[key]
        if arr.shape != tuple(ref.shape) or arr.dtype != np.dtype(ref.dtype):
            raise error(f"{where}: leaf {key!r} is {describe(arr)}, expected {describe(ref)}")
        if finite and jax.dtypes.issubdtype(arr.dtype, np.inexact) and not np.isfinite(arr).all():
            raise error(f"{where}: leaf {key!r} is not finite")
        leaves.append(arr)
    return jax.tree.unflatten(jax.tree.structure(like), leaves)


def load_npz(path: str | Path, like: Any) -> Any:
    """Reads a ``.npz`` written by ``save_npz`` into the structure of ``like``.

    Raises:
        ValueError: a leaf is missing or its shape or dtype differs from ``like``'s.
    """
    with np.load(path, allow_pickle=False) as data:
        return tree_from_arrays(data, like, str(path))
