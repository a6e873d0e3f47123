"""Compression operators for gossip messages (pure JAX) and error feedback."""

from gossip.compress.operators import (
    COMPRESSORS,
    SPARSIFIERS,
    Compressor,
    index_dtype,
    kept,
    make_compressor,
)
from gossip.compress.tree import (
    ErrorFeedback,
    check_tree,
    decode_tree,
    encode_tree,
    error_feedback,
    spec_tree,
)

__all__ = [
    "COMPRESSORS",
    "SPARSIFIERS",
    "Compressor",
    "ErrorFeedback",
    "check_tree",
    "decode_tree",
    "encode_tree",
    "error_feedback",
    "index_dtype",
    "kept",
    "make_compressor",
    "spec_tree",
]
