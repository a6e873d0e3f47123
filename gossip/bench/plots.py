"""The suite's PNG plots (matplotlib, Agg backend), drawn from the results dict only.

Full size (at least 1200 pixels wide at 100 dpi) with the readable fonts of
``gossip.plots.pyplot.STYLE``; one legend above the panels, the target line labelled; the
consensus distance on a log axis clipped to the decades that matter
(``gossip.plots.log_limits``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gossip.bench.ranking import Group, group_of, groups
from gossip.plots import log_limits
from gossip.plots.pyplot import STYLE, load_pyplot
from gossip.plots.scale import clip_below

DPI = 100
MIN_WIDTH_IN = 12.0
PANEL_HEIGHT_IN = 4.6


def _pyplot() -> Any:
    return load_pyplot("gossip bench's figures")


def _figure(plt: Any, rows: int, cols: int) -> tuple[Any, Any]:
    width = max(MIN_WIDTH_IN, 6.5 * cols)
    return plt.subplots(rows, cols, figsize=(width, PANEL_HEIGHT_IN * rows + 0.8),
                        squeeze=False, layout="constrained")


def _grid(plt: Any, gs: list[Group]) -> tuple[Any, dict[Group, Any]]:
    peers = sorted({g[1] for g in gs})
    rows = list(dict.fromkeys((g[0], g[2]) for g in gs))
    fig, axes = _figure(plt, len(rows), len(peers))
    return fig, {g: axes[rows.index((g[0], g[2]))][peers.index(g[1])] for g in gs}


def _shared_legend(fig: Any, axes: list[Any]) -> None:
    """One legend above the panels, with every label any panel has (once)."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    fig.legend(list(seen.values()), list(seen), loc="outside upper center",
               ncol=min(len(seen), 5), frameon=False)


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
    target_of = {(t["task"], t["n"], t["partition"]): t["target"] for t in results["targets"]}
    with plt.rc_context(STYLE):
        fig, axes = _grid(plt, gs)
        for g, ax in axes.items():
            curves = _curves(results, g, x_of, y_key)
            limits = log_limits([c[1] for c in curves.values()]) if log_y else None
            clipped = []
            for topo, (x, y, lo, hi) in curves.items():
                if limits:
                    (y, low), lo, hi = clip_below(y, limits[0]), clip_below(lo, limits[0])[0], \
                        clip_below(hi, limits[0])[0]
                    if low:
                        clipped.append(topo)
                (line,) = ax.plot(x, y, label=topo, lw=1.6)
                ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
            if target:
                ax.axhline(target_of[g], color="k", ls="--", lw=1.0, label="target")
                ax.annotate(f"target {target_of[g]:.3f}", (0.01, target_of[g]),
                            xycoords=("axes fraction", "data"), va="bottom", fontsize=9)
            ax.set_title(f"{g[0]}, n={g[1]}, {g[2]}")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(y_key)
            if log_x:
                ax.set_xscale("log")
            if log_y:
                ax.set_yscale("log")
                if limits:
                    ax.set_ylim(*limits)
                if clipped:
                    ax.text(0.01, 0.02, f"at the bottom edge, below {limits[0]:.0e} (round-off "
                            f"of 0): {', '.join(clipped)}", transform=ax.transAxes,
                            fontsize=9, va="bottom")
            ax.grid(alpha=0.3)
        _shared_legend(fig, list(axes.values()))
        fig.savefig(path, dpi=DPI)
        plt.close(fig)


def _gossip_plot(results: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    peers = sorted({c["n"] for c in results["consensus"]})
    with plt.rc_context(STYLE):
        fig, axes = _figure(plt, 1, len(peers))
        for ax, n in zip(axes[0], peers, strict=True):
            for c in results["consensus"]:
                if c["n"] != n:
                    continue
                d = np.maximum(np.asarray(c["distances"]), 1e-30)
                ax.plot(np.arange(len(d)), d, label=f"{c['topology']} (SLEM {c['slem']:.3f})",
                        lw=1.6)
            ax.set_yscale("log")
            ax.set_ylim(1e-30, 2)
            ax.set_title(f"pure gossip, n={n}")
            ax.set_xlabel("round")
            ax.set_ylabel("consensus distance D_t / D_0")
            ax.grid(alpha=0.3)
            ax.legend(ncol=2)  # the SLEM in the labels differs with n: one legend per panel
        fig.savefig(path, dpi=DPI)
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
