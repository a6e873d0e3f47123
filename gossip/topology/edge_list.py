"""A static topology read from an edge-list text file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gossip.errors import ConfigError
from gossip.topology.base import Topology, undirected_edges


def read_edge_list(path: str | Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Reads the edges of a text file: one ``i j`` pair per line, ``#`` starts a comment.

    Args:
        path: the file.
        n: number of peers; ids must lie in ``[0, n)``.

    Returns:
        ``(i, j)``: int64 (E,) arrays, one entry per line with an edge.

    Raises:
        ConfigError: missing file, a line that is not two integers, or an id out of range.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read edge list {str(path)!r}: {e.strerror or e}") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        try:
            if len(fields) != 2:
                raise ValueError
            i, j = int(fields[0]), int(fields[1])
        except ValueError:
            raise ConfigError(f"{path}:{number}: expected two peer ids 'i j', got "
                              f"{line.strip()!r}") from None
        for v in (i, j):
            if not 0 <= v < n:
                raise ConfigError(f"{path}:{number}: peer id {v} out of range [0, {n})")
        pairs.append((i, j))
    edges = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return edges[:, 0], edges[:, 1]


class EdgeList(Topology):
    """A static graph from a file (see ``read_edge_list``); self loops and repeats are ignored.

    Options:
        path: the edge-list file (required).
        directed: if True a line ``i j`` is the edge i -> j (i sends to j); if False (default)
            it joins i and j both ways. Undirected lists default to Metropolis weights,
            directed ones to uniform.
    """

    name = "edge_list"
    OPTIONS = {"path": None, "directed": False}
    regular = False

    def _setup(self, path: Any, directed: Any) -> None:
        if path is None:
            raise ConfigError("topology 'edge_list' needs the option path=FILE")
        if not isinstance(directed, bool):
            raise ConfigError(f"directed must be true or false, got {directed!r}")
        i, j = read_edge_list(path, self.n)
        self._set_static(*((i, j) if directed else undirected_edges(i, j)))
