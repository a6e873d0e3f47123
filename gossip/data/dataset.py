"""The ``Dataset`` type and the small helpers every loader shares (options, splits, files)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gossip import errors
from gossip.errors import ConfigError

TASKS = ("classification", "regression", "lm", "ratings")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split held in memory as numpy arrays.

    Attributes:
        name: the registry name the dataset was loaded under, e.g. ``"digits"``.
        task: one of ``"classification"``, ``"regression"``, ``"lm"`` (next-token
            classification over sequences) or ``"ratings"``.
        x_train: inputs, shape ``(n_train, *input_shape)``; float32 features, or int32 token
            ids (lm) / ``(user, item)`` ids (ratings).
        y_train: targets, shape ``(n_train,)`` (``(n_train, seq_len)`` for lm); int32 class
            labels or tokens, float32 regression targets or ratings.
        x_test: like ``x_train``, shape ``(n_test, *input_shape)``.
        y_test: like ``y_train``, leading dimension ``n_test``.
        meta: model-building facts: always ``num_classes`` (int for classification and lm,
            None otherwise) and ``input_shape``; for lm ``vocab_size`` and ``seq_len``; for
            ratings ``n_users`` and ``n_items``.
        shards: the dataset's own split among peers, or None (the usual case: a partition
            scheme splits it). When given, element ``i`` is the int64 index array of peer
            ``i``'s rows in ``x_train``; the run must have ``len(shards)`` peers and use the
            ``natural`` partition (see ``gossip.data.dataset_partition``).
        optimum: the exact minimiser of the training objective, or None when unknown: a
            float64 vector ``(P,)`` in the coordinates of the model's parameters flattened in
            pytree order (for ``least_squares``: the linear model's ``w``).
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    shards: tuple[np.ndarray, ...] | None = None
    optimum: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"dataset {self.name!r}: bad task {self.task!r}; valid: {TASKS}")
        for split, x, y in (("train", self.x_train, self.y_train),
                            ("test", self.x_test, self.y_test)):
            if len(x) != len(y):
                raise ConfigError(
                    f"dataset {self.name!r}: x_{split} has {len(x)} samples but y_{split} "
                    f"has {len(y)}")
        if self.shards is not None:
            rows = np.sort(np.concatenate(self.shards)) if self.shards else np.zeros(0)
            if (any(len(s) == 0 for s in self.shards)
                    or not np.array_equal(rows, np.arange(self.num_train))):
                raise ConfigError(f"dataset {self.name!r}: its shards must be non-empty, "
                                  "disjoint and cover the training set")

    @property
    def num_train(self) -> int:
        """Number of training samples."""
        return int(len(self.x_train))

    @property
    def num_test(self) -> int:
        """Number of test samples."""
        return int(len(self.x_test))


def resolve_options(name: str, given: Mapping[str, Any],
                    defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``gossip.errors.resolve_options`` for the options of dataset ``name``."""
    return errors.resolve_options(f"dataset {name!r}", given, defaults)


def positive_int(name: str, key: str, value: Any, minimum: int = 1) -> int:
    """``gossip.errors.check_int``: an option that is an integer ``>= minimum``, as ``int``."""
    return errors.check_int(f"dataset {name!r}: option {key!r}", value, minimum)


def fraction(name: str, key: str, value: Any, *, low: float = 0.0, high: float = 1.0,
             inclusive: bool = False) -> float:
    """Checks that an option is a number in ``(low, high)`` (or ``[low, high]``)."""
    ok = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = low <= v <= high if inclusive else low < v < high
    if not ok:
        brackets = "[]" if inclusive else "()"
        raise ConfigError(f"dataset {name!r}: option {key!r} must be in "
                          f"{brackets[0]}{low}, {high}{brackets[1]}, got {value!r}")
    return float(value)


def require_path(name: str, path: Any) -> str:
    """Checks that a ``path`` option was given and exists; returns it as a string.

    Raises:
        ConfigError: ``path`` is missing or names nothing on disk.
    """
    if path is None or path == "":
        raise ConfigError(f"dataset {name!r}: option 'path' is required")
    path = os.fspath(os.path.expanduser(os.fspath(path)))
    if not os.path.exists(path):
        raise ConfigError(f"dataset {name!r}: file not found: {path}")
    return path


def random_split(n: int, test_fraction: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Splits ``range(n)`` at random into train and test index arrays.

    Args:
        n: number of samples.
        test_fraction: share of samples that go to the test set; at least one sample goes to
            each side when ``n >= 2``.
        rng: the generator that draws the permutation.

    Returns:
        ``(train_idx, test_idx)``, int64 arrays of shapes ``(n - k,)`` and ``(k,)``.
    """
    perm = rng.permutation(n)
    k = int(round(n * test_fraction))
    k = min(max(k, 1), n - 1) if n >= 2 else 0
    return np.sort(perm[k:]), np.sort(perm[:k])
