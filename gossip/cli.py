"""The ``gossip`` command line: ``gossip sim``, ``plot``, ``topo``, ``peer``, ``launch``,
``keys``, ``bench``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from gossip import bench_cli, plot_cli, topo_cli
from gossip.config import add_config_flags, config_from_args
from gossip.errors import ConfigError
from gossip.flag_choices import CHOICES
from gossip.launch import cli as peer_cli
from gossip.launch import keys as keys_cli

EPILOG = ("Documentation: README.md and docs/ in the repository; start with "
          "docs/tutorial.md. Every config key and flag: docs/config.md.")
SIGPIPE_STATUS = 141  # what a shell reports for a process that SIGPIPE ended


def version() -> str:
    """The installed package's version."""
    try:
        return metadata.version("gossip-train")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _run_sim(args: argparse.Namespace) -> int:
    from gossip.simulate import run_simulation  # the simulator pulls in the model zoo

    run_simulation(config_from_args(args), progress=not args.no_progress,
                   plot=not args.no_plot)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="gossip", description="gossip-train: decentralized deep learning in JAX, simulated "
        "or over ZeroMQ.", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"gossip-train {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sim = sub.add_parser(
        "sim", help="simulate N peers on this machine (vectorised)",
        description="Simulate decentralized training of N peers in one process. With no "
        "arguments: 16 peers, ring, digits, MLP, 300 rounds (about a minute). Writes "
        "config.toml, metrics.jsonl and curves.png into a new directory "
        "runs/sim-YYYYmmdd-HHMMSS (or --out) and prints a summary.",
        epilog="Metrics: docs/metrics.md. Python API: docs/simulator.md. " + EPILOG)
    add_config_flags(sim, command="sim", choices=CHOICES)
    sim.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sim.add_argument("--no-plot", action="store_true",
                     help="do not draw OUT/curves.png (gossip plot draws it later)")
    sim.set_defaults(func=_run_sim)
    plot_cli.add_parser(sub)
    topo_cli.add_parser(sub)
    sub.choices["topo"].set_defaults(func=topo_cli.run)
    peer_cli.add_parsers(sub, choices=CHOICES, epilog=EPILOG)
    keys_cli.add_parser(sub)
    bench_cli.add_parser(sub)
    return parser


def _quiet_stdout() -> None:
    """After a write to a closed stdout (``gossip sim | head``): point stdout at /dev/null,
    so the interpreter's final flush cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def _dispatch(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (argparse printed it)
        return e.code if isinstance(e.code, int) else 0
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
    except Exception as e:
        message = out_of_memory(e)
        if message is None:
            raise
        print(f"gossip: error: {message}", file=sys.stderr)
        return 2


def out_of_memory(error: BaseException) -> str | None:
    """One line naming what would not fit, when ``error`` is running out of memory (numpy's or
    Python's ``MemoryError``, XLA's ``RESOURCE_EXHAUSTED``); None for any other error."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(error, MemoryError):
        what = first or "an allocation"
    elif "RESOURCE_EXHAUSTED" in text or "Out of memory" in text:
        what = first.removeprefix("RESOURCE_EXHAUSTED: ")
    else:
        return None
    return (f"out of memory: {what} (fewer peers, a smaller model or dataset, or "
            f"JAX_NUM_CPU_DEVICES / more devices to shard the peers over)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gossip`` console script: the exit status.

    Bad input is one ``gossip: error: ...`` line and status 2. A closed stdout (``gossip sim
    | head -5``) ends the command quietly with status 141, as a shell reports SIGPIPE.
    """
    try:
        status = _dispatch(argv)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        _quiet_stdout()
        return SIGPIPE_STATUS


if __name__ == "__main__":
    sys.exit(main())
