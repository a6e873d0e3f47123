"""A suite's ``OUT/runs.jsonl``: one finished run per line, appended as the run ends.

A long grid (``gossip bench robustness``, ``gossip bench stragglers``) accumulates over
several sessions: a rerun with the same OUT reads the runs already there
(:func:`read_runs`) and runs only the others, appending each (:func:`appending`). A line
cut off while it was written (the process was killed) is skipped, and the next run starts a
line of its own.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Log = Callable[[str], None]
RunKey = Callable[[dict[str, Any]], str]


def read_runs(path: Path, key: RunKey, log: Log | None = None) -> dict[str, dict[str, Any]]:
    """The finished runs of ``path`` by ``key(run)``, the first of duplicates; none if
    ``path`` does not exist.

    Args:
        path: a ``runs.jsonl``.
        key: what identifies a run of the grid (its labels and settings), as text.
        log: told of each line that is not a finished run (and is skipped).
    """
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done
    for i, line in enumerate(path.read_text().splitlines(), 1):
        try:
            run = json.loads(line)
            run_id = key(run)
        except (ValueError, AttributeError, KeyError, TypeError):  # not JSON, not a run
            if log and line.strip():
                log(f"{path}:{i}: not a finished run, skipped")
            continue
        done.setdefault(run_id, run)
    return done


@contextlib.contextmanager
def appending(path: Path) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Opens ``path`` to append runs; yields ``write(run)``, which adds ``run`` as one line
    and flushes it, so that a run is on disk as soon as it ends."""
    with path.open("a") as sink:
        if sink.tell() and not path.read_bytes().endswith(b"\n"):
            sink.write("\n")  # a run cut off while it was written stays a line of its own

        def write(run: dict[str, Any]) -> None:
            sink.write(json.dumps(run) + "\n")
            sink.flush()

        yield write
