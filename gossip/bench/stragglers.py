"""``gossip bench stragglers``: sync, sync with a deadline, time-budgeted and async gossip
against slow peers, on the event simulator's clock.

Every run is ``gossip sim --engine event`` with rule ``push_sum`` (the one rule with an
async mode; sync and time-budgeted run plain push-sum, sync+deadline and async running-sum
push-sum, whose late messages' mass comes with the next one on time), a set base step time
and links (so runs are deterministic and comparable), and one of the straggler scenarios:
none, one peer 4x slower, 25 % of the peers 2-8x slower (random). The report gives, per
setting, each mode's simulated time and bytes to a target accuracy (a fraction of what sync
reaches with no straggler), its final accuracy and the staleness of what it mixed;
``results.json`` keeps every record, and the report and plots are made from that file only.

``QUICK`` runs in a few minutes on 2 CPU cores; ``FULL`` is the issue's grid. Every finished
run is appended to ``OUT/runs.jsonl`` as it ends, and a rerun with the same OUT skips the
runs already there (same labels, rounds and eval_every): a long grid accumulates over
several sessions, and the report is written once every run of the grid is in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gossip.bench.provenance import machine_info
from gossip.bench.run_log import appending, read_runs
from gossip.bench.runner import compile_cache
from gossip.config import resolve
from gossip.experiment import build_experiment
from gossip.plots.pyplot import STYLE, load_pyplot
from gossip.simulate import simulate

Log = Callable[[str], None]
STEP_TIME = 0.01  # seconds of one local step at full speed
LATENCY = 0.001  # seconds per message
BANDWIDTH = 1000.0  # Mbit/s per link
TARGET_FRACTION = 0.95  # of sync's final accuracy with no straggler

# (label, config keys) of the modes. The deadline lets a fast peer wait half a step for a
# late neighbour, whose mass then comes with its next message on time (running sums: plain
# push-sum would lose it, drain every weight and diverge; a neighbour never on time still
# drains it, see docs/simulator.md); the budget fits 4 steps of a peer at full speed.
MODES: list[tuple[str, dict[str, Any]]] = [
    ("sync", {}),
    ("sync+deadline", {"round_deadline": 0.5 * STEP_TIME, "running_sums": True}),
    ("time-budgeted", {"local_time": 4 * STEP_TIME}),
    ("async", {"mode": "async"}),
]
SCENARIOS: list[tuple[str, dict[str, Any]]] = [
    ("none", {}),
    ("one 4x", {"slow_peers": 1, "slowdown": 4.0}),
    ("25% 2-8x", {"stragglers": 0.25}),
]
PARTITIONS: list[tuple[str, dict[str, Any]]] = [
    ("iid", {"partition": "iid"}),
    ("dirichlet 0.1", {"partition": "dirichlet", "alpha": 0.1}),
]
QUICK = {"peers": [16], "topologies": ["ring"], "scenarios": ["none", "one 4x"],
         "partitions": ["iid", "dirichlet 0.1"], "seeds": [0], "rounds": 150,
         "eval_every": 10}
FULL = {"peers": [16, 64], "topologies": ["ring", "exponential", "one_peer_exponential"],
        "scenarios": [s for s, _ in SCENARIOS], "partitions": [p for p, _ in PARTITIONS],
        "seeds": [0, 1, 2], "rounds": 300, "eval_every": 10}


def run_grid(preset: dict[str, Any], log: Log, out: Path) -> dict[str, Any]:
    """Runs every (n, topology, partition, scenario, mode, seed) of ``preset`` that
    ``out/runs.jsonl`` lacks, appending each as it ends.

    Async and sync+deadline on a time-varying topology (``one_peer_exponential``) are
    skipped: both run running-sum push-sum, which keeps its running sums per in-link, so it
    needs a static graph.
    """
    with compile_cache():  # runs of the same shapes share their compiled functions
        return _run_grid(preset, log, out)


def grid(preset: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs of a preset, in order: labels and the config keys of each."""
    runs = []
    for n in preset["peers"]:
        for topology in preset["topologies"]:
            for part, part_keys in PARTITIONS:
                if part not in preset["partitions"]:
                    continue
                for scen, scen_keys in SCENARIOS:
                    if scen not in preset["scenarios"]:
                        continue
                    for mode, mode_keys in MODES:
                        running = "async" in mode_keys.values() or "running_sums" in mode_keys
                        if running and topology == "one_peer_exponential":
                            continue  # running sums need a static topology
                        for seed in preset["seeds"]:
                            keys = {"peers": n, "topology": topology, "rule": "push_sum",
                                    "rounds": preset["rounds"],
                                    "eval_every": preset["eval_every"], "seed": seed,
                                    "engine": "event", "step_time": STEP_TIME,
                                    "latency": LATENCY, "bandwidth": BANDWIDTH,
                                    **part_keys, **scen_keys, **mode_keys}
                            runs.append(({"n": n, "topology": topology, "partition": part,
                                          "scenario": scen, "mode": mode, "seed": seed,
                                          "rounds": preset["rounds"],
                                          "eval_every": preset["eval_every"]}, keys))
    return runs


def _key(labels: dict[str, Any]) -> str:
    return json.dumps([labels.get(k) for k in ("n", "topology", "partition", "scenario",
                                               "mode", "seed", "rounds", "eval_every")])


def _run_grid(preset: dict[str, Any], log: Log, out: Path) -> dict[str, Any]:
    path = out / "runs.jsonl"
    done = read_runs(path, _key, log)
    todo = grid(preset)
    if done:
        log(f"{path}: {sum(_key(labels) in done for labels, _ in todo)} of the grid's "
            f"{len(todo)} runs are done")
    runs = []
    with appending(path) as write:
        for labels, keys in todo:
            if _key(labels) in done:
                runs.append(done[_key(labels)])
                continue
            records: list[dict[str, Any]] = []
            t0 = time.perf_counter()
            simulate(build_experiment(resolve({}, keys)), None, progress=False,
                     on_eval=records.append)
            run = {**labels, "records": records, "time_s": round(time.perf_counter() - t0, 3)}
            write(run)
            runs.append(run)
            log(f"n={labels['n']} {labels['topology']} {labels['partition']} "
                f"{labels['scenario']} {labels['mode']} seed {labels['seed']}: "
                f"acc {records[-1]['avg_model_acc']:.3f} at {records[-1]['time_s']:.2f} s")
    return {"preset": preset, "runs": runs,
            "wall_time_s": round(sum(r.get("time_s", 0.0) for r in runs)),
            "step_time_s": STEP_TIME, "latency_s": LATENCY, "bandwidth_mbit": BANDWIDTH,
            "target_fraction": TARGET_FRACTION}


def _to_target(records: list[dict[str, Any]], target: float) -> tuple[float, float] | None:
    """(simulated seconds, bytes) at the first record whose average model reaches target."""
    for r in records:
        if r["avg_model_acc"] >= target:
            return r["time_s"], r["bytes_sent"]
    return None


def summarise(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (n, topology, partition, scenario, mode): means over seeds."""
    runs = results["runs"]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        key = (run["n"], run["topology"], run["partition"], run["scenario"], run["mode"])
        groups.setdefault(key, []).append(run)
    rows = []
    for (n, topo, part, scen, mode), group in groups.items():
        base = groups.get((n, topo, part, "none", "sync"), [])
        target = TARGET_FRACTION * float(np.mean([g["records"][-1]["avg_model_acc"]
                                                  for g in base])) if base else None
        hits = [_to_target(g["records"], target) for g in group] if target else []
        reached = [h for h in hits if h is not None]
        last = [g["records"][-1] for g in group]
        rows.append({
            "n": n, "topology": topo, "partition": part, "scenario": scen, "mode": mode,
            "target": target, "reached": f"{len(reached)}/{len(group)}",
            "time_to_target_s": float(np.mean([h[0] for h in reached])) if reached else None,
            "bytes_to_target": float(np.mean([h[1] for h in reached])) if reached else None,
            "final_acc": float(np.mean([r["avg_model_acc"] for r in last])),
            "final_time_s": float(np.mean([r["time_s"] for r in last])),
            "staleness_mean": float(np.mean([r["staleness_mean"] for r in last])),
            "staleness_max": int(max(r["staleness_max"] for r in last)),
        })
    return rows


def _fmt(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def _span(values: list[float], spec: str) -> str:
    if not values:
        return "—"
    lo, hi = format(min(values), spec), format(max(values), spec)
    return lo if lo == hi else f"{lo} to {hi}"


def overview(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (scenario, mode, partition) other than sync: over the settings (n,
    topology), the range of the speed-up to the target against sync in the same setting
    (sync's time / the mode's), of the bytes to the target against sync's, of the final
    accuracy minus sync's, and how many settings had a seed that missed the target."""
    sync = {(r["n"], r["topology"], r["partition"], r["scenario"]): r
            for r in rows if r["mode"] == "sync"}
    groups: dict[tuple[str, str, str], list[tuple[dict, dict]]] = {}
    for r in rows:
        base = sync.get((r["n"], r["topology"], r["partition"], r["scenario"]))
        if r["mode"] != "sync" and base is not None:
            groups.setdefault((r["scenario"], r["mode"], r["partition"]), []).append((r, base))
    out = []
    for (scenario, mode, partition), pairs in groups.items():
        both = [(r, b) for r, b in pairs if r["time_to_target_s"] and b["time_to_target_s"]]
        out.append({
            "scenario": scenario, "mode": mode, "partition": partition,
            "settings": len(pairs),
            "speedup": _span([b["time_to_target_s"] / r["time_to_target_s"] for r, b in both],
                             ".2f"),
            "bytes": _span([r["bytes_to_target"] / b["bytes_to_target"] for r, b in both],
                           ".2f"),
            "accuracy": _span([r["final_acc"] - b["final_acc"] for r, b in pairs], "+.3f"),
            "missed": sum(r["reached"].split("/")[0] != r["reached"].split("/")[1]
                          for r, _ in pairs),
        })
    return out


def findings(rows: list[dict[str, Any]]) -> list[str]:
    """Sentences comparing each mode with sync in the same setting and straggler scenario
    (one 4x and none): time and bytes to the target, and final accuracy."""
    lines = []
    index = {(r["n"], r["topology"], r["partition"], r["scenario"], r["mode"]): r
             for r in rows}
    for scenario, words in (("one 4x", "one peer 4x slower"), ("none", "no straggler")):
        for r in rows:
            if r["scenario"] != scenario or r["mode"] != "sync":
                continue
            setting = (r["n"], r["topology"], r["partition"])
            where = f"n={setting[0]}, {setting[1]}, {setting[2]}, {words}"
            for mode in ("time-budgeted", "async", "sync+deadline"):
                other = index.get((*setting, scenario, mode))
                if other is None:
                    continue
                acc = (f"final accuracy {other['final_acc']:.3f} vs sync {r['final_acc']:.3f} "
                       f"({other['final_acc'] - r['final_acc']:+.3f})")
                if r["time_to_target_s"] and other["time_to_target_s"]:
                    speed = r["time_to_target_s"] / other["time_to_target_s"]
                    verdict = "faster" if speed > 1 else "NOT faster"
                    data = other["bytes_to_target"] / r["bytes_to_target"]
                    lines.append(f"{where}: {mode} reaches the target ({r['target']:.3f}) in "
                                 f"{other['time_to_target_s']:.2f} s vs sync "
                                 f"{r['time_to_target_s']:.2f} s: {speed:.2f}x, {verdict}, "
                                 f"with {data:.2f}x sync's bytes; {acc}.")
                else:
                    lines.append(f"{where}: {mode} reached the target in {other['reached']} "
                                 f"seeds, sync in {r['reached']}; {acc}.")
    return lines


def report(results: dict[str, Any]) -> str:
    """``report.md`` from the results."""
    rows = summarise(results)
    preset = results["preset"]
    out = ["# Stragglers: sync, deadline, time-budgeted and async gossip", "",
           f"Command: `{results['command']}` ({results['wall_time_s']} s of runs on this "
           "machine).", "",
           f"Event simulator, rule push_sum (sync+deadline and async: running-sum push-sum), "
           f"digits MLP, "
           f"{preset['rounds']} rounds (async: the same total work), base step "
           f"{results['step_time_s']} s, links {results['latency_s']} s + "
           f"{results['bandwidth_mbit']} Mbit/s; seeds {preset['seeds']}. Target: "
           f"{results['target_fraction']:.0%} of sync's final accuracy with no straggler in "
           "the same setting. Times are simulated seconds.", ""]
    if preset == QUICK:
        out += ["**Reduced grid: the `--quick` preset** (n = 16, ring, one seed, no straggler "
                "and one 4x). The full grid (n = 16 and 64; ring, exponential, one-peer "
                "exponential; three straggler scenarios; 3 seeds): `gossip bench stragglers "
                "--out DIR`.", ""]
    out += ["## Overview", "",
            "Each mode against sync in the same setting (n, topology), over the settings: "
            "speed-up to the target (sync's time / the mode's; above 1 is faster), bytes to "
            "the target (× sync's), final accuracy minus sync's, and the settings where a "
            "seed never reached the target.", "",
            "| stragglers | mode | partition | settings | speed-up | bytes × sync | "
            "final acc − sync | settings with a seed short of the target |",
            "|---|---|---|---|---|---|---|---|"]
    out += [f"| {o['scenario']} | {o['mode']} | {o['partition']} | {o['settings']} | "
            f"{o['speedup']} | {o['bytes']} | {o['accuracy']} | {o['missed']} |"
            for o in overview(rows)]
    out += ["", "## Findings", ""]
    out += [f"- {line}" for line in findings(rows)] or ["- (no one-4x runs)"]
    out += ["", "## All settings", "",
            "| n | topology | partition | stragglers | mode | target | reached | time to "
            "target (s) | MB to target | final acc | final time (s) | staleness mean / max |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mb = None if r["bytes_to_target"] is None else r["bytes_to_target"] / 1e6
        out.append(f"| {r['n']} | {r['topology']} | {r['partition']} | {r['scenario']} | "
                   f"{r['mode']} | {_fmt(r['target'], '.3f')} | {r['reached']} | "
                   f"{_fmt(r['time_to_target_s'], '.2f')} | {_fmt(mb, '.1f')} | "
                   f"{r['final_acc']:.3f} | {r['final_time_s']:.2f} | "
                   f"{r['staleness_mean']:.1f} / {r['staleness_max']} |")
    out += ["", "Plots: `accuracy_vs_time.png` (average-model accuracy against simulated "
            "time, one panel per partition and straggler scenario, first n and topology, "
            "seed 0).", ""]
    return "\n".join(out)


def plot(results: dict[str, Any], path: Path) -> None:
    """Accuracy vs simulated time per mode, one panel per (partition, scenario)."""
    plt = load_pyplot("gossip bench stragglers")
    runs = [r for r in results["runs"] if r["seed"] == results["preset"]["seeds"][0]
            and r["n"] == results["preset"]["peers"][0]
            and r["topology"] == results["preset"]["topologies"][0]]
    panels = sorted({(r["partition"], r["scenario"]) for r in runs})
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6),
                                 squeeze=False)
        for ax, (part, scen) in zip(axes[0], panels, strict=True):
            for r in runs:
                if (r["partition"], r["scenario"]) != (part, scen):
                    continue
                ax.plot([x["time_s"] for x in r["records"]],
                        [x["avg_model_acc"] for x in r["records"]], label=r["mode"])
            ax.set_title(f"{part}, stragglers: {scen}")
            ax.set_xlabel("simulated time (s)")
            ax.set_ylabel("average-model test accuracy")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        fig.savefig(path, dpi=110)
        plt.close(fig)


def run_stragglers_bench(quick: bool, out_dir: str | Path, command: str, log: Log,
                         preset: dict[str, Any] | None = None) -> dict[str, Any]:
    """Runs the grid and writes ``results.json``, ``report.md`` and ``accuracy_vs_time.png``.

    Args:
        quick: the quick preset (else the full one).
        out_dir: output directory, created if missing; ``runs.jsonl`` there holds the
            finished runs (a rerun skips them).
        command: the command line, recorded in the results.
        log: receives a line per run.
        preset: overrides the preset (tests, reduced grids).

    Returns:
        The results (the content of ``OUT/results.json``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {**run_grid(preset or (QUICK if quick else FULL), log, out), "command": command,
               "machine": machine_info()}
    (out / "results.json").write_text(json.dumps(results))
    results = json.loads((out / "results.json").read_text())  # reports come from the file
    plot(results, out / "accuracy_vs_time.png")
    (out / "report.md").write_text(report(results))
    return results
