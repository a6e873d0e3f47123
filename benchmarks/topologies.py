"""Benchmark: compare topologies (the suite of ``gossip bench topologies``).

Runs the same entry point as the CLI, writes ``results.json``, ``report.md`` and PNG plots to
``--out`` (default a new ``runs/bench-topologies-YYYYmmdd-HHMMSS``; the committed full run is
``--out benchmarks/results/topologies``) and prints a JSON summary: the targets and the
winning topology per setting for rounds, bytes and modelled time. See docs/benchmarks.md.

Usage: ``python benchmarks/topologies.py [--quick] [--config FILE] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gossip.bench import load_suite, run_topology_bench
from gossip.bench.provenance import command_line
from gossip.bench_cli import summary_json
from gossip.errors import ConfigError
from gossip.outputs import check_out, new_run_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick preset")
    parser.add_argument("--config", metavar="FILE", help="TOML overrides of the preset")
    parser.add_argument("--out", help="output directory (default: a new "
                        "runs/bench-topologies-YYYYmmdd-HHMMSS)")
    args = parser.parse_args()
    try:
        suite = load_suite(args.config, args.quick)
        out = Path(args.out) if args.out else new_run_dir("bench-topologies")
        check_out(out)
    except ConfigError as e:
        print(f"topologies.py: error: {e}", file=sys.stderr)
        return 2
    results = run_topology_bench(suite, out, command_line())
    print(json.dumps(summary_json(results), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
