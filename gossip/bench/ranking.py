"""From raw runs to numbers: targets, rounds/bytes/time to target, winners (no I/O).

Target rule: for every (task, n, partition), the target is ``target_fraction`` × the
reference, the complete graph's final ``target_metric`` averaged over seeds (the exact-average
baseline); without ``complete`` in the suite, the best topology's. Where fewer than
``ceil(target_reach × topologies)`` topologies end at or above it in every seed, it is lowered
to the highest value that many do, so that most topologies have a time to target. A run
reaches the target at its first evaluation with ``target_metric >= target``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import stats

Group = tuple[str, int, str]  # (task, n, partition)


def stat(values: Iterable[float]) -> dict[str, float] | None:
    """``{"mean", "std", "min", "max", "count"}`` of the values (population std), or None."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return None
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
            "max": float(v.max()), "count": int(v.size)}


def group_of(run: dict[str, Any]) -> Group:
    """The (task, n, partition) a run belongs to."""
    return run["task"], run["n"], run["partition"]


def groups(runs: list[dict[str, Any]]) -> list[Group]:
    """Distinct groups in run order."""
    return list(dict.fromkeys(group_of(r) for r in runs))


def targets(runs: list[dict[str, Any]], metric: str, fraction: float, reach: float = 0.0
            ) -> list[dict[str, Any]]:
    """The target of every group.

    Args:
        runs: the runs.
        metric: the target metric, e.g. ``"local_acc_mean"``.
        fraction: the target is ``fraction`` × the reference (see the module docstring).
        reach: where fewer than ``ceil(reach × topologies)`` topologies end at or above that
            target in every seed, the target is lowered to the largest value they do (the
            k-th best worst-seed final metric); 0 never lowers it.

    Returns:
        One dict per group: ``task``, ``n``, ``partition``, ``metric``, ``fraction``,
        ``reference_topology``, ``reference``, ``fraction_target``, ``reach``,
        ``lowered`` (bool) and ``target``.
    """
    out = []
    for g in groups(runs):
        finals: dict[str, list[float]] = {}
        for r in runs:
            if group_of(r) == g:
                finals.setdefault(r["topology"], []).append(r[metric][-1])
        means = {t: float(np.mean(v)) for t, v in finals.items()}
        ref_topo = "complete" if "complete" in means else max(means, key=means.get)
        target = fraction * means[ref_topo]
        worst = sorted((min(v) for v in finals.values()), reverse=True)
        k = math.ceil(reach * len(worst))
        reachable = worst[k - 1] if k >= 1 else target
        out.append({"task": g[0], "n": g[1], "partition": g[2], "metric": metric,
                    "fraction": fraction, "reference_topology": ref_topo,
                    "reference": means[ref_topo], "fraction_target": target, "reach": reach,
                    "lowered": reachable < target, "target": min(target, reachable)})
    return out


def first_reach(run: dict[str, Any], metric: str, target: float) -> int | None:
    """Index of the first evaluation of a run at or above the target, or None."""
    for i, v in enumerate(run[metric]):
        if v >= target:
            return i
    return None


def summarise(runs: list[dict[str, Any]], target_rows: list[dict[str, Any]], metric: str
              ) -> list[dict[str, Any]]:
    """One row per (group, topology): to-target figures and final metrics over seeds.

    Returns:
        Dicts with the group, ``topology``, ``seeds``, ``reached`` (seeds that reached the
        target), ``rounds_to_target``, ``bytes_per_peer_to_target``,
        ``bytes_busiest_peer_to_target``, ``time_to_target`` (network -> stat), the final
        ``avg_model_acc``, ``local_acc_mean``, ``consensus_distance`` and ``bytes_per_peer``;
        each a ``stat`` (None when no seed reached the target).
    """
    target_of = {(t["task"], t["n"], t["partition"]): t["target"] for t in target_rows}
    cells: dict[tuple[Group, str], list[dict[str, Any]]] = {}
    for r in runs:
        cells.setdefault((group_of(r), r["topology"]), []).append(r)
    rows = []
    for (g, topo), rs in cells.items():
        hits = [(r, first_reach(r, metric, target_of[g])) for r in rs]
        hits = [(r, i) for r, i in hits if i is not None]
        networks = list(rs[0]["time_s"])
        rows.append({
            "task": g[0], "n": g[1], "partition": g[2], "topology": topo,
            "weights": rs[0]["weights"], "seeds": len(rs), "reached": len(hits),
            "target": target_of[g],
            "rounds_to_target": stat(r["round"][i] for r, i in hits),
            "bytes_per_peer_to_target": stat(r["bytes_per_peer"][i] for r, i in hits),
            "bytes_busiest_peer_to_target": stat(r["bytes_busiest_peer"][i] for r, i in hits),
            "time_to_target": {net: stat(r["time_s"][net][i] for r, i in hits)
                               for net in networks},
            "avg_model_acc": stat(r["avg_model_acc"][-1] for r in rs),
            "local_acc_mean": stat(r["local_acc_mean"][-1] for r in rs),
            "consensus_distance": stat(r["consensus_distance"][-1] for r in rs),
            "bytes_per_peer": stat(r["bytes_per_peer"][-1] for r in rs),
        })
    return rows


def cost(row: dict[str, Any], key: str) -> float:
    """Mean to-target cost of a summary row for ``key`` (``"time_to_target/<net>"`` for
    times); inf unless every seed reached the target."""
    if row["reached"] < row["seeds"]:
        return math.inf
    s = row["time_to_target"][key.split("/", 1)[1]] if "/" in key else row[key]
    return s["mean"] if s else math.inf


def winners(rows: list[dict[str, Any]], key: str) -> dict[Group, str | None]:
    """Per group, the topology with the least mean cost among those where every seed reached
    the target; ties (within 1e-9 relative) are joined as ``"a = b"``; None when no topology
    reached it."""
    costs: dict[Group, list[tuple[float, str]]] = {}
    for row in rows:
        g = (row["task"], row["n"], row["partition"])
        costs.setdefault(g, []).append((cost(row, key), row["topology"]))
    out: dict[Group, str | None] = {}
    for g, cs in costs.items():
        best = min(c for c, _ in cs)
        if not math.isfinite(best):
            out[g] = None
            continue
        out[g] = " = ".join(t for c, t in cs if c <= best * (1 + 1e-9))
    return out


def rank_correlation(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (``scipy.stats.spearmanr``: average ranks for ties); None
    with < 3 points or when either list is constant (no ranking)."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(stats.spearmanr(x, y).statistic)
