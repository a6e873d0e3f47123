"""Writes ``results.json`` and ``report.md``; the findings are generated from the numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from gossip.bench.ranking import Group, rank_correlation, summarise, targets, winners
from gossip.summary_table import human_bytes as _human_bytes

SPARSE_EXCLUDED = ("complete", "star")  # baselines: all-reduce and parameter server
SCHEMA_VERSION = 1
RAW_KEYS = ("suite", "machine", "step_time_s", "message_bytes", "runs", "consensus",
            "wall_time_s")
"""The keys of ``run_suite``'s results; the rest of ``results.json`` is computed from them."""


def build_results(raw: dict[str, Any], command: str) -> dict[str, Any]:
    """Adds ``schema_version``, ``command``, ``targets``, ``summary`` and ``findings`` to the
    raw results of ``run_suite``."""
    suite = raw["suite"]
    metric, fraction = suite["target_metric"], suite["target_fraction"]
    target_rows = targets(raw["runs"], metric, fraction, suite.get("target_reach", 0.0))
    summary = summarise(raw["runs"], target_rows, metric)
    results = {"schema_version": SCHEMA_VERSION, "command": command, **raw,
               "targets": target_rows, "summary": summary}
    results["findings"] = findings(results)
    return results


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}"


def human_bytes(n: float | None) -> str:
    """``gossip.summary_table.human_bytes`` to three significant digits: ``'67.3 KiB'``."""
    return _human_bytes(n, ".3g")


def human_time(s: float | None) -> str:
    """Seconds as ms / s / min."""
    if s is None:
        return "–"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s" if s < 120 else f"{s / 60:.3g} min"


def _pm(s: dict[str, float] | None, fmt: Any = _fmt) -> str:
    if s is None:
        return "–"
    return fmt(s["mean"]) if s["count"] == 1 else f"{fmt(s['mean'])} ± {fmt(s['std'])}"


def _label(g: Group) -> str:
    return f"{g[0]}, n={g[1]}, {g[2]}"


def _count_phrase(w: dict[Group, str | None]) -> str:
    """How often each topology wins, ties written once: ``complete in 2 of 2 (in 1 of them
    tied with ring, torus)``.

    Topologies are named in order of their wins (co-wins count); one whose every win is
    shared with a topology named before it appears only in that one's "tied with" list.
    """
    total = len(w)
    sets = {g: t.split(" = ") if t else [] for g, t in w.items()}
    wins: dict[str, list[Group]] = {}
    for g, names in sets.items():
        for t in names:
            wins.setdefault(t, []).append(g)
    order = sorted(wins, key=lambda t: -len(wins[t]))  # stable: the suite's order on ties
    named: list[str] = []
    parts = []
    for t in order:
        if all(any(o in named for o in sets[g]) for g in wins[t]):
            continue  # every win shared with a topology already named: in its tie list
        named.append(t)
        tied = [g for g in wins[t] if len(sets[g]) > 1]
        partners = list(dict.fromkeys(o for g in tied for o in sets[g]
                                      if o != t and o not in named))
        text = f"{t} in {len(wins[t])} of {total}"
        if partners:
            which = "" if len(tied) == len(wins[t]) else f"in {len(tied)} of them "
            text += f" ({which}tied with {', '.join(partners)})"
        parts.append(text)
    nobody = sum(1 for names in sets.values() if not names)
    if nobody:
        parts.append(f"no topology in {nobody} of {total}")
    return ", ".join(parts)


def findings(results: dict[str, Any]) -> list[str]:
    """Short paragraphs, each computed from the summary and consensus numbers."""
    rows, nets = results["summary"], [n["name"] for n in results["suite"]["networks"]]
    sparse = [r for r in rows if r["topology"] not in SPARSE_EXCLUDED]
    metric = results["suite"]["target_metric"]
    out = []
    for key, what in (("rounds_to_target", "rounds"), ("bytes_per_peer_to_target",
                                                        "bytes sent per peer"),
                      ("bytes_busiest_peer_to_target", "bytes sent by the busiest peer")):
        text = (f"**Fewest {what} to the target.** Over all settings: "
                f"{_count_phrase(winners(rows, key))}.")
        if sparse and len(sparse) < len(rows):
            text += (" Without the complete graph and the star (baselines): "
                     f"{_count_phrase(winners(sparse, key))}.")
        out.append(text)
    for net in nets:
        spec = next(n for n in results["suite"]["networks"] if n["name"] == net)
        w = winners(rows, f"time_to_target/{net}")
        text = (f"**Least modelled time on `{net}`** ({spec['bandwidth_bit_s'] / 1e6:g} Mbit/s, "
                f"{spec['latency_s'] * 1e3:g} ms latency): {_count_phrase(w)}.")
        ratios = []
        for g, t in w.items():
            g_rows = [r for r in rows if (r["task"], r["n"], r["partition"]) == g]
            comp = next((r for r in g_rows if r["topology"] == "complete"), None)
            best = next((r for r in g_rows if r["topology"] == t), None)
            if comp and best and t != "complete" and comp["time_to_target"][net] and \
                    comp["reached"] == comp["seeds"]:
                ratios.append(comp["time_to_target"][net]["mean"]
                              / best["time_to_target"][net]["mean"])
        if ratios:
            span = f"{min(ratios):.3g}×" if f"{min(ratios):.3g}" == f"{max(ratios):.3g}" \
                else f"{min(ratios):.3g}× to {max(ratios):.3g}×"
            text += f" Where another topology wins, the complete graph takes {span} its time."
        out.append(text)
    missed = [f"{r['topology']} ({_label((r['task'], r['n'], r['partition']))}: "
              f"{r['reached']}/{r['seeds']} seeds)" for r in rows if r["reached"] < r["seeds"]]
    out.append("**Target not reached by every seed:** " + ("; ".join(missed) if missed else
               "none; every topology reached every target.") + "")
    out.append(_theory_finding(results))
    gap = _gap_vs_rounds(results)
    if gap:
        out.append(gap)
    het = _heterogeneity(rows, metric)
    if het:
        out.append(het)
    return out


def _theory_finding(results: dict[str, Any]) -> str:
    cons = results["consensus"]
    static = [c for c in cons if c["period_theory"] is not None and c["slem"] > 1e-9]
    text = "**Theory vs measured contraction (pure gossip).**"
    if static:
        err = max(abs(c["measured_contraction"] - c["period_theory"]) for c in static)
        text += (f" For static and periodic topologies the measured per-round contraction of "
                 f"the consensus distance is within {err:.2g} of the predicted one "
                 f"(SLEM², or ‖W_τ⋯W_1 − J‖^(2/τ) over a period).")
    rand = [c for c in cons if c["period_theory"] is None]
    if rand:
        closer = sum(abs(c["mean_square_theory"] - c["measured_contraction"])
                     < abs(c["slem_squared"] - c["measured_contraction"]) for c in rand)
        text += (" Random topologies (measured vs per-round SLEM² vs mean-square bound): " +
                 ", ".join(f"{c['topology']} n={c['n']}: {c['measured_contraction']:.3g} vs "
                           f"{c['slem_squared']:.3g} vs {c['mean_square_theory']:.3g}"
                           for c in rand) +
                 f"; the mean-square bound is the closer prediction in {closer} of {len(rand)}.")
    bad = [c for c in cons if not c["doubly_stochastic"]]
    if bad:
        text += " Not doubly stochastic: " + ", ".join(
            f"{c['topology']} n={c['n']} ({c['weights']} weights; SLEM {c['slem']:.3g}, "
            f"rounds_to_consensus {c['rounds_to_consensus']}, the average drifts by "
            f"{c['mean_drift']:.2g} of its norm)" for c in bad) + "."
        if any(c["mean_drift"] > 1e-6 for c in bad):
            text += " Where the average drifts, the peers agree on a weighted average of " \
                "their starting points, not on the average."
    measured = [c["measured_contraction"] for c in cons]
    rho = rank_correlation([c["slem_squared"] for c in cons], measured)
    rho_pred = rank_correlation([_predicted(c) for c in cons], measured)
    if rho is not None and rho_pred is not None:
        text += (f" Rank correlation with the measured contraction, over all rows: "
                 f"{rho:.2f} for the per-round SLEM², {rho_pred:.2f} for the predicted value.")
    return text


def _predicted(c: dict[str, Any]) -> float:
    """The consensus row's predicted contraction: period theory, else the mean-square one."""
    return c["period_theory"] if c["period_theory"] is not None else c["mean_square_theory"]


def _gap_vs_rounds(results: dict[str, Any]) -> str | None:
    slem_of = {(c["topology"], c["n"]): c["slem"] for c in results["consensus"]}
    rhos, rhos_cd = [], []
    for key in {(r["task"], r["n"], r["partition"]) for r in results["summary"]}:
        rs = [r for r in results["summary"] if (r["task"], r["n"], r["partition"]) == key
              and r["reached"] == r["seeds"] and r["rounds_to_target"]]
        rho = rank_correlation([slem_of[(r["topology"], r["n"])] for r in rs],
                               [r["rounds_to_target"]["mean"] for r in rs])
        if rho is not None:
            rhos.append(rho)
        rs = [r for r in results["summary"] if (r["task"], r["n"], r["partition"]) == key]
        rho = rank_correlation([slem_of[(r["topology"], r["n"])] for r in rs],
                               [r["consensus_distance"]["mean"] for r in rs])
        if rho is not None:
            rhos_cd.append(rho)
    if not rhos and not rhos_cd:
        return None
    text = "**Does the spectral gap predict training?**"
    for name, v in (("rounds to target (topologies that reached it)", rhos),
                    ("final consensus distance in training", rhos_cd)):
        if v:
            text += (f" Rank correlation between SLEM and {name}, per setting: median "
                     f"{np.median(v):.2f} (from {min(v):.2f} to {max(v):.2f}, "
                     f"{len(v)} settings).")
    return text + " 1 would mean the SLEM orders the topologies exactly as training does."


def _heterogeneity(rows: list[dict[str, Any]], metric: str) -> str | None:
    drops = {}
    for r in rows:
        if r["partition"] != "dirichlet":
            continue
        iid = next((x for x in rows if x["partition"] == "iid" and x["task"] == r["task"]
                    and x["n"] == r["n"] and x["topology"] == r["topology"]), None)
        if iid:
            drops.setdefault(r["topology"], []).append(iid[metric]["mean"] - r[metric]["mean"])
    if not drops:
        return None
    mean_drop = {t: float(np.mean(v)) for t, v in drops.items()}
    order = sorted(mean_drop, key=mean_drop.get)
    return (f"**Heterogeneous data (Dirichlet) costs** final `{metric}` (IID minus Dirichlet, "
            f"mean over tasks and n): least for {order[0]} ({mean_drop[order[0]]:+.3f}), most "
            f"for {order[-1]} ({mean_drop[order[-1]]:+.3f}); all: " +
            ", ".join(f"{t} {mean_drop[t]:+.3f}" for t in order) + ".")


def write_json(results: dict[str, Any], path: Path) -> None:
    """Writes the results as compact JSON (non-finite floats as null)."""
    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x
    path.write_text(json.dumps(clean(results), separators=(",", ":")) + "\n")


def markdown(results: dict[str, Any], plots: list[str]) -> str:
    """The text of ``report.md``."""
    s, rows = results["suite"], results["summary"]
    nets = [n["name"] for n in s["networks"]]
    lines = ["# Topology benchmark", "",
             f"Command: `{results['command']}`  ", f"Running time: "
             f"{results['wall_time_s'] / 60:.1f} min on {results['machine']['platform']} "
             f"(jax {results['machine']['jax']}, {results['machine']['devices']}).", "",
             "## Setup", "",
             f"- Topologies: {', '.join(s['topologies'])}; n ∈ {s['peers']}; seeds "
             f"{s['seeds']}; splits {', '.join(s['partitions'])} (Dirichlet α = {s['alpha']}).",
             f"- D-PSGD (adapt-then-combine), {s['local_steps']} local step(s) per round; "
             "topology default weights (star: Metropolis–Hastings; others uniform). "
             "epidemic's s = the exponential graph's out-degree (same bytes per round)."]
    for t in s["tasks"]:
        opts = f" {t['model_options']}" if t["model_options"] else ""
        lines.append(f"- Task `{t['name']}`: {t['model']}{opts} on "
                     f"{t['dataset']}, {t['optimizer']} lr {t['lr']}, batch {t['batch_size']}, "
                     f"{t['rounds']} rounds, evaluated every {t['eval_every']}; one local step "
                     f"{results['step_time_s'][t['name']] * 1e3:.3g} ms on this machine, one "
                     f"message {human_bytes(results['message_bytes'][t['name']])}.")
    lines.append(f"- Target: {s['target_fraction']:g} × the reference's final "
                 f"`{s['target_metric']}` (reference: complete graph, mean over seeds), lowered "
                 f"where fewer than {s.get('target_reach', 0):g} of the topologies end above "
                 "it in every seed to the highest value that many do (marked *lowered*).")
    lines.append("- Cost model (docs/benchmarks.md): round time = H·c + max over senders of "
                 "(latency + out-degree × message bits / bandwidth); networks: " + ", ".join(
                     f"`{n['name']}` {n['bandwidth_bit_s'] / 1e6:g} Mbit/s, "
                     f"{n['latency_s'] * 1e3:g} ms" for n in s["networks"]) + ".")
    lines += ["", "## Findings", ""]
    for f in results["findings"]:
        lines += [f, ""]
    lines += ["## Winners per setting", "",
              "Least mean cost among topologies where every seed reached the target.", "",
              "| setting | target | fewest rounds | fewest bytes/peer | fewest bytes (busiest) | "
              + " | ".join(f"least time ({n})" for n in nets) + " |",
              "|---" * (5 + len(nets)) + "|"]
    keys = ["rounds_to_target", "bytes_per_peer_to_target", "bytes_busiest_peer_to_target",
            *[f"time_to_target/{n}" for n in nets]]
    won = {k: winners(rows, k) for k in keys}
    for t in results["targets"]:
        g = (t["task"], t["n"], t["partition"])
        mark = " (lowered)" if t.get("lowered") else ""
        lines.append(f"| {_label(g)} | {t['target']:.3f}{mark} | " +
                     " | ".join(won[k].get(g) or "–" for k in keys) + " |")
    lines += ["", "## Consensus: theory vs measurement", "",
              "Pure gossip (no training): random vectors mixed with W_t for "
              f"{s['consensus_rounds']} rounds. *Measured* = geometric-mean ratio "
              "D_{t+1}/D_t of the consensus distance over the asymptotic half of the rounds "
              "(or until exact consensus). *Predicted*: SLEM² for static graphs, "
              "‖W_τ⋯W_1 − J‖^(2/τ) over one period for periodic ones, and for random ones the "
              "mean-square bound λ_max(E[(W−J)ᵀ(W−J)]).", "",
              "| n | topology | weights | doubly stochastic | SLEM | SLEM² | predicted | "
              "measured | √measured | rounds to consensus |", "|---" * 10 + "|"]
    for c in results["consensus"]:
        pred = _predicted(c)
        lines.append(f"| {c['n']} | {c['topology']} | {c['weights']} | "
                     f"{'yes' if c['doubly_stochastic'] else '**no**'} | {c['slem']:.4f} | "
                     f"{c['slem_squared']:.4f} | {pred:.4f} | {c['measured_contraction']:.4f} | "
                     f"{c['measured_rate']:.4f} | {c['rounds_to_consensus']} |")
    lines += ["", "## Results per setting", "",
              "Mean ± std over seeds. To-target columns average the seeds that reached the "
              "target (reached/seeds); final columns are at the last round.", ""]
    for t in results["targets"]:
        g = (t["task"], t["n"], t["partition"])
        mark = f", lowered from {t['fraction_target']:.3f}" if t.get("lowered") else ""
        lines += [f"### {_label(g)} (target {t['metric']} ≥ {t['target']:.3f}{mark})", "",
                  "| topology | reached | rounds | bytes/peer | bytes (busiest) | " +
                  " | ".join(f"time ({n})" for n in nets) +
                  " | final avg-model acc | final local acc | consensus distance |",
                  "|---" * (8 + len(nets)) + "|"]
        for r in rows:
            if (r["task"], r["n"], r["partition"]) != g:
                continue
            lines.append(
                f"| {r['topology']} | {r['reached']}/{r['seeds']} | "
                f"{_pm(r['rounds_to_target'])} | "
                f"{_pm(r['bytes_per_peer_to_target'], human_bytes)} | "
                f"{_pm(r['bytes_busiest_peer_to_target'], human_bytes)} | " +
                " | ".join(_pm(r["time_to_target"][n], human_time) for n in nets) +
                f" | {_pm(r['avg_model_acc'])} | {_pm(r['local_acc_mean'])} | "
                f"{_pm(r['consensus_distance'])} |")
        lines.append("")
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)
