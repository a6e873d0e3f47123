"""Synthetic teacher-student datasets: linear regression and logistic classification.

A random teacher ``w* ~ N(0, I / dim)`` labels Gaussian inputs ``x ~ N(0, I)``, so the problem
has a known optimum; useful for checking convergence of gossip algorithms against theory.
"""

from __future__ import annotations

import zipfile
from typing import Any

import numpy as np

from gossip.data.dataset import (
    Dataset,
    fraction,
    positive_int,
    random_split,
    require_path,
    resolve_options,
)
from gossip.errors import ConfigError

_DEFAULTS = {"num_samples": 2000, "dim": 20, "noise": 0.1, "test_fraction": 0.2}


def _teacher(name: str, seed: int, options: dict[str, Any]):
    opts = resolve_options(name, options, _DEFAULTS)
    n = positive_int(name, "num_samples", opts["num_samples"], minimum=2)
    dim = positive_int(name, "dim", opts["dim"])
    noise = opts["noise"]
    if isinstance(noise, bool) or not isinstance(noise, int | float) or noise < 0:
        raise ConfigError(f"dataset {name!r}: option 'noise' must be a number >= 0, got {noise!r}")
    test_fraction = fraction(name, "test_fraction", opts["test_fraction"])
    rng = np.random.default_rng([int(seed), 0x7EAC4E2])
    w = rng.normal(0.0, 1.0 / np.sqrt(dim), size=dim)
    x = rng.normal(size=(n, dim))
    return x, w, float(noise), test_fraction, rng


def load_teacher_linear(seed: int, options: dict[str, Any]) -> Dataset:
    """Regression ``y = x . w* + noise * eps``: x ``(n, dim)`` float32, y ``(n,)`` float32.

    Options:
        num_samples: total samples (default 2000). dim: input dimension (default 20).
        noise: standard deviation of the Gaussian label noise (default 0.1).
        test_fraction: share held out for testing (default 0.2).
    """
    x, w, noise, test_fraction, rng = _teacher("teacher_linear", seed, options)
    y = x @ w + noise * rng.normal(size=len(x))
    tr, te = random_split(len(x), test_fraction, rng)
    x, y = x.astype(np.float32), y.astype(np.float32)
    meta = {"num_classes": None, "input_shape": (x.shape[1],)}
    return Dataset("teacher_linear", "regression", x[tr], y[tr], x[te], y[te], meta)


def load_teacher_logistic(seed: int, options: dict[str, Any]) -> Dataset:
    """Binary labels from a logistic teacher: ``P(y = 1 | x) = sigmoid(x . w* / noise)``.

    Sampled as ``y = 1[x . w* + noise * l > 0]`` with ``l`` standard logistic noise, so
    ``noise = 0`` gives a separable problem. x ``(n, dim)`` float32, y ``(n,)`` int32.

    Options:
        Same as ``teacher_linear``.
    """
    x, w, noise, test_fraction, rng = _teacher("teacher_logistic", seed, options)
    y = (x @ w + noise * rng.logistic(size=len(x)) > 0).astype(np.int32)
    tr, te = random_split(len(x), test_fraction, rng)
    x = x.astype(np.float32)
    meta = {"num_classes": 2, "input_shape": (x.shape[1],)}
    return Dataset("teacher_logistic", "classification", x[tr], y[tr], x[te], y[te], meta)


def load_npz(seed: int, options: dict[str, Any]) -> Dataset:
    """A user ``.npz`` file with arrays ``x_train, y_train, x_test, y_test``.

    x is cast to float32. Integer (or bool) y means classification with
    ``num_classes = max label + 1`` (y cast to int32); float y means regression (float32).

    Options:
        path: the ``.npz`` file.
    """
    del seed
    opts = resolve_options("npz", options, {"path": None})
    path = require_path("npz", opts["path"])
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"dataset 'npz': {path} is not an .npz archive (save it with "
                          "numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = ("x_train", "y_train", "x_test", "y_test")
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise ConfigError(f"dataset 'npz': {path} lacks keys {', '.join(missing)} "
                                  f"(needs {', '.join(keys)})")
            x_tr, y_tr, x_te, y_te = (np.asarray(f[k]) for k in keys)
    except ConfigError:
        raise
    except (OSError, ValueError) as e:
        raise ConfigError(f"dataset 'npz': cannot read {path}: {e}") from None
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise ConfigError(f"dataset 'npz': {path}: x_train samples have shape {x_tr.shape[1:]} "
                          f"but x_test samples {x_te.shape[1:]}")
    if any(not np.issubdtype(a.dtype, np.number) and a.dtype != bool
           for a in (x_tr, y_tr, x_te, y_te)):
        raise ConfigError(f"dataset 'npz': {path}: arrays must be numeric")
    integer = all(np.issubdtype(y.dtype, np.integer) or y.dtype == bool for y in (y_tr, y_te))
    if integer:
        lo = min(y_tr.min(initial=0), y_te.min(initial=0))
        if lo < 0:
            raise ConfigError(f"dataset 'npz': {path}: class labels must be >= 0, got {lo}")
        num_classes = int(max(y_tr.max(initial=0), y_te.max(initial=0))) + 1
        task, ydt = "classification", np.int32
    else:
        num_classes, task, ydt = None, "regression", np.float32
    meta = {"num_classes": num_classes, "input_shape": tuple(x_tr.shape[1:])}
    return Dataset("npz", task, x_tr.astype(np.float32), y_tr.astype(ydt),
                   x_te.astype(np.float32), y_te.astype(ydt), meta)
