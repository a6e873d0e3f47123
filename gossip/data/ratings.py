"""Rating-prediction datasets: synthetic low-rank ratings and MovieLens-100k ``u.data``.

Samples are observed ``(user, item)`` pairs: x ``(n, 2)`` int32 of 0-based ids, y ``(n,)``
float32 ratings in [1, 5]. Meta has ``n_users`` and ``n_items``.
"""

from __future__ import annotations

import os
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

TEST_SHARE = 0.1


def _ratings(name: str, users: np.ndarray, items: np.ndarray, ratings: np.ndarray,
             n_users: int, n_items: int, rng: np.random.Generator) -> Dataset:
    x = np.stack([users, items], axis=1).astype(np.int32)
    y = ratings.astype(np.float32)
    tr, te = random_split(len(x), TEST_SHARE, rng)
    meta = {"num_classes": None, "input_shape": (2,), "n_users": int(n_users),
            "n_items": int(n_items)}
    return Dataset(name, "ratings", x[tr], y[tr], x[te], y[te], meta)


def load_ratings_synthetic(seed: int, options: dict[str, Any]) -> Dataset:
    """Low-rank ratings ``clip(3 + u_i . v_j / sqrt(rank) + 0.1 eps, 1, 5)``.

    ``density * n_users * n_items`` distinct pairs are observed (at least 2); 90/10 random
    split.

    Options:
        n_users (default 200), n_items (default 300), rank (default 5),
        density: share of observed pairs, in (0, 1] (default 0.1).
    """
    name = "ratings_synthetic"
    opts = resolve_options(name, options,
                           {"n_users": 200, "n_items": 300, "rank": 5, "density": 0.1})
    n_users = positive_int(name, "n_users", opts["n_users"])
    n_items = positive_int(name, "n_items", opts["n_items"])
    rank = positive_int(name, "rank", opts["rank"])
    density = fraction(name, "density", opts["density"], high=1.0, inclusive=True)
    if density == 0:
        raise ConfigError(f"dataset {name!r}: option 'density' must be > 0, got {density}")
    total = n_users * n_items
    m = int(round(density * total))
    if m < 2:
        raise ConfigError(f"dataset {name!r}: density={density} observes {m} of {total} "
                          "pairs; need at least 2")
    rng = np.random.default_rng([int(seed), 0x2A71])
    u = rng.normal(size=(n_users, rank))
    v = rng.normal(size=(n_items, rank))
    flat = np.sort(rng.choice(total, size=m, replace=False))
    users, items = flat // n_items, flat % n_items
    score = np.einsum("nr,nr->n", u[users], v[items]) / np.sqrt(rank)
    r = np.clip(3.0 + score + 0.1 * rng.normal(size=m), 1.0, 5.0)
    return _ratings(name, users, items, r, n_users, n_items, rng)


def load_movielens(seed: int, options: dict[str, Any]) -> Dataset:
    """MovieLens-100k ``u.data`` (tab-separated ``user item rating timestamp``, 1-based ids).

    Ids become 0-based; ``n_users``/``n_items`` are the largest ids. 90/10 random split.

    Options:
        path: the ``u.data`` file, or a folder containing it.
    """
    opts = resolve_options("movielens", options, {"path": None})
    path = require_path("movielens", opts["path"])
    if os.path.isdir(path):
        path = os.path.join(path, "u.data")
        if not os.path.isfile(path):
            raise ConfigError(f"dataset 'movielens': file not found: {path}")
    try:
        table = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    except (OSError, ValueError) as e:
        raise ConfigError(f"dataset 'movielens': cannot parse {path} as tab-separated "
                          f"'user item rating timestamp' integers: {e}") from None
    if table.shape[0] < 2 or table.shape[1] < 3:
        raise ConfigError(f"dataset 'movielens': {path} needs at least 2 rows of "
                          f"'user item rating timestamp', got shape {table.shape}")
    users, items, ratings = table[:, 0], table[:, 1], table[:, 2]
    if users.min() < 1 or items.min() < 1:
        raise ConfigError(f"dataset 'movielens': {path}: user and item ids must be >= 1")
    rng = np.random.default_rng([int(seed), 0x100C])
    return _ratings("movielens", users - 1, items - 1, ratings, users.max(), items.max(), rng)
