"""Splitting a training set among peers: IID and the standard non-IID schemes.

Every scheme is a pure function of ``(labels, n, seed, options)`` and uses every training
sample exactly once (disjoint shards that cover the training set), so a real peer can
recompute its own shard (``peer_shard``) and get exactly what the simulator gives it.

Schemes:
    ``iid``: a random permutation cut into ``n`` near-equal shards.
    ``dirichlet``: per-class label skew, the "LDA" split of Hsu, Qi & Brown 2019, "Measuring
        the effects of non-identical data distribution for federated visual classification"
        (also Yurochkin et al. 2019; Wang et al. 2020, FedMA). For each class ``c``, its samples
        are shuffled and cut among the peers with proportions ``q_c ~ Dir(alpha * 1_n)``.
        Small ``alpha`` (0.1) gives strong skew; large ``alpha`` approaches IID. Shard sizes
        vary; draws are repeated with derived seeds until every peer has ``min_size`` samples.
    ``dirichlet_peer``: per-peer class mix, the variant of Hsu et al. 2019 (Sec. 3) where each
        peer draws its class distribution ``p_i ~ Dir(alpha * 1_C)`` and then draws its samples
        by ``p_i`` without replacement; a class that runs out is dropped from the mix and the
        rest renormalised. Shard sizes are equal (``N // n`` or one more).
    ``shards``: pathological non-IID of McMahan et al. 2017, "Communication-efficient learning
        of deep networks from decentralized data" (FedAvg): sort by label, cut into
        ``shards_per_peer * n`` shards, give each peer ``shards_per_peer`` random shards.
    ``quantity``: quantity skew (Li et al. 2022, "Federated learning on non-IID data silos:
        an experimental study"): IID labels, shard sizes ``min_size + Dir(alpha * 1_n)`` share
        of the remaining samples.

``dirichlet``, ``dirichlet_peer`` and ``shards`` need 1-D integer class labels; ``iid`` and
``quantity`` work for any targets (regression, lm, ratings).

A dataset may instead bring its own split (``Dataset.shards``, e.g. ``least_squares``, where
peer ``i``'s rows come from peer ``i``'s own problem). ``dataset_partition`` is what runs use:
it takes that split under the scheme name ``natural`` (``default`` picks ``natural`` for such
a dataset and ``iid`` for any other) and refuses every other scheme for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gossip.data.dataset import Dataset
from gossip.errors import ConfigError, check_int, unknown

MAX_TRIES = 100


def _iid(labels, n, rng, alpha, shards_per_peer, min_size):
    return np.array_split(rng.permutation(len(labels)), n)


def _split_by_sizes(order: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    return np.split(order, np.cumsum(sizes)[:-1])


def _group_by_peer(owner: np.ndarray, n: int) -> list[np.ndarray]:
    """Turns ``owner`` (shape ``(N,)``, peer id of each sample) into per-peer index arrays."""
    order = np.argsort(owner, kind="stable")
    return _split_by_sizes(order, np.bincount(owner, minlength=n))


def _dirichlet(labels, n, rng, alpha, shards_per_peer, min_size):
    _, cls = np.unique(labels, return_inverse=True)
    owner = np.empty(len(labels), np.int64)
    for c in range(int(cls.max()) + 1):
        idx = rng.permutation(np.flatnonzero(cls == c))
        q = rng.dirichlet(np.full(n, alpha))
        cuts = np.round(np.cumsum(q)[:-1] * len(idx)).astype(np.int64)
        counts = np.diff(np.concatenate([[0], cuts, [len(idx)]]))
        owner[idx] = np.repeat(np.arange(n), counts)
    return _group_by_peer(owner, n)


def _dirichlet_peer(labels, n, rng, alpha, shards_per_peer, min_size):
    _, cls = np.unique(labels, return_inverse=True)
    num_classes = int(cls.max()) + 1
    pools = [list(rng.permutation(np.flatnonzero(cls == c))) for c in range(num_classes)]
    left = np.array([len(p) for p in pools], np.int64)
    sizes = np.full(n, len(labels) // n)
    sizes[: len(labels) % n] += 1
    shards = []
    for i in range(n):
        p = rng.dirichlet(np.full(num_classes, alpha))
        take = np.zeros(num_classes, np.int64)
        need = int(sizes[i])
        while need > 0:
            avail = left - take
            w = np.where(avail > 0, p, 0.0)
            if w.sum() <= 0:  # the mix is all on exhausted classes (or underflowed)
                w = avail.astype(np.float64)
            draw = np.minimum(rng.multinomial(need, w / w.sum()), avail)
            take += draw
            need -= int(draw.sum())
        parts = []
        for c in np.flatnonzero(take):
            k = int(take[c])
            parts.append(pools[c][len(pools[c]) - left[c]: len(pools[c]) - left[c] + k])
            left[c] -= k
        shards.append(np.sort(np.concatenate(parts).astype(np.int64)))
    return shards


def _shards(labels, n, rng, alpha, shards_per_peer, min_size):
    total = shards_per_peer * n
    if total > len(labels):
        raise ConfigError(f"partition 'shards': {n} peers x {shards_per_peer} shards per peer "
                          f"= {total} shards but only {len(labels)} training samples; lower "
                          "shards_per_peer or use fewer peers")
    perm = rng.permutation(len(labels))
    order = perm[np.argsort(labels[perm], kind="stable")]
    pieces = np.array_split(order, total)
    pick = rng.permutation(total).reshape(n, shards_per_peer)
    return [np.concatenate([pieces[j] for j in row]) for row in pick]


def _quantity(labels, n, rng, alpha, shards_per_peer, min_size):
    spare = len(labels) - n * min_size
    q = rng.dirichlet(np.full(n, alpha))
    extra = np.floor(q * spare).astype(np.int64)
    rest = spare - int(extra.sum())
    extra[np.argsort(-(q * spare - extra), kind="stable")[:rest]] += 1
    return _split_by_sizes(rng.permutation(len(labels)), min_size + extra)


PARTITIONS: dict[str, Callable[..., list[np.ndarray]]] = {
    "iid": _iid,
    "dirichlet": _dirichlet,
    "dirichlet_peer": _dirichlet_peer,
    "shards": _shards,
    "quantity": _quantity,
}
_NEEDS_CLASSES = ("dirichlet", "dirichlet_peer", "shards")
NATURAL = "natural"
DEFAULT = "default"
SCHEMES = (*PARTITIONS, NATURAL, DEFAULT)


def partition(labels: np.ndarray, n: int, scheme: str, *, seed: int, alpha: float = 0.5,
              shards_per_peer: int = 2, min_size: int = 1,
              dataset: str | None = None) -> list[np.ndarray]:
    """Splits a training set among ``n`` peers.

    Args:
        labels: training targets, shape ``(N, ...)``; 1-D integer class labels for
            ``dirichlet``, ``dirichlet_peer`` and ``shards``, anything for ``iid``/``quantity``.
        n: number of peers, ``1 <= n <= N``.
        scheme: one of ``PARTITIONS``.
        seed: the partition seed; the result is a pure function of all arguments.
        alpha: Dirichlet concentration (``dirichlet``, ``dirichlet_peer``, ``quantity``), > 0.
        shards_per_peer: shards per peer (``shards``).
        min_size: the fewest samples a peer may get (``dirichlet``, ``quantity``; every scheme
            gives each peer at least one).
        dataset: the dataset's name, only to make error messages clearer.

    Returns:
        ``n`` disjoint int64 index arrays into the training set that together cover it; peer
        ``i``'s array is element ``i``.

    Raises:
        ConfigError: unknown scheme, bad ``n``/``alpha``/``shards_per_peer``/``min_size``,
            more peers than samples, non-class labels for a label-skew scheme, or no draw
            giving every peer ``min_size`` samples within ``MAX_TRIES`` tries.
    """
    if scheme not in PARTITIONS:
        raise unknown("partition", scheme, PARTITIONS)
    labels = np.asarray(labels)
    n = check_int("number of peers", n, 1)
    seed = check_int("partition seed", seed, 0)
    if (isinstance(alpha, bool) or not isinstance(alpha, int | float | np.number)
            or not float(alpha) > 0):
        shown = f"{float(alpha):g}" if isinstance(alpha, int | float | np.number) else repr(alpha)
        raise ConfigError(f"alpha must be > 0, got {shown}")
    min_size = check_int("min_size", min_size, 1)
    shards_per_peer = check_int("shards_per_peer", shards_per_peer, 1)
    num = len(labels)
    data = f"dataset {dataset!r}" if dataset else "the training set"
    if n > num:
        raise ConfigError(f"{n} peers but {data} has only {num} training samples; "
                          "use at most one peer per sample")
    if scheme in _NEEDS_CLASSES and (labels.ndim != 1 or not np.issubdtype(labels.dtype,
                                                                          np.integer)):
        raise ConfigError(f"partition {scheme!r} needs 1-D integer class labels, got "
                          f"{labels.dtype} labels of shape {labels.shape}; use 'iid' or "
                          "'quantity'")
    if scheme in ("dirichlet", "quantity") and n * min_size > num:
        raise ConfigError(f"{n} peers x min_size {min_size} = {n * min_size} but {data} has "
                          f"only {num} training samples")
    fn = PARTITIONS[scheme]
    tries = MAX_TRIES if scheme == "dirichlet" else 1
    for t in range(tries):
        rng = np.random.default_rng([seed, t])
        shards = fn(labels, n, rng, float(alpha), shards_per_peer, min_size)
        if min(len(s) for s in shards) >= (min_size if scheme == "dirichlet" else 1):
            return [np.asarray(s, np.int64) for s in shards]
    raise ConfigError(f"partition 'dirichlet': no draw in {MAX_TRIES} tries gave each of {n} "
                      f"peers >= {min_size} samples with alpha={alpha}; raise alpha, lower "
                      "min_size or use fewer peers")


def dataset_partition(ds: Dataset, n: int, scheme: str, *, seed: int, alpha: float = 0.5,
                      shards_per_peer: int = 2, min_size: int = 1) -> list[np.ndarray]:
    """Splits a dataset among ``n`` peers: by its own split, or by a ``PARTITIONS`` scheme.

    Args:
        ds: the dataset.
        n: number of peers.
        scheme: one of ``SCHEMES``: a ``PARTITIONS`` name, ``"natural"`` (the dataset's own
            ``shards``: peer ``i`` gets exactly ``ds.shards[i]``) or ``"default"``
            (``natural`` when the dataset has shards, ``iid`` otherwise).
        seed: the partition seed (unused by ``natural``).
        alpha: as for ``partition``.
        shards_per_peer: as for ``partition``.
        min_size: as for ``partition``.

    Returns:
        ``n`` disjoint int64 index arrays into ``ds.x_train`` that cover it; element ``i`` is
        peer ``i``'s.

    Raises:
        ConfigError: an unknown scheme; ``natural`` for a dataset without a split of its own;
            another scheme for a dataset with one; ``n`` other than the number of peers the
            dataset was made for; or any error of ``partition``.
    """
    if scheme not in SCHEMES:
        raise unknown("partition", scheme, SCHEMES)
    if scheme == DEFAULT:
        scheme = NATURAL if ds.shards is not None else "iid"
    if ds.shards is not None:
        if scheme != NATURAL:
            raise ConfigError(f"dataset {ds.name!r} gives each peer its own rows; use partition "
                              f"'natural' (or 'default'), got {scheme!r}")
        n = check_int("number of peers", n, 1)
        if n != len(ds.shards):
            raise ConfigError(f"dataset {ds.name!r} was made for {len(ds.shards)} peers (its "
                              f"option 'peers') but the run has {n}; set dataset option "
                              f"peers = {n}")
        return [np.asarray(s, np.int64) for s in ds.shards]
    if scheme == NATURAL:
        raise ConfigError(f"partition 'natural' needs a dataset with its own split among peers "
                          f"(least_squares); dataset {ds.name!r} has none: use one of "
                          f"{', '.join(sorted(PARTITIONS))}")
    return partition(ds.y_train, n, scheme, seed=seed, alpha=alpha,
                     shards_per_peer=shards_per_peer, min_size=min_size, dataset=ds.name)


def peer_shard(ds: Dataset, n: int, peer: int, *, scheme: str, seed: int,
               **partition_options: Any) -> tuple[np.ndarray, np.ndarray]:
    """One peer's training shard, identical to ``dataset_partition(ds, ...)[peer]``.

    Args:
        ds: the dataset.
        n: number of peers.
        peer: this peer's id, ``0 <= peer < n``.
        scheme: a ``SCHEMES`` name (a ``PARTITIONS`` name, ``natural`` or ``default``).
        seed: the partition seed.
        **partition_options: ``alpha``, ``shards_per_peer``, ``min_size``.

    Returns:
        ``(x, y)``: ``ds.x_train`` and ``ds.y_train`` rows of the peer's shard, shapes
        ``(k, *input_shape)`` and ``(k, ...)``.

    Raises:
        ConfigError: ``peer`` out of range, or any error of ``dataset_partition``.
    """
    n = check_int("number of peers", n, 1)
    if isinstance(peer, bool) or not isinstance(peer, int | np.integer) or not 0 <= peer < n:
        raise ConfigError(f"peer {peer!r} out of range for {n} peers (valid: 0..{n - 1})")
    bad = sorted(set(partition_options) - {"alpha", "shards_per_peer", "min_size"})
    if bad:
        raise ConfigError(f"unknown partition option {bad[0]!r}; valid options: alpha, "
                          "min_size, shards_per_peer")
    idx = dataset_partition(ds, n, scheme, seed=seed, **partition_options)[int(peer)]
    return ds.x_train[idx], ds.y_train[idx]
