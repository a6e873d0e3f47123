"""``gossip topo``: inspect a topology (degree, SLEM, spectral gap, rounds to consensus)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gossip.config import parse_assignments
from gossip.config import parse_value as parse_value  # the option values' rules
from gossip.topology import (
    TOPOLOGIES,
    average_slem,
    gap_of,
    make_topology,
    rounds_to_consensus,
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Registers the ``topo`` subcommand.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers``.

    Returns:
        The ``topo`` parser (the caller sets its ``func``).
    """
    parser = subparsers.add_parser(
        "topo", help="inspect a topology: degree, SLEM, spectral gap, rounds to consensus",
        description="Print the in-degree, SLEM, spectral gap and rounds to consensus (tolerance "
        "1e-6) of a topology. For time-varying topologies the SLEM is the per-round average. "
        f"Topologies: {', '.join(TOPOLOGIES)}.")
    parser.add_argument("name", metavar="NAME", help="topology name")
    parser.add_argument("-n", type=int, required=True, help="number of peers")
    parser.add_argument("--seed", type=int, default=0, help="topology seed (default 0)")
    parser.add_argument("--weights", default=None,
                        help="uniform, metropolis, push or default (default: per topology)")
    parser.add_argument("--option", "-o", action="append", metavar="KEY=VALUE",
                        help="topology option, e.g. p=0.3 or path=edges.txt (repeatable; default: "
                             "the topology's defaults, docs/topologies.md); VALUE "
                             "as for --set (docs/config.md)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs ``gossip topo``.

    Args:
        args: the parsed arguments of the ``topo`` parser.

    Returns:
        The exit code (0); user errors raise ``ConfigError``.
    """
    topo = make_topology(args.name, args.n, seed=args.seed, weights=args.weights,
                         **parse_assignments(args.option, "--option"))
    s = average_slem(topo)
    report = {
        "n": topo.n,
        "in_neighbours": topo.k,
        "slem": s,
        "spectral_gap": gap_of(s),
        "rounds_to_consensus": rounds_to_consensus(topo),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    kind = "time-varying" if topo.time_varying else "static"
    rows = [("topology", f"{topo.name} ({kind}, {topo.weights} weights)"),
            ("n", str(topo.n)), ("in_neighbours", str(topo.k)),
            ("slem" + (" (per-round average)" if topo.time_varying else ""), f"{s:.6g}"),
            ("spectral_gap", f"{report['spectral_gap']:.6g}"),
            ("rounds_to_consensus", str(report["rounds_to_consensus"]))]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0
