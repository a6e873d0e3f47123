"""The end of ``gossip launch``: the peers' final parameters evaluated together.

Writes ``OUT/metrics.jsonl`` with one record in the simulator's schema (average model,
local models, consensus distance, distance to the optimum where the dataset knows it, bytes,
messages) plus the sums of the peers' counters and the launcher's restarts, and prints the
same summary table as ``gossip sim``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gossip.evaluate import evaluation_record, make_evaluator, matching_optimum
from gossip.peer.inbox import Counters
from gossip.plots import write_run_curves
from gossip.pytree import load_npz
from gossip.summary_table import METRIC_SHORT, summary_table


def last_record(path: Path) -> dict[str, Any] | None:
    """The last complete line of a peer's metrics file, or None."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return None


def summarise_run(exp: Any, out: Path, wall_time: float,
                  plot: bool = True,
                  restarts: list[int] | None = None) -> dict[str, Any] | None:
    """Evaluates the final parameters in ``out/params``, writes ``out/metrics.jsonl`` (and
    ``out/curves.png`` when ``plot``), and prints the summary table.

    Args:
        exp: the run's ``gossip.experiment.Experiment``.
        out: the run's output directory.
        wall_time: seconds the run took.
        plot: draw the run's curves.
        restarts: how many times the launcher restarted each peer (``restarts`` is their
            sum and ``restarts_per_peer`` the list in the record); None: not recorded.

    Returns:
        The summary record, or None when no peer left parameters.
    """
    cfg = exp.config
    like = jax.eval_shape(exp.model.init, jax.random.key(0),
                          jnp.asarray(exp.dataset.x_train[:1]))  # structure only
    peers = [i for i in range(cfg.peers) if (out / "params" / f"peer-{i:04d}.npz").is_file()]
    if not peers:
        print("gossip launch: no peer finished; nothing to summarise", file=sys.stderr)
        return None
    params = [load_npz(out / "params" / f"peer-{i:04d}.npz", like) for i in peers]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *params)
    optimum = matching_optimum(exp.dataset.optimum, like)
    lasts = [last_record(out / f"peer-{i:04d}.jsonl") for i in peers]
    records = [r for r in lasts if r]
    # A peer that attacked says so in its records: the honest_* metrics leave it out.
    honest = np.array([not (r or {}).get("attacker", False) for r in lasts])
    mask = honest if honest.any() and not honest.all() else None
    ev = jax.device_get(make_evaluator(exp.model.metric, exp.model.loss, optimum=optimum,
                                       honest=mask)(
        stacked, jnp.asarray(exp.dataset.x_test), jnp.asarray(exp.dataset.y_test)))
    short = METRIC_SHORT[exp.model.metric_name]
    record: dict[str, Any] = {
        "round": min(r["round"] for r in records) if records else 0,
        "step": min(r["step"] for r in records) if records else 0,
        "time": round(wall_time, 4),
        "loss": float(np.mean([r["loss"] for r in records])) if records else float("nan"),
        **evaluation_record(ev, short),
        "peers": cfg.peers,
        "peers_finished": len(peers),
    }
    for key in Counters.__dataclass_fields__:
        record[key] = int(sum(r.get(key, 0) for r in records))
    if restarts is not None:
        record["restarts"] = sum(restarts)
        record["restarts_per_peer"] = list(restarts)
    (out / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    curves = write_run_curves(out) if plot else None
    print(summary_table(record, exp.model.metric_name))
    print(f"metrics: {out / 'metrics.jsonl'} and {out}/peer-XXXX.jsonl")
    if curves:
        print(f"curves: {curves}")
    return record
