"""The dataset registry: ``DATASETS`` maps each name to its loader; ``load_dataset`` calls it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gossip.data.dataset import Dataset
from gossip.data.image import load_digits, load_idx, load_mnist1d
from gossip.data.least_squares import load_least_squares
from gossip.data.ratings import load_movielens, load_ratings_synthetic
from gossip.data.synthetic import load_npz, load_teacher_linear, load_teacher_logistic
from gossip.data.text import load_chars
from gossip.errors import ConfigError, unknown

Loader = Callable[[int, dict[str, Any]], Dataset]

DATASETS: dict[str, Loader] = {
    "digits": load_digits,
    "mnist1d": load_mnist1d,
    "teacher_linear": load_teacher_linear,
    "teacher_logistic": load_teacher_logistic,
    "least_squares": load_least_squares,
    "npz": load_npz,
    "idx": load_idx,
    "chars": load_chars,
    "ratings_synthetic": load_ratings_synthetic,
    "movielens": load_movielens,
}


def load_dataset(name: str, *, seed: int = 0, **options: Any) -> Dataset:
    """Loads a dataset by name; deterministic in ``(name, seed, options)``.

    Args:
        name: one of ``DATASETS``.
        seed: seeds the split (and the generator of synthetic data).
        **options: dataset-specific options (see each loader's docstring), e.g. ``path``.

    Returns:
        The ``Dataset``.

    Raises:
        ConfigError: unknown name or option, a bad option value, or a missing/bad file.
    """
    if name not in DATASETS:
        raise unknown("dataset", name, DATASETS)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"dataset seed must be an integer >= 0, got {seed!r}")
    return DATASETS[name](int(seed), dict(options))
