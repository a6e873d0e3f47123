"""The final summary both ``gossip sim`` and ``gossip launch`` print."""

from __future__ import annotations

from typing import Any

METRIC_SHORT = {"accuracy": "acc", "rmse": "rmse"}


def human_bytes(n: float | None, spec: str = ".1f") -> str:
    """Bytes in binary units: ``1536 -> '1.5 KiB'``; '–' for None.

    Args:
        n: a byte count (mean counts may be fractional), or None.
        spec: the format of the number above 1 KiB: ``".1f"`` (one decimal, the run
            summary) or ``".3g"`` (three significant digits, the benchmark report).
            Counts below 1 KiB are whole bytes.
    """
    if n is None:
        return "–"
    if abs(n) < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:{spec}} {unit}"
    raise AssertionError("unreachable")


def summary_table(record: dict[str, Any], metric_name: str) -> str:
    """A short text table of a run's final metrics; a launched run's starts with how many of
    its peers finished (``peers_finished`` of ``peers``)."""
    short = METRIC_SHORT[metric_name]
    rows = [
        *([("peers finished", f"{record['peers_finished']} of {record['peers']}"
            + ("" if record["peers_finished"] == record["peers"] else "  (see the lines above)"))]
          if "peers_finished" in record and "peers" in record else []),
        ("rounds", str(record["round"])),
        (f"average-model test {metric_name}", f"{record[f'avg_model_{short}']:.4f}"),
        (f"local-model test {metric_name} mean",
         f"{record[f'local_{short}_mean']:.4f}"),
        (f"local-model test {metric_name} min / max",
         f"{record[f'local_{short}_min']:.4f} / {record[f'local_{short}_max']:.4f}"),
        *([(f"honest average-model test {metric_name}",
            f"{record[f'honest_avg_model_{short}']:.4f}"),
           (f"honest local-model test {metric_name} mean / min",
            f"{record[f'honest_{short}_mean']:.4f} / {record[f'honest_{short}_min']:.4f}")]
          if f"honest_avg_model_{short}" in record else []),
        ("consensus distance", f"{record['consensus_distance']:.3e}"),
        *([("rel. distance to optimum, average model", f"{record['opt_distance']:.3e}"),
           ("rel. distance to optimum, farthest peer", f"{record['opt_distance_max']:.3e}")]
          if "opt_distance" in record else []),
        ("bytes sent (payload, all peers)", human_bytes(record["bytes_sent"])),
        ("wall time", f"{record['time']:.1f} s"),
    ]
    if "restarts_per_peer" in record:  # gossip launch
        restarted = [f"peer {i}: {k}" for i, k in enumerate(record["restarts_per_peer"]) if k]
        rows.append(("restarts", f"{record['restarts']} ({', '.join(restarted)})"
                     if restarted else "0"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
