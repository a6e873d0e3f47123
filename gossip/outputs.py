"""Where a run writes: a new directory per run by default, and a clear error for a bad ``--out``.

``gossip sim`` and ``gossip launch`` without ``out`` (no ``--out`` flag, no ``out`` key) write
into a new directory ``runs/<command>-YYYYmmdd-HHMMSS`` (``-2``, ``-3`` ... appended when
that name is taken), so a run never overwrites an earlier one unless ``--out`` names it.
``gossip peer`` keeps one fixed default, ``runs/peer``: the peers of a run, started at
different moments, must agree on it, and ``--resume`` must find it again.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from pathlib import Path

from gossip.config import Config
from gossip.errors import ConfigError

RUNS = Path("runs")
PEER_DEFAULT = RUNS / "peer"


def new_run_dir(command: str, root: Path = RUNS, now: datetime.datetime | None = None) -> Path:
    """A directory name no existing path has: ``root/<command>-YYYYmmdd-HHMMSS[-k]``.

    Args:
        command: ``"sim"`` or ``"launch"``.
        root: where run directories go.
        now: the time stamp (default: now, local time).
    """
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    path, k = root / f"{command}-{stamp}", 2
    while path.exists():
        path, k = root / f"{command}-{stamp}-{k}", k + 1
    return path


def check_out(path: Path) -> None:
    """Raises ConfigError, in one line, when ``path`` cannot be a run directory: it (or a
    folder above it) is a file, or the nearest existing folder above it is not writable."""
    for p in (path, *path.parents):
        if not p.exists():
            continue
        if not p.is_dir():
            what = "is a file" if p == path else f"cannot be made: {p} is a file"
            raise ConfigError(f"--out {path} {what}; give a directory")
        if p != path and not os.access(p, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {path} cannot be made: {p} is not writable")
        if p == path and not os.access(p, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {path} is not writable")
        return


def with_out(config: Config, command: str) -> Config:
    """The config with its run directory decided and checked (nothing is created).

    Args:
        config: the run's config; ``out`` empty means a new directory for this run.
        command: ``"sim"``, ``"launch"`` or ``"peer"``.

    Raises:
        ConfigError: the directory cannot be used (see :func:`check_out`).
    """
    if config.out:
        out = Path(config.out)
    elif command == "peer":
        out = PEER_DEFAULT
    else:
        out = new_run_dir(command)
    check_out(out)
    return dataclasses.replace(config, out=str(out))


def make_out(path: Path) -> Path:
    """Creates the run directory (and its parents); an OSError becomes one ConfigError line."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {path}: cannot create it: {e.strerror}") from None
    return path
