"""The ``gossip`` command line: ``gossip sim``, ``topo``, ``peer``, ``launch``, ``keys``,
``bench``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gossip import bench_cli, topo_cli
from gossip.config import add_config_flags, config_from_args
from gossip.errors import ConfigError
from gossip.launch import cli as peer_cli
from gossip.launch import keys as keys_cli


def _run_sim(args: argparse.Namespace) -> int:
    from gossip.simulate import run_simulation  # the simulator pulls in the model zoo

    run_simulation(config_from_args(args), progress=not args.no_progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="gossip", description="gossip-train: decentralized deep learning in JAX, simulated "
        "or over ZeroMQ.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sim = sub.add_parser("sim", help="simulate N peers on this machine (vectorised)",
                         description="Simulate decentralized training of N peers. With no "
                         "arguments: 16 peers, ring, digits, MLP.")
    add_config_flags(sim)
    sim.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sim.set_defaults(func=_run_sim)
    topo_cli.add_parser(sub)
    sub.choices["topo"].set_defaults(func=topo_cli.run)
    peer_cli.add_parsers(sub)
    keys_cli.add_parser(sub)
    bench_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gossip`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"gossip: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gossip: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
