"""Figures made from a run's metrics files (never from live objects): ``gossip plot``, the
``curves.png`` that ``gossip sim`` and ``gossip launch`` draw, and the helpers the benchmark
figures share (matplotlib, loaded only when a figure is drawn)."""

from gossip.plots.curves import PANELS, plot_runs, write_run_curves
from gossip.plots.runs import Run, load_run, run_labels
from gossip.plots.scale import log_limits

__all__ = ["PANELS", "Run", "load_run", "log_limits", "plot_runs", "run_labels",
           "write_run_curves"]
