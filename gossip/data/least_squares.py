"""``least_squares``: one linear regression problem per peer, with a known global optimum.

Peer ``i`` holds ``(A_i, b_i)`` with rows ``a ~ N(0, I_d)`` and ``b = a . w_i* + noise * eps``.
The peers' own optima differ: ``w_i* = w* + heterogeneity * xi_i`` with ``w*`` and ``xi_i``
drawn from ``N(0, I_d / d)``. The run minimises ``sum_i f_i(w)``, ``f_i`` peer ``i``'s
full-shard mean squared error; with equal shards its minimiser ``x*`` is the least-squares
solution over every training row, computed in closed form (``Dataset.optimum``). Decentralized
algorithms can then be checked against it exactly (the ``opt_distance`` metrics).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gossip.data.dataset import Dataset, positive_int, resolve_options
from gossip.errors import ConfigError

NAME = "least_squares"
_DEFAULTS = {"peers": 16, "rows_per_peer": 50, "test_rows_per_peer": 20, "dim": 10,
             "heterogeneity": 1.0, "noise": 0.1}


def _nonnegative(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not (
            np.isfinite(value) and value >= 0):
        raise ConfigError(f"dataset {NAME!r}: option {key!r} must be a number >= 0, "
                          f"got {value!r}")
    return float(value)


def global_optimum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The least-squares solution ``argmin_w ||x w - y||^2`` in float64: ``(R, d), (R,) -> (d,)``.

    With every peer holding the same number of rows this minimises ``sum_i f_i``, the sum of
    the peers' mean squared errors, since each ``f_i`` is the same multiple of its squared sum.
    """
    w, *_ = np.linalg.lstsq(x.astype(np.float64), y.astype(np.float64), rcond=None)
    return w


def load_least_squares(seed: int, options: dict[str, Any]) -> Dataset:
    """Regression with one least-squares problem per peer: x ``(n, dim)``, y ``(n,)`` float32.

    Training rows are grouped by peer: rows ``[i * r, (i + 1) * r)`` (``r = rows_per_peer``)
    are peer ``i``'s ``(A_i, b_i)``, and ``Dataset.shards`` binds them to peer ``i`` (the
    ``natural`` partition). The test set holds ``test_rows_per_peer`` fresh rows from every
    peer's distribution (the same ``w_i*``, new ``a`` and noise), grouped by peer likewise.
    ``Dataset.optimum`` is ``x*``, the least-squares solution over all training rows.

    Options:
        peers: number of peers; must equal the run's (default 16).
        rows_per_peer: training rows per peer (default 50).
        test_rows_per_peer: held-out rows per peer (default 20).
        dim: dimension ``d`` of ``w`` (default 10); ``peers * rows_per_peer >= dim``.
        heterogeneity: spread of the local optima around ``w*`` (default 1.0; 0 gives every
            peer the same ``w_i* = w*``).
        noise: standard deviation of the label noise (default 0.1).

    Raises:
        ConfigError: an unknown option or a bad value.
    """
    opts = resolve_options(NAME, options, _DEFAULTS)
    peers = positive_int(NAME, "peers", opts["peers"])
    rows = positive_int(NAME, "rows_per_peer", opts["rows_per_peer"])
    test_rows = positive_int(NAME, "test_rows_per_peer", opts["test_rows_per_peer"])
    dim = positive_int(NAME, "dim", opts["dim"])
    heterogeneity = _nonnegative("heterogeneity", opts["heterogeneity"])
    noise = _nonnegative("noise", opts["noise"])
    if peers * rows < dim:
        raise ConfigError(f"dataset {NAME!r}: peers x rows_per_peer = {peers * rows} rows "
                          f"cannot determine dim = {dim} unknowns; need at least {dim} rows")
    rng = np.random.default_rng([int(seed), 0x1EA57])
    w_star = rng.normal(0.0, 1.0 / np.sqrt(dim), size=dim)
    local = w_star + heterogeneity * rng.normal(0.0, 1.0 / np.sqrt(dim), size=(peers, dim))

    def draw(k: int) -> tuple[np.ndarray, np.ndarray]:  # k rows from each peer, by peer
        a = rng.normal(size=(peers, k, dim))
        b = np.einsum("pkd,pd->pk", a, local) + noise * rng.normal(size=(peers, k))
        return (a.reshape(peers * k, dim).astype(np.float32),
                b.reshape(peers * k).astype(np.float32))

    x_train, y_train = draw(rows)
    x_test, y_test = draw(test_rows)
    shards = tuple(np.arange(i * rows, (i + 1) * rows, dtype=np.int64) for i in range(peers))
    meta = {"num_classes": None, "input_shape": (dim,)}
    return Dataset(NAME, "regression", x_train, y_train, x_test, y_test, meta,
                   shards=shards, optimum=global_optimum(x_train, y_train))
