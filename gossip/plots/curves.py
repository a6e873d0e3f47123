"""The curves figure of one or several runs: ``gossip plot``, and ``OUT/curves.png``.

Panels, each against rounds (the fifth against wall time): the test metric of the average
model (solid) and of the peers' own models (dashed mean, shaded min–max); training loss
(solid) and the average model's test loss (dotted); consensus distance (log); payload bytes
sent by all peers; the test metric against wall-clock time; and, when a run knows the exact
optimum, the relative distance to it (log). One shared legend names the runs and the line
styles. A real-peers run has the average model and consensus distance at its end only (one
marker).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from gossip.errors import ConfigError
from gossip.plots.pyplot import STYLE, have_matplotlib, load_pyplot
from gossip.plots.runs import Run, load_run, run_labels
from gossip.plots.scale import clip_below, log_limits

FORMATS = (".png", ".svg", ".pdf")
METRIC_TITLE = {"acc": "accuracy", "rmse": "RMSE"}
PANELS = ("Test {metric}", "Loss", "Consensus distance", "Bytes sent (payload, all peers)",
          "Test {metric} vs wall time", "Distance to the optimum")
"""The panels' titles; ``{metric}`` is ``accuracy`` or ``RMSE``. The last one only when a
run has ``opt_distance``."""


def byte_unit(largest: float) -> tuple[str, float]:
    """The binary unit for an axis of byte counts up to ``largest``, and its size."""
    unit, scale = "bytes", 1.0
    for name in ("KiB", "MiB", "GiB", "TiB"):
        if largest < scale * 1024:
            break
        unit, scale = name, scale * 1024
    return unit, scale


def _line(ax: Any, run: Run, key: str, color: str, **style: Any) -> None:
    series = run.curve(key)
    if series is None:
        return
    x, y = series
    marker = "o" if len(x) == 1 else None
    ax.plot(x, y, color=color, marker=marker, **style)


def _log_panel(ax: Any, runs: list[Run], colors: list[str], key: str) -> None:
    curves = [(r, r.curve(key), c) for r, c in zip(runs, colors, strict=True)]
    limits = log_limits([s[1] for _, s, _ in curves if s is not None])
    ax.set_yscale("log")
    if limits is None:
        return
    clipped = []
    for run, series, color in curves:
        if series is None:
            continue
        y, low = clip_below(series[1], limits[0])
        ax.plot(series[0], y, color=color, marker="o" if len(y) == 1 else None)
        if low:
            clipped.append(run.label)
    ax.set_ylim(*limits)
    if clipped:
        ax.text(0.01, 0.02, f"at the bottom edge: below {limits[0]:.0e} (round-off of 0): "
                + ", ".join(clipped), transform=ax.transAxes, fontsize=8, va="bottom")


def plot_runs(runs: list[Run], path: Path, title: str | None = None) -> list[str]:
    """Draws the curves of ``runs`` into ``path`` (PNG, SVG or PDF by its suffix).

    Args:
        runs: the runs, labelled (``run_labels``).
        path: the figure file.
        title: the figure's title (default: none).

    Returns:
        The titles of the panels drawn, in order.

    Raises:
        ConfigError: an unknown file type, or matplotlib missing.
    """
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"--out {path}: unknown figure type {path.suffix or '(none)'!r}; "
                          f"valid choices: {', '.join(f[1:] for f in FORMATS)}")
    plt = load_pyplot("gossip plot")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    metrics = {r.metric for r in runs}
    metric = METRIC_TITLE[metrics.pop()] if len(metrics) == 1 else "metric"
    has_opt = any(r.curve("opt_distance") is not None for r in runs)
    titles = [t.format(metric=metric) for t in PANELS[:6 if has_opt else 5]]
    with plt.rc_context(STYLE):
        fig, grid = plt.subplots(2, 3, figsize=(15, 8.5), layout="constrained")
        axes = list(grid.ravel())
        colors = [plt.rcParams["axes.prop_cycle"].by_key()["color"][i % 10]
                  for i in range(len(runs))]
        acc, loss, cons, sent, timed = axes[:5]
        unit, scale = byte_unit(max((float(b[1].max()) for r in runs
                                     if (b := r.curve("bytes_sent")) is not None), default=0.0))
        for run, c in zip(runs, colors, strict=True):
            m = run.metric
            _line(acc, run, f"avg_model_{m}", c, lw=1.8)
            _line(acc, run, f"local_{m}_mean", c, lw=1.3, ls="--")
            lo, hi = run.curve(f"local_{m}_min"), run.curve(f"local_{m}_max")
            if lo is not None and hi is not None and len(lo[0]) == len(hi[0]) > 1:
                acc.fill_between(lo[0], lo[1], hi[1], color=c, alpha=0.15, lw=0)
            _line(loss, run, "loss", c, lw=1.5)
            _line(loss, run, "avg_model_loss", c, lw=1.5, ls=":")
            if (b := run.curve("bytes_sent")) is not None:
                sent.plot(b[0], b[1] / scale, color=c, lw=1.5,
                          marker="o" if len(b[0]) == 1 else None)
            clock, value = run.curve("time"), run.curve(f"avg_model_{m}")
            if run.kind == "peers" or value is None or len(value[0]) < 2:
                value = run.curve(f"local_{m}_mean")
            if clock is not None and value is not None:
                at = dict(zip(clock[0].tolist(), clock[1].tolist(), strict=True))
                pts = [(at[t], v) for t, v in zip(*value, strict=True) if t in at]
                if pts:
                    x, y = zip(*pts, strict=True)
                    timed.plot(x, y, color=c, lw=1.5, marker="o" if len(x) == 1 else None)
        _log_panel(cons, runs, colors, "consensus_distance")
        if has_opt:
            _log_panel(axes[5], runs, colors, "opt_distance")
        else:
            fig.delaxes(axes[5])
        for ax, t in zip(axes, titles, strict=False):
            ax.set_title(t)
            ax.set_xlabel("round")
            ax.grid(alpha=0.3)
        acc.set_ylabel(metric)
        loss.set_ylabel("loss")
        cons.set_ylabel("1/N Σ‖x_i − x̄‖²")
        sent.set_ylabel(unit)
        timed.set_xlabel("wall time (s, compilation included)")
        timed.set_ylabel(metric)
        if has_opt:
            axes[5].set_ylabel("‖x̄ − x*‖ / ‖x*‖")
        handles = [Line2D([], [], color=c, lw=2.5, label=r.label)
                   for r, c in zip(runs, colors, strict=True)]
        handles += [Line2D([], [], color="k", lw=1.8, label="average model / training loss"),
                    Line2D([], [], color="k", lw=1.3, ls="--", label="local models, mean"),
                    Patch(color="k", alpha=0.15, label="local models, min–max"),
                    Line2D([], [], color="k", lw=1.5, ls=":", label="average model, test loss")]
        fig.legend(handles=handles, loc="outside upper center",
                   ncol=len(handles) if len(handles) <= 6 else 4, frameon=False)
        if title:
            fig.suptitle(title)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return titles


def write_run_curves(out_dir: Path) -> Path | None:
    """``OUT/curves.png`` of a finished run, for ``gossip sim`` and ``gossip launch``.

    Without matplotlib, prints one line saying so and returns None: the run itself is done.
    """
    target = out_dir / "curves.png"
    if not have_matplotlib():
        print(f"gossip: matplotlib is not installed: no {target} "
              "(pip install 'gossip-train[plots]')", file=sys.stderr)
        return None
    run = load_run(out_dir)
    run.label = run_labels([run])[0]
    plot_runs([run], target)
    return target
