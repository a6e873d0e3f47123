"""``gossip bench robustness`` (issue 14): honest accuracy under attack, with and without
each defence.

A grid of simulator runs (``gossip.simulate.simulate``): tasks × topologies × partitions ×
seeds, K attackers of N peers (drawn from the seed) × every attack × {plain D-PSGD, each
defence}. K = 0 has no attack: one run per defence. Every run keeps its metrics records in
``results.json``; ``report.md`` and the plots are made from that file only. The honest
accuracy of a run is the test accuracy of the honest peers' average model at the end
(``honest_avg_model_acc``; ``avg_model_acc`` when K = 0), and its drop is against K = 0
with the same defence, task, topology, partition and seed.

``QUICK`` is the issue's must-show cell (one attacker of 16, exponential graph,
digits-MLP, IID; sign flip, ALIE and huge values; plain D-PSGD and clipping); ``FULL`` is
the issue's grid (about 1,600 runs); ``--config FILE`` overrides any preset key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gossip.attacks import ATTACKS
from gossip.config import load_toml, resolve
from gossip.errors import ConfigError
from gossip.experiment import build_experiment
from gossip.rules import ROBUST
from gossip.simulate import simulate

Log = Callable[[str], None]
TASKS: dict[str, dict[str, Any]] = {
    "digits-mlp": {"dataset": "digits", "model": "mlp"},
    "mnist1d-cnn": {"dataset": "mnist1d", "model": "cnn1d"},
}
PARTITIONS: dict[str, dict[str, Any]] = {
    "iid": {"partition": "iid"},
    "dirichlet0.5": {"partition": "dirichlet", "alpha": 0.5},
}
DEFENCES = ("none", *ROBUST)
FULL: dict[str, Any] = {
    "tasks": list(TASKS), "topologies": ["exponential", "ring"],
    "partitions": list(PARTITIONS), "peers": 16, "byzantine": [0, 1, 2],
    "attacks": list(ATTACKS), "defences": list(DEFENCES), "seeds": [0, 1, 2],
    "rounds": 300, "eval_every": 50,
}
QUICK: dict[str, Any] = {
    **FULL, "tasks": ["digits-mlp"], "topologies": ["exponential"], "partitions": ["iid"],
    "byzantine": [0, 1], "attacks": ["sign_flip", "alie", "huge"], "defences": ["none", "clip"],
    "seeds": [0],
}
_LISTS = {"tasks": TASKS, "partitions": PARTITIONS, "attacks": ATTACKS, "defences": DEFENCES}


def load_preset(quick: bool, path: str | None) -> dict[str, Any]:
    """The preset (``QUICK`` or ``FULL``) with the keys of a TOML file over it.

    Raises:
        ConfigError: an unknown key, or an unknown name in a list.
    """
    preset = dict(QUICK if quick else FULL)
    if path:
        for key, value in load_toml(path).items():
            if key not in FULL:
                raise ConfigError(f"unknown robustness preset key {key!r}; valid keys: "
                                  f"{', '.join(FULL)}")
            preset[key] = value
    for key, names in _LISTS.items():
        for name in preset[key]:
            if name not in names:
                raise ConfigError(f"unknown {key[:-1]} {name!r} in the robustness preset; "
                                  f"valid choices: {', '.join(names)}")
    if 0 not in preset["byzantine"]:
        raise ConfigError("the robustness preset needs byzantine 0 (the baseline of the drop)")
    return preset


def grid(preset: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs of a preset: one dict of labels per run (K = 0 once per defence)."""
    runs = []
    for task in preset["tasks"]:
        for topology in preset["topologies"]:
            for partition in preset["partitions"]:
                for seed in preset["seeds"]:
                    for k in preset["byzantine"]:
                        for attack in (["none"] if k == 0 else preset["attacks"]):
                            for defence in preset["defences"]:
                                runs.append({"task": task, "topology": topology,
                                             "partition": partition, "seed": seed, "k": k,
                                             "attack": attack, "defence": defence})
    return runs


def run_one(run: dict[str, Any], preset: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics records of one run of the grid."""
    keys = {**TASKS[run["task"]], **PARTITIONS[run["partition"]], "peers": preset["peers"],
            "topology": run["topology"], "seed": run["seed"], "rounds": preset["rounds"],
            "eval_every": preset["eval_every"], "robust": run["defence"]}
    if run["k"]:
        keys.update(byzantine=run["k"], attack=run["attack"])
    records: list[dict[str, Any]] = []
    simulate(build_experiment(resolve({}, keys)), None, progress=False,
             on_eval=records.append)
    return records


def honest(record: dict[str, Any]) -> tuple[float, float]:
    """(honest average-model accuracy, honest mean local accuracy) of a record."""
    return (record.get("honest_avg_model_acc", record["avg_model_acc"]),
            record.get("honest_acc_mean", record["local_acc_mean"]))


def run_robustness(preset: dict[str, Any], log: Log) -> dict[str, Any]:
    """Runs the grid; returns the raw results (what ``results.json`` holds)."""
    start = time.perf_counter()
    runs = grid(preset)
    for i, run in enumerate(runs):
        t0 = time.perf_counter()
        records = run_one(run, preset)
        run["round"] = [r["round"] for r in records]
        run["honest_acc"] = [honest(r)[0] for r in records]
        run["honest_acc_mean"] = [honest(r)[1] for r in records]
        log(f"[{i + 1}/{len(runs)}] {run['task']} {run['topology']} {run['partition']} "
            f"seed={run['seed']} K={run['k']} {run['attack']} / {run['defence']}: honest acc "
            f"{run['honest_acc'][-1]:.3f} ({time.perf_counter() - t0:.1f} s)")
    return {"suite": "robustness", "preset": preset, "runs": runs,
            "wall_time_s": time.perf_counter() - start}


def _final(runs: list[dict[str, Any]]) -> dict[tuple, list[float]]:
    out: dict[tuple, list[float]] = {}
    for r in runs:
        cell = (r["task"], r["topology"], r["partition"], r["k"], r["attack"], r["defence"])
        out.setdefault(cell, []).append(r["honest_acc"][-1])
    return out


def _acc(x: float) -> float:
    return 0.0 if not np.isfinite(x) else x


def findings(results: dict[str, Any]) -> list[str]:
    """The issue's must-show checks, where the grid has them: with one attacker (exponential,
    digits-MLP, IID) plain D-PSGD drops >= 10 points and clipping stays within 2 points of
    no attack (plain D-PSGD, K = 0)."""
    acc = {c: float(np.mean(v)) for c, v in _final(results["runs"]).items()}
    lines = []
    base_cell = ("digits-mlp", "exponential", "iid", 0, "none", "none")
    if base_cell not in acc:
        return lines
    base = acc[base_cell]
    for attack in ("sign_flip", "alie", "huge"):
        plain = acc.get(("digits-mlp", "exponential", "iid", 1, attack, "none"))
        clip = acc.get(("digits-mlp", "exponential", "iid", 1, attack, "clip"))
        if plain is None or clip is None:
            continue
        bites = base - _acc(plain) >= 0.10
        holds = clip >= base - 0.02
        lines.append(f"{attack}, K=1 of 16, exponential, digits-MLP, IID: plain D-PSGD "
                     f"{plain:.3f} vs {base:.3f} without attack (drop "
                     f"{(base - _acc(plain)) * 100:.1f} points: "
                     f"{'bites' if bites else 'does NOT bite'} >= 10); clip {clip:.3f} "
                     f"({'within' if holds else 'NOT within'} 2 points of no attack)")
    return lines


def robustness_report(results: dict[str, Any]) -> str:
    """``report.md`` of the robustness suite, from its results."""
    preset = results["preset"]
    acc = _final(results["runs"])
    seeds = len(preset["seeds"])
    lines = ["# Robustness benchmark", "",
             f"Command: `{results['command']}`; {len(results['runs'])} runs, "
             f"{results['wall_time_s']:.0f} s.", "",
             f"{preset['peers']} peers, {preset['rounds']} rounds, seeds "
             f"{preset['seeds']}. Honest accuracy: test accuracy of the honest peers' average "
             f"model after the last round (mean over {seeds} seed(s)); in brackets the drop "
             "in points against K = 0 with the same defence. NaN (parameters that are no "
             "longer finite) counts as 0 in the drop.", "",
             "## Must show", "", *[f"- {f}" for f in findings(results)], ""]
    cells = sorted({c[:3] for c in acc})
    ks = [k for k in preset["byzantine"] if k]
    for task, topology, partition in cells:
        lines += [f"## {task}, {topology}, {partition}", "",
                  "| attack | defence | " + " | ".join(f"K = {k}" for k in ks) + " |",
                  "|---|---|" + "---|" * len(ks)]
        base = {d: float(np.mean(acc[(task, topology, partition, 0, "none", d)]))
                for d in preset["defences"]
                if (task, topology, partition, 0, "none", d) in acc}
        lines.append("| (none: K = 0) | " + ", ".join(f"{d} {b:.3f}" for d, b in base.items())
                     + " |" + " |" * (len(ks) - 1))
        for attack in preset["attacks"]:
            for defence in preset["defences"]:
                row = []
                for k in ks:
                    v = acc.get((task, topology, partition, k, attack, defence))
                    if v is None:
                        row.append("—")
                        continue
                    mean = float(np.mean(v))
                    drop = (base.get(defence, np.nan) - _acc(mean)) * 100
                    row.append(f"{mean:.3f} ({drop:+.1f})")
                lines.append(f"| {attack} | {defence} | " + " | ".join(row) + " |")
        lines += ["", f"![honest accuracy]({_plot_name(task, topology, partition)})", ""]
    return "\n".join(lines)


def _plot_name(task: str, topology: str, partition: str) -> str:
    return f"honest_acc_{task}_{topology}_{partition}.png"


def plot_robustness(results: dict[str, Any], out: Path) -> list[Path]:
    """One grouped bar chart per (task, topology, partition): the honest accuracy for each
    attack (groups) and defence (bars) with the largest K of the grid, and the K = 0 line."""
    from gossip.bench.plots import _pyplot

    plt = _pyplot()
    preset, acc = results["preset"], _final(results["runs"])
    k = max(preset["byzantine"])
    paths = []
    for task, topology, partition in sorted({c[:3] for c in acc}):
        fig, ax = plt.subplots(figsize=(8, 4.6))
        attacks, defences = preset["attacks"], preset["defences"]
        width = 0.8 / len(defences)
        for j, d in enumerate(defences):
            ys = [_acc(float(np.mean(acc.get((task, topology, partition, k, a, d), [np.nan]))))
                  for a in attacks]
            ax.bar(np.arange(len(attacks)) + (j - (len(defences) - 1) / 2) * width, ys, width,
                   label=d)
        base = acc.get((task, topology, partition, 0, "none", "none"))
        if base:
            ax.axhline(float(np.mean(base)), color="k", ls="--", lw=1,
                       label="plain D-PSGD, no attack")
        ax.set_xticks(np.arange(len(attacks)), attacks)
        ax.set_ylim(0, 1)
        ax.set_ylabel("honest average-model test accuracy")
        ax.set_title(f"{task}, {topology}, {partition}: K = {k} of {preset['peers']} peers")
        ax.legend(fontsize=7, ncols=len(defences) + 1, loc="upper center",
                  bbox_to_anchor=(0.5, -0.1), frameon=False)
        fig.tight_layout()
        path = out / _plot_name(task, topology, partition)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def run_robustness_bench(quick: bool, out_dir: str | Path, command: str, log: Log,
                         config: str | None = None) -> dict[str, Any]:
    """Runs the robustness suite and writes ``results.json``, ``report.md`` and plots.

    Args:
        quick: the quick preset (else the full one).
        out_dir: output directory, created when the runs are done.
        command: the command line, recorded in the results.
        log: receives progress lines.
        config: a TOML file overriding preset keys, or None.

    Returns:
        The results (the content of ``OUT/results.json``).
    """
    preset = load_preset(quick, config)
    results = {**run_robustness(preset, log), "command": command}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    results = json.loads((out / "results.json").read_text())  # reports come from the file
    plot_robustness(results, out)
    (out / "report.md").write_text(robustness_report(results))
    return results
