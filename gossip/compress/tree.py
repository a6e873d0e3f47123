"""Compressing a whole message (a pytree), and error feedback.

A compressed message keeps the structure of the uncompressed one with every leaf replaced
by the dict of its operator's fields: ``{"w": x}`` becomes ``{"w": {"idx": ..., "val": ...}}``.
Leaf ``i`` is encoded with ``fold_in(key, i)``.

Error feedback (Seide et al. 2014; Karimireddy et al. 2019) keeps the residual e of what
compression dropped and adds it to the next input: ``q = Q(x + e)``, ``e' = x + e − D(q)``,
so nothing is lost for good (``D(q) + e' = x + e``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gossip.compress.operators import Compressor

Tree = Any


def encode_tree(comp: Compressor, tree: Tree, key: jax.Array) -> Tree:
    """Encodes every leaf: a tree like ``tree`` whose leaves are dicts of fields."""
    leaves, treedef = jax.tree.flatten(tree)
    return jax.tree.unflatten(treedef, [comp.encode(x, jax.random.fold_in(key, i))
                                        for i, x in enumerate(leaves)])


def decode_tree(comp: Compressor, encoded: Tree, like: Tree) -> Tree:
    """Decodes an encoded tree into a tree like ``like`` (shapes and dtypes from ``like``)."""
    leaves, treedef = jax.tree.flatten(like)
    fields = treedef.flatten_up_to(encoded)
    return jax.tree.unflatten(treedef, [comp.decode(f, x.shape, x.dtype)
                                        for f, x in zip(fields, leaves, strict=True)])


def spec_tree(comp: Compressor, like: Tree) -> Tree:
    """The declared fields of every leaf (``jax.ShapeDtypeStruct``), structured like an
    encoded tree."""
    leaves, treedef = jax.tree.flatten(like)
    return jax.tree.unflatten(treedef, [comp.spec(tuple(x.shape), x.dtype) for x in leaves])


def check_tree(comp: Compressor, encoded: Tree, like: Tree) -> None:
    """Validates received (numpy) fields against the operator's declared ones.

    Raises:
        ValueError: naming the leaf and the field that failed.
    """
    leaves, treedef = jax.tree.flatten(like)
    fields = treedef.flatten_up_to(encoded)
    for i, (f, x) in enumerate(zip(fields, leaves, strict=True)):
        try:
            comp.check({k: np.asarray(v) for k, v in f.items()}, tuple(x.shape))
        except ValueError as e:
            raise ValueError(f"leaf {i}: {e}") from None


class ErrorFeedback(NamedTuple):
    """An operator with error feedback: ``compress(x, e, key) -> (encoded, e')``.

    Attributes:
        compressor: the operator.
        init: ``init(like) -> e``: zero residuals like the message.
        compress: ``compress(x, e, key) -> (encoded, e')`` with ``q = Q(x + e)`` and
            ``e' = x + e − D(q)``.
    """

    compressor: Compressor
    init: Any
    compress: Any


def error_feedback(comp: Compressor) -> ErrorFeedback:
    """Wraps an operator with error feedback."""

    def init(like: Tree) -> Tree:
        return jax.tree.map(jnp.zeros_like, like)

    def compress(x: Tree, residual: Tree, key: jax.Array) -> tuple[Tree, Tree]:
        corrected = jax.tree.map(jnp.add, x, residual)
        encoded = encode_tree(comp, corrected, key)
        sent = decode_tree(comp, encoded, x)
        return encoded, jax.tree.map(jnp.subtract, corrected, sent)

    return ErrorFeedback(comp, init, compress)
