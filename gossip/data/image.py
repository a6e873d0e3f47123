"""Image-like classification datasets: scikit-learn digits, MNIST-1D, and MNIST-format IDX files.

Nothing here downloads: ``digits`` ships with scikit-learn, MNIST-1D is generated offline
(Greydanus 2020, "Scaling down deep learning"), and ``idx`` reads files the user already has.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import random
import zlib
from typing import Any

import numpy as np

from gossip.data.dataset import Dataset, fraction, positive_int, require_path, resolve_options
from gossip.errors import ConfigError, optional_import


def load_digits(seed: int, options: dict[str, Any]) -> Dataset:
    """scikit-learn's 8x8 digits: x ``(n, 8, 8)`` float32 in [0, 1], 10 classes.

    Options:
        test_fraction: share of samples in the stratified, seeded test split (default 0.2).
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    opts = resolve_options("digits", options, {"test_fraction": 0.2})
    test_fraction = fraction("digits", "test_fraction", opts["test_fraction"])
    bunch = sk_load_digits()
    x = (bunch.images / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed)
    meta = {"num_classes": 10, "input_shape": (8, 8)}
    return Dataset("digits", "classification", x_tr, y_tr, x_te, y_te, meta)


@functools.lru_cache(maxsize=8)
def _mnist1d_arrays(num_samples: int, seed: int) -> tuple[np.ndarray, ...]:
    """Generates MNIST-1D once per process; restores the global RNG states afterwards."""
    data = optional_import("mnist1d.data", "mnist1d", "dataset 'mnist1d'")
    args = data.get_dataset_args()
    args.num_samples = num_samples
    args.seed = seed
    # make_dataset calls mnist1d's set_seed, which seeds both global generators.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = data.make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    arrays = (np.asarray(d["x"], np.float32), np.asarray(d["y"], np.int32),
              np.asarray(d["x_test"], np.float32), np.asarray(d["y_test"], np.int32))
    for a in arrays:
        a.setflags(write=False)
    return arrays


def load_mnist1d(seed: int, options: dict[str, Any]) -> Dataset:
    """MNIST-1D generated offline: x ``(n, 40)`` float32, 10 classes, mnist1d's 80/20 split.

    Options:
        num_samples: total samples before the split (default 5000; at least 10).
    """
    opts = resolve_options("mnist1d", options, {"num_samples": 5000})
    num_samples = positive_int("mnist1d", "num_samples", opts["num_samples"], minimum=10)
    x_tr, y_tr, x_te, y_te = (a.copy() for a in _mnist1d_arrays(num_samples, int(seed)))
    meta = {"num_classes": 10, "input_shape": tuple(x_tr.shape[1:])}
    return Dataset("mnist1d", "classification", x_tr, y_tr, x_te, y_te, meta)


# IDX dtype codes (http://yann.lecun.com/exdb/mnist/): code -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx(path: str) -> np.ndarray:
    """Parses one IDX file (optionally gzip-compressed, by a ``.gz`` suffix).

    The header is ``0x00 0x00 <dtype code> <ndim>`` followed by ``ndim`` big-endian uint32
    dimensions; the payload must be exactly ``prod(dims) * itemsize`` bytes.

    Args:
        path: the file to read.

    Returns:
        An array of shape ``dims`` in native byte order.

    Raises:
        ConfigError: naming the file, if the header or the byte length is wrong.
    """
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise ConfigError(f"IDX file {path}: cannot read ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ConfigError(f"IDX file {path}: bad magic number {raw[:4].hex() or '(empty)'}")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ConfigError(f"IDX file {path}: unknown dtype code 0x{code:02x}; valid: "
                          + ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES))
    if ndim < 1:
        raise ConfigError(f"IDX file {path}: header says 0 dimensions")
    if len(raw) < 4 + 4 * ndim:
        raise ConfigError(f"IDX file {path}: truncated header ({ndim} dimensions)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = math.prod(dims) * dtype.itemsize  # exact: no int64 overflow
    got = len(raw) - 4 - 4 * ndim
    if got != expected:
        raise ConfigError(f"IDX file {path}: expected {expected} data bytes for shape {dims}, "
                          f"got {got}")
    data = np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _find_idx(directory: str, stem: str) -> str:
    for candidate in (stem, stem + ".gz"):
        p = os.path.join(directory, candidate)
        if os.path.isfile(p):
            return p
    raise ConfigError(f"dataset 'idx': file not found: {os.path.join(directory, stem)}")


def load_idx(seed: int, options: dict[str, Any]) -> Dataset:
    """MNIST-format IDX files from a local directory: x ``(n, rows, cols)`` float32 in [0, 1].

    Options:
        path: directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
            ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``).
    """
    del seed  # the split is the files' own
    opts = resolve_options("idx", options, {"path": None})
    directory = require_path("idx", opts["path"])
    if not os.path.isdir(directory):
        raise ConfigError(f"dataset 'idx': option 'path' must be a directory, got {directory}")
    paths = [_find_idx(directory, stem) for stem in IDX_FILES]
    x_tr, y_tr, x_te, y_te = (read_idx(p) for p in paths)
    for p, x in ((paths[0], x_tr), (paths[2], x_te)):
        if x.ndim != 3:
            raise ConfigError(f"IDX file {p}: images must have 3 dimensions, got shape {x.shape}")
    for p, y in ((paths[1], y_tr), (paths[3], y_te)):
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise ConfigError(f"IDX file {p}: labels must be 1-D non-negative integers")
    for pi, pl, x, y in ((paths[0], paths[1], x_tr, y_tr), (paths[2], paths[3], x_te, y_te)):
        if len(x) != len(y):
            raise ConfigError(f"IDX file {pl}: {len(y)} labels for {len(x)} images in {pi}")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise ConfigError(f"IDX file {paths[2]}: image shape {x_te.shape[1:]} differs from "
                          f"the training images' {x_tr.shape[1:]}")

    def scale(x: np.ndarray) -> np.ndarray:
        if x.dtype == np.uint8:
            return (x / 255.0).astype(np.float32)
        return x.astype(np.float32)

    num_classes = int(max(y_tr.max(initial=0), y_te.max(initial=0))) + 1
    meta = {"num_classes": num_classes, "input_shape": tuple(x_tr.shape[1:])}
    return Dataset("idx", "classification", scale(x_tr), y_tr.astype(np.int32),
                   scale(x_te), y_te.astype(np.int32), meta)
