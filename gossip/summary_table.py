"""The final summary both ``gossip sim`` and ``gossip launch`` print."""

from __future__ import annotations

from typing import Any

METRIC_SHORT = {"accuracy": "acc", "rmse": "rmse"}


def human_bytes(n: float) -> str:
    """``1536 -> '1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def summary_table(record: dict[str, Any], metric_name: str) -> str:
    """A short text table of a run's final metrics."""
    short = METRIC_SHORT[metric_name]
    rows = [
        ("rounds", str(record["round"])),
        (f"average-model test {metric_name}", f"{record[f'avg_model_{short}']:.4f}"),
        (f"local-model test {metric_name} mean",
         f"{record[f'local_{short}_mean']:.4f}"),
        (f"local-model test {metric_name} min / max",
         f"{record[f'local_{short}_min']:.4f} / {record[f'local_{short}_max']:.4f}"),
        ("consensus distance", f"{record['consensus_distance']:.3e}"),
        ("bytes sent (payload, all peers)", human_bytes(record["bytes_sent"])),
        ("wall time", f"{record['time']:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
