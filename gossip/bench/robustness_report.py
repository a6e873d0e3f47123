"""The report and plots of ``gossip bench robustness``, drawn from its ``results.json`` only.

The honest accuracy of a run is the test accuracy of the honest peers' average model at the
end (``honest_avg_model_acc``; ``avg_model_acc`` when K = 0); its drop is against K = 0 with
the same defence and the same f, task, topology, partition and seed (mean over the seeds a
cell has).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

Cell = tuple  # (task, topology, partition, k, attack, defence, f)


def _final(runs: list[dict[str, Any]]) -> dict[Cell, list[float]]:
    out: dict[Cell, list[float]] = {}
    for r in runs:
        cell = (r["task"], r["topology"], r["partition"], r["k"], r["attack"], r["defence"],
                r.get("f"))
        out.setdefault(cell, []).append(r["honest_acc"][-1])
    return out


def _acc(x: float) -> float:
    return 0.0 if not np.isfinite(x) else x


def _f(defence: str, f: int | None) -> int | None:
    return None if defence == "none" else f


def findings(results: dict[str, Any]) -> list[str]:
    """The issue's must-show checks, where the grid has them: with one attacker (exponential,
    digits-MLP, IID) plain D-PSGD drops >= 10 points and clipping (f = 1) stays within 2
    points of no attack (plain D-PSGD, K = 0)."""
    acc = {c: float(np.mean(v)) for c, v in _final(results["runs"]).items()}
    lines = []
    cell = ("digits-mlp", "exponential", "iid")
    base = acc.get((*cell, 0, "none", "none", None))
    if base is None:
        return lines
    for attack in ("sign_flip", "alie", "huge"):
        plain = acc.get((*cell, 1, attack, "none", None))
        clip = acc.get((*cell, 1, attack, "clip", 1))
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


def _f_rule(preset: dict[str, Any]) -> str:
    f = preset.get("robust_f", 1)
    return ("each defence runs with f = max(K, 1) Byzantine in-neighbours tolerated "
            "(`robust_f = \"k\"`)" if f == "k" else
            f"each defence runs with f = {f} (`robust_f = {f}`)")


def robustness_report(results: dict[str, Any]) -> str:
    """``report.md`` of the robustness suite, from its results."""
    preset, runs = results["preset"], results["runs"]
    acc = _final(runs)
    total = results.get("grid_runs", len(runs))
    partial = (f" **Partial grid: {len(runs)} of its {total} runs are done**; a cell "
               "without its runs shows —, and a mean is over the seeds that cell has."
               if len(runs) < total else "")
    lines = ["# Robustness benchmark", "",
             f"Command: `{results['command']}`; {len(runs)} of the grid's {total} runs, "
             f"{results['wall_time_s']:.0f} s of run time (summed over the runs)."
             + partial, "",
             f"{preset['peers']} peers, {preset['rounds']} rounds, seeds "
             f"{preset['seeds']}; {_f_rule(preset)}. Honest accuracy: test accuracy of the "
             "honest peers' average model after the last round (mean over the seeds); in "
             "brackets the drop in points against K = 0 with the same defence and f. NaN "
             "(parameters that are no longer finite) counts as 0 in the drop.", "",
             "## Must show", "", *[f"- {f}" for f in findings(results)], ""]
    ks = [k for k in preset["byzantine"] if k]
    for task, topology, partition in sorted({c[:3] for c in acc}):
        where = (task, topology, partition)
        lines += [f"## {task}, {topology}, {partition}", "",
                  "| attack | defence | " + " | ".join(
                      f"K = {k}" + ("" if preset.get("robust_f", 1) != "k" else
                                    f" (f = {max(k, 1)})") for k in ks) + " |",
                  "|---|---|" + "---|" * len(ks)]
        base = {c[5:]: float(np.mean(v)) for c, v in acc.items() if c[:5] == (*where, 0, "none")}
        order = sorted(base, key=lambda df: (preset["defences"].index(df[0]), df[1] or 0))
        shown = ", ".join(f"{d} {base[(d, f)]:.3f}" + ("" if f is None else f" (f = {f})")
                          for d, f in order)
        lines.append(f"| (none: K = 0) | {shown} |" + " |" * (len(ks) - 1))
        for attack in preset["attacks"]:
            for defence in preset["defences"]:
                row = []
                for k in ks:
                    hit = [(c, v) for c, v in acc.items()
                           if c[:6] == (*where, k, attack, defence)]
                    if not hit:
                        row.append("—")
                        continue
                    (cell, values), = hit
                    mean = float(np.mean(values))
                    b = base.get((defence, _f(defence, cell[6])))
                    drop = "—" if b is None else f"{(b - _acc(mean)) * 100:+.1f}"
                    row.append(f"{mean:.3f} ({drop})")
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
        where = (task, topology, partition, k)
        fig, ax = plt.subplots(figsize=(8, 4.6))
        attacks, defences = preset["attacks"], preset["defences"]
        width = 0.8 / len(defences)
        for j, d in enumerate(defences):
            ys = [_acc(float(np.mean(next((v for c, v in acc.items()
                                           if c[:6] == (*where, a, d)), [np.nan]))))
                  for a in attacks]
            ax.bar(np.arange(len(attacks)) + (j - (len(defences) - 1) / 2) * width, ys, width,
                   label=d)
        base = acc.get((task, topology, partition, 0, "none", "none", None))
        if base:
            ax.axhline(float(np.mean(base)), color="k", ls="--", lw=1,
                       label="plain D-PSGD, no attack")
        ax.set_xticks(np.arange(len(attacks)), attacks)
        ax.set_ylim(0, 1)
        ax.set_ylabel("honest average-model test accuracy")
        fs = sorted({c[6] for c in acc if c[:4] == where and c[6] is not None})
        ax.set_title(f"{task}, {topology}, {partition}: K = {k} of {preset['peers']} peers"
                     + (f", defences with f = {fs[0]}" if len(fs) == 1 else ""))
        ax.legend(fontsize=7, ncols=len(defences) + 1, loc="upper center",
                  bbox_to_anchor=(0.5, -0.1), frameon=False)
        fig.tight_layout()
        path = out / _plot_name(task, topology, partition)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
