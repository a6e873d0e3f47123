"""Reports and plots of ``gossip bench compression`` / ``heterogeneity``, from results only.

``write_report(results, out)`` writes ``report.md`` and the PNG figures from the dict that
``OUT/results.json`` holds (never from live objects), so a report can be rebuilt from a
committed results file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gossip.bench.plots import DPI, _figure, _pyplot, _shared_legend
from gossip.plots.pyplot import STYLE

FULL_VARIANT = "full (dpsgd)"


def _stats(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def _groups(runs: list[dict[str, Any]]) -> dict[tuple, dict[str, list[dict[str, Any]]]]:
    """(task, n, topology) -> variant -> its runs (one per seed)."""
    groups: dict[tuple, dict[str, list[dict[str, Any]]]] = {}
    for r in runs:
        groups.setdefault((r["task"], r["n"], r["topology"]), {}).setdefault(
            r["variant"], []).append(r)
    return groups


def _decay_factors(errors: list[float], every: int, window: int) -> list[float]:
    """The factor by which the error shrinks over each ``window`` rounds."""
    step = max(1, window // every)
    return [errors[i + step] / errors[i] for i in range(0, len(errors) - step, step)]


def compression_report(results: dict[str, Any]) -> str:
    """``report.md`` of the compression suite, from its results."""
    machine = results.get("machine", {})
    lines = ["# Compression benchmark", "",
             f"Command: `{results['command']}`; {results['wall_time_s']:.0f} s on "
             f"{machine.get('cores', '?')} cores ({machine.get('platform', '?')}, jax "
             f"{machine.get('jax', '?')}). {results['preset']['rounds']} rounds; accuracies "
             "are final test accuracies, mean ± std over seeds; bytes are the encoded payload "
             "bytes of all peers.", "",
             "Choco's public copy x̂ is its error feedback; \"naive\" is D-PSGD sending the "
             "compressed model, with (+ EF) or without (no EF) an error-feedback residual.", "",
             "| task | n | topology | variant | seeds | avg-model acc | local acc (mean) | "
             "bytes sent | fewer bytes than full |", "|---|---|---|---|---|---|---|---|---|"]
    findings = []
    for (task, n, topo), variants in _groups(results["runs"]).items():
        full = variants[FULL_VARIANT]
        full_acc = _stats([r["avg_model_acc"][-1] for r in full])[0]
        full_local = _stats([r["local_acc_mean"][-1] for r in full])[0]
        full_bytes = np.mean([r["bytes_sent"][-1] for r in full])
        for label, rs in variants.items():
            acc, acc_sd = _stats([r["avg_model_acc"][-1] for r in rs])
            local, local_sd = _stats([r["local_acc_mean"][-1] for r in rs])
            nbytes = float(np.mean([r["bytes_sent"][-1] for r in rs]))
            fewer = "—" if label == FULL_VARIANT else f"{full_bytes / nbytes:.1f}x"
            lines.append(f"| {task} | {n} | {topo} | {label} | {len(rs)} | {acc:.3f} ± "
                         f"{acc_sd:.3f} | {local:.3f} ± {local_sd:.3f} | {nbytes:.3g} | "
                         f"{fewer} |")
            if label.startswith("choco top_k"):
                ok = acc >= full_acc - 0.01 and full_bytes / nbytes >= 5
                findings.append(
                    f"{task} n={n} {topo}: {label} {acc:.3f} (local {local:.3f}) vs full "
                    f"{full_acc:.3f} (local {full_local:.3f}) with {full_bytes / nbytes:.1f}x "
                    f"fewer bytes: {'within' if ok else 'NOT within'} 1 point at >= 5x")
    lines += ["", "## Findings", "", *[f"- {f}" for f in findings], "",
              "![accuracy vs bytes](accuracy_vs_bytes.png)", "",
              "## Choco-Gossip consensus check (ring of 25, d = 2000, learning rate 0)", "",
              "Relative consensus error Σ‖x_i − x̄‖² / Σ‖x_i⁰ − x̄‖², and the factor by which it "
              "shrinks over each 1000 rounds: roughly equal factors mean linear convergence.", ""]
    for name, c in results["consensus"].items():
        errors, every = c["errors"], c["every"]
        factors = _decay_factors(errors, every, 1000)
        lines.append(f"- {name} 1 %, γ = {c['step']}: {errors[0]:.2e} at round {every} → "
                     f"{errors[-1]:.2e} at round {every * len(errors)}; per 1000 rounds × "
                     f"{', '.join(f'{f:.3f}' for f in factors)}")
    lines += ["", "![consensus decay](consensus_decay.png)", ""]
    return "\n".join(lines)


def heterogeneity_report(results: dict[str, Any]) -> str:
    """``report.md`` of the heterogeneity suite, from its results."""
    alphas = results["preset"]["alphas"]
    hi, lo = max(alphas), min(alphas)
    acc: dict[tuple[str, float], list[float]] = {}
    for r in results["runs"]:
        acc.setdefault((r["method"], r["alpha"]), []).append(r["local_acc_mean"][-1])
    methods = list(dict.fromkeys(r["method"] for r in results["runs"]))
    seeds = len(results["preset"]["seeds"])
    machine = results.get("machine", {})
    lines = ["# Heterogeneity benchmark", "",
             f"Command: `{results['command']}`; {results['wall_time_s']:.0f} s on "
             f"{machine.get('cores', '?')} cores (jax {machine.get('jax', '?')}). "
             f"{results['preset']['task']}, ring of {results['preset']['peers']}, "
             f"{results['preset']['rounds']} rounds, Dirichlet α per column. Final local-model "
             f"test accuracy (mean over peers, then mean ± std over {seeds} seeds).", "",
             "| method | " + " | ".join(f"α = {a:g}" for a in alphas) +
             f" | drop α {hi:g} → {lo:g} | gain over D-PSGD at α = {lo:g} |",
             "|---" * (len(alphas) + 3) + "|"]
    base = np.mean(acc[(methods[0], hi)]) - np.mean(acc[(methods[0], lo)])
    findings = []
    for m in methods:
        cells = [f"{np.mean(acc[(m, a)]):.3f} ± {np.std(acc[(m, a)]):.3f}" for a in alphas]
        drop = np.mean(acc[(m, hi)]) - np.mean(acc[(m, lo)])
        gains = np.asarray(acc[(m, lo)]) - np.asarray(acc[(methods[0], lo)])  # seed by seed
        share = (f" ({gains.mean() / base:.0%} of {methods[0]}'s drop)"
                 if base > 0 and m != methods[0] else "")
        gain = (f"{gains.mean() * 100:+.1f} ± {gains.std() * 100:.1f} points{share}"
                if m != methods[0] else "—")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {drop * 100:.1f} points | {gain} |")
        if m != methods[0]:
            findings.append(f"{m}: {gains.mean() * 100:+.1f} points over {methods[0]} at "
                            f"α = {lo:g} (per seed: "
                            f"{', '.join(f'{g * 100:+.1f}' for g in gains)}){share}")
    lines += ["", f"{methods[0]} loses {base * 100:.1f} points from α = {hi:g} to α = {lo:g}.",
              "", "## Findings", "", *[f"- {f}" for f in findings], "",
              "![accuracy vs alpha](accuracy_vs_alpha.png)", ""]
    return "\n".join(lines)


def _variant_style(label: str) -> dict[str, Any]:
    """One colour per operator, one line style per scheme (Choco, naive + EF, naive)."""
    if label == FULL_VARIANT:
        return {"color": "k", "ls": "-", "lw": 2.2}
    scheme, *operator = label.split(" ")
    operator = " ".join(o for o in operator if o not in ("+", "EF", "no"))
    colours = {"top_k 1%": "C0", "top_k 10%": "C1", "int8": "C2", "int4": "C3", "sign": "C4"}
    style = {"choco": "-", "naive": "--" if label.endswith("+ EF") else ":"}[scheme]
    return {"color": colours.get(operator, "C5"), "ls": style, "lw": 1.5}


def _plot_compression(results: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    groups = _groups(results["runs"])
    cols = min(2, len(groups))
    rows = -(-len(groups) // cols)
    with plt.rc_context(STYLE):
        fig, axes = _figure(plt, rows, cols)
        flat = [ax for row in axes for ax in row]
        for ax, ((task, n, topo), variants) in zip(flat, groups.items(), strict=False):
            for label, rs in variants.items():
                x = np.mean([r["bytes_sent"] for r in rs], axis=0)
                y = np.mean([r["avg_model_acc"] for r in rs], axis=0)
                ax.plot(np.maximum(x, 1), y, label=label, **_variant_style(label))
            ax.set_xscale("log")
            ax.set_title(f"{task}, n={n}, {topo}")
            ax.set_xlabel("bytes sent (all peers)")
            ax.set_ylabel("average-model test accuracy")
            ax.grid(alpha=0.3)
        for ax in flat[len(groups):]:
            ax.set_visible(False)
        _shared_legend(fig, flat[:len(groups)])
        fig.savefig(path, dpi=DPI)
        plt.close(fig)


def _plot_consensus(results: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig, axes = _figure(plt, 1, 1)
        ax = axes[0][0]
        for name, c in results["consensus"].items():
            errors = np.maximum(np.asarray(c["errors"]), 1e-30)
            ax.plot(c["every"] * np.arange(1, len(errors) + 1), errors,
                    label=f"{name} 1 %, γ = {c['step']}", lw=1.6)
        ax.set_yscale("log")
        ax.set_title("Choco-Gossip, ring of 25, d = 2000")
        ax.set_xlabel("round")
        ax.set_ylabel("relative consensus error")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.savefig(path, dpi=DPI)
        plt.close(fig)


def _plot_heterogeneity(results: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    alphas = sorted(results["preset"]["alphas"])
    lo = alphas[0]
    methods = list(dict.fromkeys(r["method"] for r in results["runs"]))
    with plt.rc_context(STYLE):
        fig, axes = _figure(plt, 1, 2)
        left, right = axes[0]
        for m in methods:
            rs = [r for r in results["runs"] if r["method"] == m]
            finals = [[r["local_acc_mean"][-1] for r in rs if r["alpha"] == a] for a in alphas]
            (line,) = left.plot(alphas, [np.mean(f) for f in finals], marker="o", label=m)
            left.errorbar(alphas, [np.mean(f) for f in finals],
                          yerr=[np.std(f) for f in finals], color=line.get_color(),
                          capsize=3, ls="none")
            curves = [r for r in rs if r["alpha"] == lo]
            right.plot(curves[0]["round"],
                       np.mean([r["local_acc_mean"] for r in curves], axis=0),
                       color=line.get_color(), label=m)
        left.set_xscale("log")
        left.set_xlabel("Dirichlet α (smaller: more heterogeneous)")
        left.set_ylabel("final local-model test accuracy")
        left.set_title("accuracy vs heterogeneity")
        right.set_xlabel("round")
        right.set_ylabel("local-model test accuracy")
        right.set_title(f"α = {lo:g}, mean over seeds")
        for ax in (left, right):
            ax.grid(alpha=0.3)
        _shared_legend(fig, [left])
        fig.savefig(path, dpi=DPI)
        plt.close(fig)


def write_report(results: dict[str, Any], out: Path) -> list[str]:
    """Writes ``report.md`` and the figures of a suite's results into ``out``.

    Returns:
        The file names written.
    """
    if results["suite"] == "compression":
        _plot_compression(results, out / "accuracy_vs_bytes.png")
        _plot_consensus(results, out / "consensus_decay.png")
        names = ["report.md", "accuracy_vs_bytes.png", "consensus_decay.png"]
        report = compression_report(results)
    else:
        _plot_heterogeneity(results, out / "accuracy_vs_alpha.png")
        names = ["report.md", "accuracy_vs_alpha.png"]
        report = heterogeneity_report(results)
    (out / "report.md").write_text(report)
    return names
