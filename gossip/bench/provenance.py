"""Where a benchmark writes, and what every result file records about how it was made.

Every benchmark (``benchmarks/*.py``, ``gossip bench ...``) writes to the ``--out`` it is
given, or to a new directory ``runs/bench-<name>-YYYYmmdd-HHMMSS`` (``gossip.outputs``), so
a rerun never replaces the committed figures: only an explicit ``--out benchmarks/results/...``
does. Each result file carries ``provenance()``: the command, the time, the machine (CPU model,
cores, memory, load) and the versions of python, jax, jaxlib, numpy, pyzmq and libzmq.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from gossip.errors import ConfigError
from gossip.outputs import check_out, make_out, new_run_dir

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
"""The committed figures (in a source checkout); written only when ``--out`` names them."""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """The machine and software a figure was measured on.

    Returns:
        ``cpu`` (model name), ``cores`` (logical CPUs), ``memory_gib``, ``platform``,
        ``load_average`` (1, 5 and 15 minutes, when measured: other users' work shows here),
        and the versions ``python``, ``jax``, ``jaxlib``, ``numpy``, ``pyzmq``, ``libzmq``.
        Nothing here imports jax.
    """
    import zmq  # a main dependency; cheap to import

    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = round(pages / 2**30, 1)
    except (OSError, ValueError):
        memory = None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": memory,
            "platform": platform.platform(), "load_average": load,
            "python": platform.python_version(), "jax": _version("jax"),
            "jaxlib": _version("jaxlib"), "numpy": _version("numpy"),
            "pyzmq": zmq.pyzmq_version(), "libzmq": zmq.zmq_version()}


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that is running, shell-quoted: ``python benchmarks/wire.py --json``."""
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith(".py"):
        argv = ["python", os.path.relpath(argv[0]) if os.path.isabs(argv[0]) else argv[0],
                *argv[1:]]
    return shlex.join(argv)


def provenance(command: str | None = None) -> dict[str, Any]:
    """``{"command", "date", "machine"}`` for a result file (``machine_info``; the date in
    UTC, ISO 8601)."""
    return {"command": command or command_line(),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine_info()}


def bench_out(name: str, out: str | Path | None) -> Path:
    """The directory a benchmark writes into, created: ``out``, or a new
    ``runs/bench-<name>-YYYYmmdd-HHMMSS`` when ``out`` is None or empty.

    Raises:
        ConfigError: ``out`` cannot be a directory (a file, or not writable).
    """
    path = Path(out) if out else new_run_dir(f"bench-{name}")
    check_out(path)
    return make_out(path)


def script_out(name: str, out: str | Path | None) -> Path:
    """``bench_out`` for a benchmark script: a bad ``--out`` is one line
    ``<script>: error: ...`` on stderr and exit status 2, never a traceback."""
    try:
        return bench_out(name, out)
    except ConfigError as e:
        print(f"{Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def write_result(path: Path, result: dict[str, Any]) -> Path:
    """Writes ``result`` as indented JSON (and a final newline) to ``path``; returns it."""
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
