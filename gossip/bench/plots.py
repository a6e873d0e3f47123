"""The suite's PNG plots (matplotlib, Agg backend), drawn from the results dict only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gossip.bench.ranking import Group, group_of, groups
from gossip.errors import optional_import


def _pyplot() -> Any:
    matplotlib = optional_import("matplotlib", "plots", "gossip bench's figures")
    matplotlib.use("Agg")
    return optional_import("matplotlib.pyplot", "plots", "gossip bench's figures")


def _grid(plt: Any, gs: list[Group]) -> tuple[Any, dict[Group, Any]]:
    peers = sorted({g[1] for g in gs})
    rows = list(dict.fromkeys((g[0], g[2]) for g in gs))
    fig, axes = plt.subplots(len(rows), len(peers), figsize=(5.5 * len(peers), 3.6 * len(rows)),
                             squeeze=False)
    return fig, {g: axes[rows.index((g[0], g[2]))][peers.index(g[1])] for g in gs}


def _curves(results: dict[str, Any], g: Group, x_of: Any, y_key: str
            ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """topology -> (x mean, y mean, y min, y max) over seeds."""
    out = {}
    for topo in results["suite"]["topologies"]:
        rs = [r for r in results["runs"] if group_of(r) == g and r["topology"] == topo]
        if not rs:
            continue
        x = np.mean([x_of(r) for r in rs], axis=0)
        y = np.asarray([r[y_key] for r in rs], dtype=np.float64)
        out[topo] = (x, y.mean(axis=0), y.min(axis=0), y.max(axis=0))
    return out


def _metric_plot(results: dict[str, Any], path: Path, x_of: Any, xlabel: str, y_key: str,
                 log_x: bool = False, log_y: bool = False, target: bool = True) -> None:
    plt = _pyplot()
    gs = groups(results["runs"])
    fig, axes = _grid(plt, gs)
    target_of = {(t["task"], t["n"], t["partition"]): t["target"] for t in results["targets"]}
    for g, ax in axes.items():
        for topo, (x, y, lo, hi) in _curves(results, g, x_of, y_key).items():
            (line,) = ax.plot(x, y, label=topo, lw=1.4)
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
        if target:
            ax.axhline(target_of[g], color="k", ls="--", lw=0.8)
        ax.set_title(f"{g[0]}, n={g[1]}, {g[2]}", fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(y_key)
        if log_x:
            ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    next(iter(axes.values())).legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _gossip_plot(results: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    peers = sorted({c["n"] for c in results["consensus"]})
    fig, axes = plt.subplots(1, len(peers), figsize=(5.5 * len(peers), 3.8), squeeze=False)
    for ax, n in zip(axes[0], peers, strict=True):
        for c in results["consensus"]:
            if c["n"] != n:
                continue
            d = np.maximum(np.asarray(c["distances"]), 1e-30)
            ax.plot(np.arange(len(d)), d, label=f"{c['topology']} (SLEM {c['slem']:.3f})", lw=1.4)
        ax.set_yscale("log")
        ax.set_ylim(1e-30, 2)
        ax.set_title(f"pure gossip, n={n}", fontsize=9)
        ax.set_xlabel("round")
        ax.set_ylabel("consensus distance D_t / D_0")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_plots(results: dict[str, Any], out_dir: Path) -> list[str]:
    """Writes every plot into ``out_dir``.

    Returns:
        The file names written: accuracy vs rounds, vs bytes per peer, vs modelled time on
        each network; consensus distance vs rounds in training and in pure gossip (log).
    """
    metric = results["suite"]["target_metric"]
    names = ["accuracy_vs_rounds.png", "accuracy_vs_bytes.png"]
    _metric_plot(results, out_dir / names[0], lambda r: r["round"], "round", metric)
    _metric_plot(results, out_dir / names[1], lambda r: r["bytes_per_peer"],
                 "bytes sent per peer", metric, log_x=True)
    for net in results["suite"]["networks"]:
        name = f"accuracy_vs_time_{net['name']}.png"
        _metric_plot(results, out_dir / name, lambda r, n=net["name"]: r["time_s"][n],
                     f"modelled time on {net['name']} (s)", metric, log_x=True)
        names.append(name)
    names.append("consensus_distance_training.png")
    _metric_plot(results, out_dir / names[-1], lambda r: r["round"], "round",
                 "consensus_distance", log_y=True, target=False)
    names.append("consensus_distance_pure_gossip.png")
    _gossip_plot(results, out_dir / names[-1])
    return names
