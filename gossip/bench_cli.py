"""``gossip bench topologies``: the topology benchmark suite on the simulator."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from gossip.errors import ConfigError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Registers the ``bench`` subcommand and its ``topologies`` sub-subcommand.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers``.

    Returns:
        The ``bench`` parser (its ``func`` is set here).
    """
    parser = subparsers.add_parser(
        "bench", help="benchmark suites (topologies, compression, heterogeneity, "
        "robustness, stragglers)",
        description="Benchmark suites run on the simulator. See docs/benchmarks.md.")
    sub = parser.add_subparsers(dest="suite", metavar="SUITE")
    topo = sub.add_parser(
        "topologies", help="compare topologies: rounds, bytes and modelled time to a target",
        description="Compare topologies on the simulator: rounds, bytes and modelled time to "
        "a target accuracy, final accuracies, consensus distance, and the measured vs "
        "theoretical contraction of pure gossip. Writes OUT/results.json, OUT/report.md and "
        "PNG plots.")
    topo.add_argument("--quick", action="store_true",
                      help="the quick preset (n=16, one task, one seed; about a minute)")
    topo.add_argument("--config", metavar="FILE",
                      help="TOML file overriding keys of the preset (see docs/benchmarks.md; "
                           "default: the preset as it is)")
    topo.add_argument("--out", required=True, metavar="DIR", help="output directory")
    topo.add_argument("--report-only", action="store_true",
                      help="run nothing: rebuild targets, report and plots from OUT/results.json")
    topo.add_argument("--json", action="store_true",
                      help="print a JSON summary (winners and targets) at the end")
    for name, what in (("compression", "accuracy vs bytes of compressed gossip (Choco, "
                                        "naive, with and without error feedback) and the "
                                        "Choco consensus check"),
                       ("heterogeneity", "D-PSGD with momentum vs QG-DSGDm, gradient "
                                         "tracking and D² over Dirichlet alpha on a ring")):
        algo = sub.add_parser(name, help=what, description=f"{what[0].upper()}{what[1:]}. "
                              "Writes OUT/results.json, OUT/report.md (and a PNG plot). See "
                              "docs/benchmarks.md.")
        algo.add_argument("--quick", action="store_true",
                          help="the quick preset (one task, n=16, one seed, short runs)")
        algo.add_argument("--out", required=True, metavar="DIR", help="output directory")
        algo.add_argument("--report-only", action="store_true",
                          help="run nothing: rebuild the report and plots from "
                               "OUT/results.json")
    robust = sub.add_parser(
        "robustness", help="honest accuracy under Byzantine attacks, with and without each "
        "defence", description="Honest accuracy of D-PSGD with K attackers, every attack x "
        "{plain D-PSGD, each defence}, and its drop against K = 0. Writes OUT/results.json, "
        "OUT/report.md and PNG plots. See docs/benchmarks.md and docs/robustness.md.")
    robust.add_argument("--quick", action="store_true",
                        help="the quick preset (the must-show cell: 1 attacker of 16, "
                             "exponential, digits-MLP, IID; sign_flip, alie, huge; plain "
                             "D-PSGD and clip; 8 runs)")
    robust.add_argument("--config", metavar="FILE",
                        help="TOML file overriding keys of the preset (docs/benchmarks.md; "
                             "default: the preset as it is)")
    robust.add_argument("--out", required=True, metavar="DIR",
                        help="output directory; every finished run is appended to "
                             "OUT/runs.jsonl, and a rerun with the same OUT skips the runs "
                             "already there")
    robust.add_argument("--compile-cache", metavar="DIR",
                        help="keep compiled rounds in DIR (jax's persistent compilation "
                             "cache), so that a resumed grid does not compile them again "
                             "(default: none, compile in memory only)")
    robust.add_argument("--report-only", action="store_true",
                        help="run nothing: rebuild results.json, the report and plots from "
                             "the runs in OUT/runs.jsonl (a partial grid says how many runs "
                             "of how many it holds)")
    strag = sub.add_parser(
        "stragglers", help="sync, deadline, time-budgeted and async gossip against slow peers "
        "(event simulator)",
        description="Sync, sync with a deadline, time-budgeted and async gossip against slow "
        "peers, on the event simulator: simulated time and bytes to a target accuracy, final "
        "accuracy, staleness. Writes OUT/results.json, OUT/report.md and "
        "OUT/accuracy_vs_time.png. See docs/benchmarks.md.")
    strag.add_argument("--quick", action="store_true",
                       help="the quick preset (n=16, ring, no straggler and one 4x, IID and "
                            "Dirichlet 0.1, one seed; a few minutes)")
    strag.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs ``gossip bench``.

    Args:
        args: the parsed arguments of the ``bench`` parser.

    Returns:
        The exit code; user errors raise ``ConfigError``.
    """
    if args.suite in ("compression", "heterogeneity"):
        from gossip.bench.algorithms import rerender, run_algorithm_bench  # JAX, the zoo

        if args.report_only:
            rerender(args.out)
            print(f"report: {args.out}/report.md")
            return 0
        command = " ".join([f"gossip bench {args.suite}", *(["--quick"] if args.quick else []),
                            "--out", shlex.quote(args.out)])
        run_algorithm_bench(args.suite, args.quick, args.out, command,
                            lambda line: print(line, file=sys.stderr, flush=True))
        print(f"report: {args.out}/report.md")
        return 0
    if args.suite == "robustness":
        from gossip.bench.robustness import load_preset, run_robustness_bench

        load_preset(args.quick, args.config)  # bad input: one line before any run
        if args.compile_cache:  # as real peers' compile_cache (gossip/launch/compile_cache.py)
            import jax

            jax.config.update("jax_compilation_cache_dir", args.compile_cache)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
        command = " ".join(["gossip bench robustness", *(["--quick"] if args.quick else []),
                            *(["--config", shlex.quote(args.config)] if args.config else []),
                            "--out", shlex.quote(args.out)])
        results = run_robustness_bench(args.quick, args.out, command,
                                       lambda line: print(line, file=sys.stderr, flush=True),
                                       args.config, args.report_only)
        from gossip.bench.robustness import findings

        for line in findings(results):
            print(line)
        print(f"{len(results['runs'])} of the grid's {results['grid_runs']} runs; report: "
              f"{args.out}/report.md")
        return 0
    if args.suite == "stragglers":
        from gossip.bench.stragglers import run_stragglers_bench  # JAX and the model zoo

        command = " ".join(["gossip bench stragglers", *(["--quick"] if args.quick else []),
                            "--out", shlex.quote(args.out)])
        results = run_stragglers_bench(args.quick, args.out, command,
                                       lambda line: print(line, file=sys.stderr, flush=True))
        from gossip.bench.stragglers import findings, summarise

        for line in findings(summarise(results)):
            print(line)
        print(f"report: {args.out}/report.md")
        return 0
    if args.suite != "topologies":
        raise ConfigError("gossip bench needs a suite; valid choices: topologies, "
                          "compression, heterogeneity, robustness, stragglers")
    from gossip.bench.runner import rerender, run_topology_bench  # JAX and the model zoo
    from gossip.bench.suite import load_suite

    suite = load_suite(args.config, args.quick)
    command = " ".join(["gossip bench topologies", *(["--quick"] if args.quick else []),
                        *(["--config", shlex.quote(args.config)] if args.config else []),
                        "--out", shlex.quote(args.out)])
    if args.report_only:
        results = rerender(suite, args.out)
    else:
        results = run_topology_bench(suite, args.out, command)
    if args.json:
        print(json.dumps(summary_json(results)))
    else:
        for line in results["findings"]:
            print(line)
        print(f"report: {args.out}/report.md")
    return 0


def summary_json(results: dict[str, Any]) -> dict[str, Any]:
    """The short JSON summary: targets, winners per setting and the running time."""
    from gossip.bench.ranking import winners

    nets = [n["name"] for n in results["suite"]["networks"]]
    keys = ["rounds_to_target", "bytes_per_peer_to_target", "bytes_busiest_peer_to_target",
            *[f"time_to_target/{n}" for n in nets]]
    won = {k: winners(results["summary"], k) for k in keys}
    return {
        "wall_time_s": results["wall_time_s"],
        "settings": [{"task": t["task"], "n": t["n"], "partition": t["partition"],
                      "target": t["target"],
                      "winners": {k: won[k].get((t["task"], t["n"], t["partition"]))
                                  for k in keys}}
                     for t in results["targets"]],
    }
