"""Writes checkpoints in a tight loop, for the kill test in ``test_checkpoint.py``.

Usage: ``python -m checkpoint_writer PATH``, then one start round per line on stdin. For each line
the process forks a writer that saves rounds ``k = start, start + 1, ...`` to ``PATH`` (every leaf
equal to ``k``, meta ``{"round": k}``), prints ``saved PID`` after its first save, and runs until
killed; the parent reaps it and prints ``reaped``. Forking restarts the writer without paying for a
fresh ``import jax`` each time (no JAX computation runs before the fork).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import optax

from gossip.peer.checkpoint import save_checkpoint


def trees(k: int) -> dict:
    """About 3 MB of params, Adam state and an empty state, every leaf equal to ``k``."""
    params = {"w": np.full((256, 512), k, np.float32), "b": np.full(131072, k, np.float32)}
    adam = optax.ScaleByAdamState(count=np.array(k, np.int32), mu=params, nu=params)
    return {"params": params, "opt_state": (adam, optax.EmptyState())}


def main() -> None:
    path = sys.argv[1]
    while line := sys.stdin.readline():
        start = int(line)
        pid = os.fork()
        if pid == 0:
            try:
                k = start
                while True:
                    save_checkpoint(path, trees(k), {"round": k})
                    if k == start:
                        print("saved", os.getpid(), flush=True)
                    k += 1
            finally:
                os._exit(1)
        os.waitpid(pid, 0)
        print("reaped", flush=True)


if __name__ == "__main__":
    main()
