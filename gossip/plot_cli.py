"""``gossip plot RUN [RUN ...]``: the curves of one or several runs in one figure."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gossip.errors import ConfigError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Registers the ``plot`` subcommand (its ``func`` is set here)."""
    parser = subparsers.add_parser(
        "plot", help="draw the curves of one or several runs (accuracy, loss, consensus, bytes)",
        description="Draw the test metric (average model; local models' mean and min-max), "
        "loss, consensus distance and bytes sent against rounds, and the test metric against "
        "wall time, of one or several runs of gossip sim, gossip launch or gossip peer, "
        "overlaid, labelled by what differs in their configs. See docs/metrics.md.")
    parser.add_argument("runs", nargs="+", metavar="RUN", help="a run's output directory")
    parser.add_argument("--out", metavar="FILE",
                        help="the figure: .png, .svg or .pdf (default with one run: "
                             "RUN/curves.png; required with several)")
    parser.add_argument("--label", action="append", metavar="TEXT",
                        help="legend label of a run, once per RUN in order (default: the "
                             "config keys that differ between the runs)")
    parser.add_argument("--title", metavar="TEXT", help="figure title (default: none)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs ``gossip plot``; user errors raise ``ConfigError``."""
    from gossip.plots import load_run, plot_runs, run_labels

    if args.out is None and len(args.runs) > 1:
        raise ConfigError("gossip plot with several runs needs --out FILE")
    if args.label and len(args.label) != len(args.runs):
        raise ConfigError(f"--label given {len(args.label)} times for {len(args.runs)} runs; "
                          "give it once per run, or not at all")
    out = Path(args.out) if args.out else Path(args.runs[0]) / "curves.png"
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name ending in .png, "
                          ".svg or .pdf")
    runs = [load_run(path) for path in args.runs]
    for r, label in zip(runs, args.label or run_labels(runs), strict=True):
        r.label = label
    titles = plot_runs(runs, out, title=args.title)
    print(f"gossip plot: {out} ({', '.join(titles)})")
    return 0
