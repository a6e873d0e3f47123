"""Benchmark: compare topologies (the suite of ``gossip bench topologies``).

Runs the same entry point as the CLI, writes ``results.json``, ``report.md`` and PNG plots to
``benchmarks/results/topologies/`` (``topologies-quick/`` with ``--quick``; or ``--out``) and
prints a JSON summary: the targets and the winning topology per setting for rounds, bytes and
modelled time. See docs/benchmarks.md.

Usage: ``python benchmarks/topologies.py [--quick] [--config FILE] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gossip.bench import load_suite, run_topology_bench
from gossip.bench_cli import summary_json
from gossip.errors import ConfigError

RESULTS = Path(__file__).resolve().parent / "results" / "topologies"
QUICK_RESULTS = RESULTS.with_name("topologies-quick")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick preset")
    parser.add_argument("--config", metavar="FILE", help="TOML overrides of the preset")
    parser.add_argument("--out", help=f"output directory (default {RESULTS}, or "
                        f"{QUICK_RESULTS} with --quick)")
    args = parser.parse_args()
    try:
        suite = load_suite(args.config, args.quick)
    except ConfigError as e:
        print(f"topologies.py: error: {e}", file=sys.stderr)
        return 2
    command = "python benchmarks/topologies.py" + (" --quick" if args.quick else "") + \
        (f" --config {args.config}" if args.config else "")
    out = args.out or str(QUICK_RESULTS if args.quick else RESULTS)
    results = run_topology_bench(suite, out, command)
    print(json.dumps(summary_json(results), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
