"""``gossip bench robustness`` (issue 14): honest accuracy under attack, with and without
each defence.

A grid of simulator runs (``gossip.simulate.simulate``): seeds × tasks × topologies ×
partitions, K attackers of N peers (drawn from the seed) × every attack × {plain D-PSGD,
each defence}. Each defence tolerates f Byzantine in-neighbours: by default f = max(K, 1)
(``robust_f = "k"``), or a fixed f (``robust_f = F``). K = 0 has no attack: one run per
defence and per f of the grid, the baseline of the drop (same defence, same f).

Every finished run is appended to ``OUT/runs.jsonl`` as it ends; a rerun with the same OUT
skips the runs already there (same labels and settings), so a long grid accumulates over
several sessions. ``results.json``, ``report.md`` and the plots are made from that file
only, and say how many of the grid's runs they hold. Runs in one process share what does
not change between them (datasets, shards, initial parameters, compiled rounds and
evaluators: ``simulate(..., reuse=)``), with the same results as separate runs.

``QUICK`` is the issue's must-show cell (one attacker of 16, exponential graph,
digits-MLP, IID; sign flip, ALIE and huge values; plain D-PSGD and clipping); ``FULL`` is
the issue's grid (1,656 runs); ``--config FILE`` overrides any preset key.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gossip.attacks import ATTACKS, pick_attackers
from gossip.bench.provenance import machine_info
from gossip.bench.robustness_report import (
    findings,
    plot_robustness,
    robustness_report,
)
from gossip.bench.run_log import appending, read_runs
from gossip.config import load_toml, resolve
from gossip.errors import ConfigError
from gossip.experiment import (
    Experiment,
    build_experiment,
    check_attack,
    config_rule,
    topology_weights,
)
from gossip.rules import ROBUST
from gossip.topology import make_topology

__all__ = ["FULL", "QUICK", "findings", "grid", "load_preset", "plot_robustness",
           "robustness_report", "run_robustness", "run_robustness_bench", "write_outputs"]

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
    "rounds": 300, "eval_every": 100, "robust_f": "k",
}
QUICK: dict[str, Any] = {
    **FULL, "tasks": ["digits-mlp"], "topologies": ["exponential"], "partitions": ["iid"],
    "byzantine": [0, 1], "attacks": ["sign_flip", "alie", "huge"], "defences": ["none", "clip"],
    "seeds": [0],
}
_LISTS = {"tasks": TASKS, "partitions": PARTITIONS, "attacks": ATTACKS, "defences": DEFENCES}
# What a run of runs.jsonl must match, besides its labels, to count as a run of the grid.
SETTINGS = ("peers", "rounds", "eval_every")
LABELS = ("task", "topology", "partition", "seed", "k", "attack", "defence", "f")


def load_preset(quick: bool, path: str | None) -> dict[str, Any]:
    """The preset (``QUICK`` or ``FULL``) with the keys of a TOML file over it.

    Raises:
        ConfigError: an unknown key, an unknown name in a list, no K = 0, or a ``robust_f``
            that is neither ``"k"`` nor an integer >= 0.
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
    f = preset["robust_f"]
    if f != "k" and (isinstance(f, bool) or not isinstance(f, int) or f < 0):
        raise ConfigError(f"robust_f in the robustness preset must be \"k\" (f = max(K, 1)) "
                          f"or an integer >= 0, not {f!r}")
    return preset


def f_of(k: int, preset: dict[str, Any]) -> int:
    """The f a defence runs with against K attackers: max(K, 1), or the preset's fixed f."""
    return max(k, 1) if preset["robust_f"] == "k" else int(preset["robust_f"])


def grid(preset: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs of a preset, seeds outermost (a partial grid covers every cell of the first
    seeds): one dict of ``LABELS`` per run. ``f`` is None for plain D-PSGD (it has no f).
    K = 0 is run once per defence and per f that the grid's K > 0 runs use."""
    base_fs = sorted({f_of(k, preset) for k in preset["byzantine"]})
    runs = []
    for seed in preset["seeds"]:
        for task in preset["tasks"]:
            for topology in preset["topologies"]:
                for partition in preset["partitions"]:
                    for k in preset["byzantine"]:
                        for attack in (["none"] if k == 0 else preset["attacks"]):
                            for defence in preset["defences"]:
                                fs = ([None] if defence == "none" else
                                      base_fs if k == 0 else [f_of(k, preset)])
                                runs += [{"task": task, "topology": topology,
                                          "partition": partition, "seed": seed, "k": k,
                                          "attack": attack, "defence": defence, "f": f}
                                         for f in fs]
    return runs


def run_config(run: dict[str, Any], preset: dict[str, Any]) -> dict[str, Any]:
    """The config keys of one run (what ``gossip sim`` would take)."""
    keys = {**TASKS[run["task"]], **PARTITIONS[run["partition"]], "peers": preset["peers"],
            "topology": run["topology"], "seed": run["seed"], "rounds": preset["rounds"],
            "eval_every": preset["eval_every"], "robust": run["defence"]}
    if run["f"] is not None:
        keys["robust_f"] = run["f"]
    if run["k"]:
        keys.update(byzantine=run["k"], attack=run["attack"])
    return keys


class Pieces:
    """The parts of the grid's experiments built once and shared between its runs: a
    dataset per (task, seed), shards per (task, partition, seed), a model and optimizer per
    task, a rule per (defence, f), a topology per (topology, seed), an attack per name, and
    ``reuse``, what ``simulate`` keeps (compiled rounds and evaluators, initial parameters,
    stacked shards). Each piece is built as ``build_experiment`` builds it."""

    def __init__(self) -> None:
        self.kept: dict[tuple, Any] = {}
        self.reuse: dict[Any, Any] = {}

    def _get(self, key: tuple, make: Callable[[], Any]) -> Any:
        if key not in self.kept:
            self.kept[key] = make()
        return self.kept[key]

    def experiment(self, run: dict[str, Any], preset: dict[str, Any]) -> Experiment:
        """The run's experiment, equal to ``build_experiment`` of its config."""
        config = resolve({}, run_config(run, preset))
        task, seed = run["task"], run["seed"]
        plain = dataclasses.replace(config, robust="none", robust_f=1, byzantine=0,
                                    attack="none")
        split = self._get(("split", task, run["partition"], seed),
                          lambda: build_experiment(plain))
        first = self._get(("data", task, seed), lambda: split)  # same loader, seed, options
        model = self._get(("model", task), lambda: split)
        return dataclasses.replace(
            split, config=config, dataset=first.dataset, model=model.model,
            optimizer=model.optimizer,
            rule=self._get(("rule", run["defence"], run["f"]), lambda: config_rule(config)),
            topology=self._get(("topology", run["topology"], seed), lambda: make_topology(
                config.topology, config.peers, seed=seed, weights=topology_weights(config),
                **config.topology_options)),
            attack=self._get(("attack", run["attack"]), lambda: check_attack(config)),
            attackers=pick_attackers(config.peers, config.byzantine, seed))


def fresh_pieces(old: Pieces) -> Pieces:
    """New, empty :class:`Pieces`, after the compiled programs of ``old`` are freed.

    Every compiled program keeps a few hundred memory maps, and a process may hold only
    ``vm.max_map_count`` (65,530 by default) of them: a task's block of the full grid
    compiles about 140 rounds, both tasks together more than the limit (LLVM then fails with
    "Cannot allocate memory"). The grid therefore keeps one task's programs at a time.
    """
    import gc

    import jax

    old.kept.clear()
    old.reuse.clear()
    gc.collect()
    jax.clear_caches()
    return Pieces()


def run_one(run: dict[str, Any], preset: dict[str, Any],
            pieces: Pieces | None = None) -> list[dict[str, Any]]:
    """The metrics records of one run of the grid (``pieces``: shared with other runs)."""
    from gossip.simulate import simulate  # JAX and the model zoo

    if pieces is None:
        exp, reuse = build_experiment(resolve({}, run_config(run, preset))), None
    else:
        exp, reuse = pieces.experiment(run, preset), pieces.reuse
    records: list[dict[str, Any]] = []
    simulate(exp, None, progress=False, on_eval=records.append, reuse=reuse)
    return records


def honest(record: dict[str, Any]) -> tuple[float, float]:
    """(honest average-model accuracy, honest mean local accuracy) of a record."""
    return (record.get("honest_avg_model_acc", record["avg_model_acc"]),
            record.get("honest_acc_mean", record["local_acc_mean"]))


def run_key(run: dict[str, Any]) -> str:
    """What identifies a run in ``runs.jsonl``: its labels and settings."""
    return json.dumps([run.get(k) for k in (*LABELS, *SETTINGS)])


def run_robustness(preset: dict[str, Any], log: Log, out: Path) -> dict[str, Any]:
    """Runs the grid's runs that ``OUT/runs.jsonl`` lacks, appending each as it ends.

    Returns:
        The results of the grid (:func:`collect`).
    """
    path = out / "runs.jsonl"
    settings = {k: preset[k] for k in SETTINGS}
    runs = [{**r, **settings} for r in grid(preset)]
    done = read_runs(path, run_key, log)
    todo = [r for r in runs if run_key(r) not in done]
    if len(todo) < len(runs):
        log(f"{path}: {len(runs) - len(todo)} of the grid's {len(runs)} runs are done; "
            f"running the other {len(todo)}")
    pieces, task = Pieces(), None
    start = time.perf_counter()
    with appending(path) as write:
        for i, run in enumerate(todo):
            t0 = time.perf_counter()
            if run["task"] != task:
                pieces, task = fresh_pieces(pieces), run["task"]
            records = run_one(run, preset, pieces)
            run["round"] = [r["round"] for r in records]
            run["honest_acc"] = [honest(r)[0] for r in records]
            run["honest_acc_mean"] = [honest(r)[1] for r in records]
            run["time_s"] = round(time.perf_counter() - t0, 3)
            write(run)
            f = "" if run["f"] is None else f" f={run['f']}"
            log(f"[{i + 1}/{len(todo)}] {run['task']} {run['topology']} {run['partition']} "
                f"seed={run['seed']} K={run['k']} {run['attack']} / {run['defence']}{f}: "
                f"honest acc {run['honest_acc'][-1]:.3f} ({run['time_s']:.1f} s; "
                f"{(i + 1) * 3600 / (time.perf_counter() - start):.0f} runs/h)")
    return collect(preset, out)


def collect(preset: dict[str, Any], out: Path) -> dict[str, Any]:
    """The results of the grid from ``OUT/runs.jsonl``: its finished runs in grid order,
    ``grid_runs`` (how many the grid has) and ``wall_time_s`` (their run times summed)."""
    settings = {k: preset[k] for k in SETTINGS}
    done = read_runs(out / "runs.jsonl", run_key)
    runs = [done[key] for r in grid(preset) if (key := run_key({**r, **settings})) in done]
    return {"suite": "robustness", "preset": preset, "runs": runs,
            "grid_runs": len(grid(preset)),
            "wall_time_s": sum(r.get("time_s", 0.0) for r in runs)}


def write_outputs(results: dict[str, Any], out: Path) -> dict[str, Any]:
    """Writes ``results.json``, then ``report.md`` and the plots drawn from that file."""
    (out / "results.json").write_text(json.dumps(results, indent=1))
    results = json.loads((out / "results.json").read_text())  # reports come from the file
    plot_robustness(results, out)
    (out / "report.md").write_text(robustness_report(results))
    return results


def run_robustness_bench(quick: bool, out_dir: str | Path, command: str, log: Log,
                         config: str | None = None, report_only: bool = False
                         ) -> dict[str, Any]:
    """Runs the robustness suite (the runs ``OUT/runs.jsonl`` lacks) and writes
    ``results.json``, ``report.md`` and plots.

    Args:
        quick: the quick preset (else the full one).
        out_dir: output directory, created if missing.
        command: the command line, recorded in the results.
        log: receives progress lines.
        config: a TOML file overriding preset keys, or None.
        report_only: run nothing; the outputs are drawn from the runs ``OUT/runs.jsonl``
            holds (a partial grid says how many of its runs it has).

    Returns:
        The results (the content of ``OUT/results.json``).

    Raises:
        ConfigError: ``report_only`` and no ``OUT/runs.jsonl``.
    """
    preset = load_preset(quick, config)
    out = Path(out_dir)
    if report_only:
        if not (out / "runs.jsonl").is_file():
            raise ConfigError(f"--report-only needs the runs of an earlier run: no "
                              f"{out / 'runs.jsonl'}")
        results = collect(preset, out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        results = run_robustness(preset, log, out)
    return write_outputs({**results, "command": command, "machine": machine_info()}, out)
