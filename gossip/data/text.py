"""Character-level language modelling on a local text file (default: the shipped corpus)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from gossip.data.dataset import Dataset, positive_int, require_path, resolve_options
from gossip.errors import ConfigError

DEFAULT_CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus",
                              "public_domain.txt")
TEST_SHARE = 0.1


def _windows(tokens: np.ndarray, seq_len: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Cuts ``tokens`` (shape ``(L,)``) into inputs and next-token targets.

    Returns:
        ``(x, y)``, both int32 of shape ``(k, seq_len)`` with ``y[i, t] = x[i, t + 1]`` inside
        a window; window ``i`` starts at ``i * stride``.
    """
    if len(tokens) < seq_len + 1:
        empty = np.zeros((0, seq_len), np.int32)
        return empty, empty.copy()
    view = np.lib.stride_tricks.sliding_window_view(tokens, seq_len + 1)[::stride]
    return view[:, :-1].astype(np.int32), view[:, 1:].astype(np.int32)


def load_chars(seed: int, options: dict[str, Any]) -> Dataset:
    """Character-level LM data: x and y ``(n, seq_len)`` int32, y = x shifted by one.

    The vocabulary is the sorted set of characters of the whole text; the last 10% of the
    text is the test set. Meta has ``vocab_size`` (= ``num_classes``), ``seq_len`` and
    ``vocab`` (the characters, in id order, as one string).

    Options:
        path: a UTF-8 text file (default: the shipped public-domain corpus).
        seq_len: window length (default 64).
        stride: distance between window starts (default ``seq_len``: non-overlapping).
    """
    del seed  # the windows are in text order; partitions shuffle them
    opts = resolve_options("chars", options, {"path": None, "seq_len": 64, "stride": None})
    path = require_path("chars", opts["path"] or DEFAULT_CORPUS)
    seq_len = positive_int("chars", "seq_len", opts["seq_len"])
    stride = seq_len if opts["stride"] is None else positive_int("chars", "stride",
                                                                 opts["stride"])
    if os.path.isdir(path):
        raise ConfigError(f"dataset 'chars': option 'path' must be a text file, got {path}")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"dataset 'chars': cannot read {path}: {e}") from None
    vocab = sorted(set(text))
    lookup = np.zeros(max((ord(c) for c in vocab), default=0) + 1, np.int32)
    lookup[[ord(c) for c in vocab]] = np.arange(len(vocab), dtype=np.int32)
    tokens = lookup[np.frombuffer(text.encode("utf-32-le"), np.uint32)] if text else lookup[:0]
    cut = int(len(tokens) * (1 - TEST_SHARE))
    x_tr, y_tr = _windows(tokens[:cut], seq_len, stride)
    x_te, y_te = _windows(tokens[cut:], seq_len, stride)
    if len(x_tr) == 0 or len(x_te) == 0:
        raise ConfigError(f"dataset 'chars': {path} has {len(text)} characters, too few for "
                          f"seq_len={seq_len} (its last 10% must hold one window of "
                          f"{seq_len + 1})")
    meta = {"num_classes": len(vocab), "input_shape": (seq_len,), "vocab_size": len(vocab),
            "seq_len": seq_len, "vocab": "".join(vocab)}
    return Dataset("chars", "lm", x_tr, y_tr, x_te, y_te, meta)
