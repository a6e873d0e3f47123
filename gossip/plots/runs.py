"""A run's curves, read from its metrics files, and labels for several runs from their configs.

A simulation (``gossip sim``) writes ``OUT/metrics.jsonl``: every key at every evaluation.
Real peers (``gossip launch``, ``gossip peer``) write ``OUT/peer-XXXX.jsonl``, one line per
round and peer; here they become one curve per key: training loss, local test metric
(mean, min and max over peers) at the evaluation rounds, bytes summed over peers, time the
slowest peer's. ``gossip launch``'s ``OUT/metrics.jsonl`` adds the final average model and
consensus distance, one point.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from gossip.errors import ConfigError

LABEL_SKIP = ("out", "save_params", "eval_every", "checkpoint_every")
"""Config keys that never tell runs apart in a legend."""


@dataclasses.dataclass
class Run:
    """The curves of one run, all against ``round``.

    Attributes:
        path: the run directory.
        kind: ``"sim"`` (one metrics file) or ``"peers"`` (real peers' files).
        config: the run's ``config.toml`` (empty when missing).
        metric: ``"acc"`` or ``"rmse"``: the key stem of the test metric.
        curves: key -> ``(rounds, values)`` float arrays; keys as in ``metrics.jsonl``
            (``avg_model_acc``, ``local_acc_mean`` ... ``consensus_distance``, ``bytes_sent``,
            ``loss``, ``avg_model_loss``, ``time``, ``opt_distance``).
        peers: ``(finished, total)`` for real peers, else None.
        label: the legend label (``run_labels``).
    """

    path: Path
    kind: str
    config: dict[str, Any]
    metric: str
    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    peers: tuple[int, int] | None = None
    label: str = ""

    def curve(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``(rounds, values)`` of a key, or None when the run does not have it."""
        return self.curves.get(key)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line being written, or cut by a crash
    return [r for r in records if isinstance(r, dict) and "round" in r]


def _series(records: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray] | None:
    pts = [(r["round"], r[key]) for r in records if isinstance(r.get(key), int | float)]
    if not pts:
        return None
    x, y = zip(*pts, strict=True)
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


def _metric_of(keys: set[str]) -> str:
    return "rmse" if any(k.endswith("rmse") or "_rmse_" in k for k in keys) else "acc"


def _sim_curves(records: list[dict[str, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    keys = {k for r in records for k in r}
    return {k: s for k in keys if k != "round" and (s := _series(records, k)) is not None}


def _peer_curves(files: list[Path], metric: str
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per round, over the peers that reported it."""
    per_peer = [_read_jsonl(f) for f in files]
    by_round: dict[int, list[dict[str, Any]]] = {}
    for records in per_peer:
        for r in records:
            by_round.setdefault(int(r["round"]), []).append(r)
    rounds = sorted(by_round)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def put(key: str, pts: list[tuple[int, float]]) -> None:
        if pts:
            x, y = zip(*pts, strict=True)
            curves[key] = (np.asarray(x, np.float64), np.asarray(y, np.float64))

    put("loss", [(t, float(np.mean([r["loss"] for r in by_round[t] if "loss" in r])))
                 for t in rounds if any("loss" in r for r in by_round[t])])
    put("time", [(t, max(r["time"] for r in by_round[t] if "time" in r))
                 for t in rounds if any("time" in r for r in by_round[t])])
    put("bytes_sent", [(t, float(sum(r.get("bytes_sent", 0) for r in by_round[t])))
                       for t in rounds])
    local = f"local_{metric}"
    evals = [(t, [r[local] for r in by_round[t] if local in r]) for t in rounds]
    evals = [(t, v) for t, v in evals if v]
    for stat, fn in (("mean", np.mean), ("min", np.min), ("max", np.max)):
        put(f"local_{metric}_{stat}", [(t, float(fn(v))) for t, v in evals])
    return curves


def load_run(path: str | Path) -> Run:
    """Reads a run directory.

    Raises:
        ConfigError: the directory is missing or holds no metrics file.
    """
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"run {path}: no such directory")
    config: dict[str, Any] = {}
    if (path / "config.toml").is_file():
        try:
            config = tomllib.loads((path / "config.toml").read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"run {path}: config.toml is not valid TOML: {e}") from None
    peer_files = sorted(path.glob("peer-[0-9]*.jsonl"))
    summary = _read_jsonl(path / "metrics.jsonl") if (path / "metrics.jsonl").is_file() else []
    if not peer_files and not summary:
        raise ConfigError(f"run {path}: no metrics.jsonl or peer-XXXX.jsonl in it")
    if not peer_files:
        keys = {k for r in summary for k in r}
        return Run(path, "sim", config, _metric_of(keys), _sim_curves(summary))
    first = _read_jsonl(peer_files[0])
    metric = _metric_of({k for r in first + summary for k in r})
    curves = _peer_curves(peer_files, metric)
    for key, series in _sim_curves(summary).items():  # the final evaluation of the launcher
        if key not in curves or key.startswith(("avg_model", "consensus", "opt_distance")):
            curves[key] = series
    total = int(config.get("peers", len(peer_files)))
    finished = summary[-1].get("peers_finished") if summary else None
    return Run(path, "peers", config, metric, curves,
               peers=(int(finished) if finished is not None else len(peer_files), total))


def run_labels(runs: list[Run]) -> list[str]:
    """One legend label per run: the config keys whose values differ between the runs
    (``topology=ring, lr=0.1``), with ``(real peers)`` / ``(sim)`` when both kinds are
    shown; the directory's name when that does not tell them apart."""
    keys = sorted({k for r in runs for k in r.config} - set(LABEL_SKIP))
    differ = [k for k in keys if len({repr(r.config.get(k)) for r in runs}) > 1]
    kinds = len({r.kind for r in runs}) > 1
    labels = []
    for r in runs:
        parts = [f"{k}={_short(r.config.get(k))}" for k in differ[:3]]
        if len(differ) > 3:
            parts.append("…")
        if kinds:
            parts.append("real peers" if r.kind == "peers" else "sim")
        labels.append(", ".join(parts))
    if len(runs) == 1 or len(set(labels)) < len(runs) or not all(labels):
        labels = [r.path.name or str(r.path) for r in runs]
    return labels


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
