"""``gossip bench compression`` and ``gossip bench heterogeneity`` (issue 13).

Both run a grid of simulator runs (``gossip.simulate.simulate``), keep every metrics record,
write ``results.json``, then ``report.md`` and a PNG plot made from that file only.

- **compression**: accuracy against bytes sent for uncompressed D-PSGD, Choco-SGD with
  every operator, and naive compressed D-PSGD with and without error feedback; plus the
  convex check of the Choco paper: consensus on a ring of 25 peers, d = 2000, top-1 % and
  rand-1 %, whose error should decay linearly.
- **heterogeneity**: on a ring, Dirichlet α from IID-like to very skewed, D-PSGD with
  momentum against QG-DSGDm, gradient tracking and D²: the accuracy lost from the largest α
  to the smallest, and how much of D-PSGD's loss each method recovers.

``QUICK`` presets take a few minutes on 2 CPU cores; ``FULL`` ones are the issue's grids.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gossip.config import resolve
from gossip.experiment import build_experiment
from gossip.rules import make_rule
from gossip.sim.simulator import PeerData, make_simulator
from gossip.simulate import mixing_graph, simulate
from gossip.topology import make_topology

Log = Callable[[str], None]

# (label, config keys) of the compression variants.
COMPRESSION_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("full (dpsgd)", {"rule": "dpsgd"}),
    ("choco top_k 1%", {"rule": "choco", "compress": "top_k", "compress_ratio": 0.01}),
    ("choco top_k 10%", {"rule": "choco", "compress": "top_k", "compress_ratio": 0.1}),
    ("choco int8", {"rule": "choco", "compress": "int8"}),
    ("choco int4", {"rule": "choco", "compress": "int4"}),
    ("choco sign", {"rule": "choco", "compress": "sign"}),
    ("naive top_k 10% + EF", {"rule": "dpsgd", "compress": "top_k", "compress_ratio": 0.1}),
    ("naive top_k 10% no EF", {"rule": "dpsgd", "compress": "top_k", "compress_ratio": 0.1,
                               "error_feedback": False}),
    ("naive int8 + EF", {"rule": "dpsgd", "compress": "int8"}),
]

# D-PSGD and QG-DSGDm: lr 0.05 with momentum 0.9; gradient tracking and D² have no momentum
# and take its effective step, 0.05 / (1 - 0.9) = 0.5 (at 0.05 they were 8-10 points lower
# at α = 10 after 150 rounds: under-trained, not worse).
HETEROGENEITY_METHODS: list[tuple[str, dict[str, Any]]] = [
    ("dpsgd + momentum", {"rule": "dpsgd", "optimizer": "momentum", "lr": 0.05}),
    ("qg_dsgdm", {"rule": "qg_dsgdm", "optimizer": "sgd", "lr": 0.05}),
    ("gradient_tracking", {"rule": "gradient_tracking", "optimizer": "sgd", "lr": 0.5}),
    ("d2", {"rule": "d2", "optimizer": "sgd", "lr": 0.5}),
]

QUICK = {
    "compression": {"tasks": [("digits-mlp", {"dataset": "digits", "model": "mlp"})],
                    "peers": [16], "topologies": ["ring"], "seeds": [0], "rounds": 150,
                    "eval_every": 25, "consensus": {"n": 25, "dim": 2000, "rounds": 600}},
    "heterogeneity": {"task": ("digits-mlp", {"dataset": "digits", "model": "mlp"}),
                      "peers": 16, "alphas": [10.0, 0.1], "seeds": [0], "rounds": 150,
                      "eval_every": 25},
}
FULL = {
    "compression": {"tasks": [("digits-mlp", {"dataset": "digits", "model": "mlp"}),
                              ("mnist1d-cnn", {"dataset": "mnist1d", "model": "cnn1d"})],
                    "peers": [16, 64], "topologies": ["ring", "exponential"],
                    "seeds": [0, 1, 2], "rounds": 500, "eval_every": 25,
                    "consensus": {"n": 25, "dim": 2000, "rounds": 3000}},
    "heterogeneity": {"task": ("digits-mlp", {"dataset": "digits", "model": "mlp"}),
                      "peers": 16, "alphas": [10.0, 1.0, 0.1], "seeds": [0, 1, 2],
                      "rounds": 500, "eval_every": 25},
}


def _chosen(options: list[tuple[str, dict[str, Any]]], preset: dict[str, Any]
            ) -> list[tuple[str, dict[str, Any]]]:
    """The variants (methods) the preset names under ``only``; all of them by default."""
    only = preset.get("only")
    return [o for o in options if only is None or o[0] in only]


def _run(keys: dict[str, Any]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    simulate(build_experiment(resolve({}, keys)), None, progress=False,
             on_eval=records.append)
    return records


def consensus_check(n: int, dim: int, rounds: int, compress: str, ratio: float,
                    step: float, seed: int = 0, every: int = 100) -> list[float]:
    """Choco-Gossip on a ring of n peers from x_i ~ N(0, I_dim): the relative consensus
    error ``Σ_i ‖x_i − x̄‖² / Σ_i ‖x_i^0 − x̄‖²`` every ``every`` rounds."""
    x0 = jax.random.normal(jax.random.key(seed), (n, dim))
    mean = x0.mean(0)[None]
    start = float(jnp.sum((x0 - mean) ** 2))
    sim = make_simulator(lambda p, x, y: 0.0 * jnp.sum(p["x"]), optax.sgd(0.0),
                         make_rule("choco", compress=compress, compress_ratio=ratio,
                                   consensus_step=step), batch_size=0)
    graph = mixing_graph(make_topology("ring", n), 0)[0]
    data = PeerData(jnp.zeros((n, 1, 1)), jnp.zeros((n, 1)), jnp.ones(n, jnp.int32))
    state = sim.init({"x": x0})
    errors = []
    for t in range(rounds):
        state, _ = sim.round(state, data, graph, jax.random.key(seed))
        if (t + 1) % every == 0:
            errors.append(float(jnp.sum((state.params["x"] - mean) ** 2)) / start)
    return errors


def run_compression(preset: dict[str, Any], log: Log) -> dict[str, Any]:
    """Runs the compression grid and the consensus check; returns the raw results."""
    start = time.perf_counter()
    runs = []
    for task, task_keys in preset["tasks"]:
        for n in preset["peers"]:
            for topology in preset["topologies"]:
                for seed in preset["seeds"]:
                    for label, keys in _chosen(COMPRESSION_VARIANTS, preset):
                        t0 = time.perf_counter()
                        records = _run({**task_keys, **keys, "peers": n, "topology": topology,
                                        "seed": seed, "rounds": preset["rounds"],
                                        "eval_every": preset["eval_every"]})
                        runs.append({"task": task, "n": n, "topology": topology, "seed": seed,
                                     "variant": label, "keys": keys,
                                     "round": [r["round"] for r in records],
                                     "avg_model_acc": [r["avg_model_acc"] for r in records],
                                     "bytes_sent": [r["bytes_sent"] for r in records]})
                        log(f"{task} n={n} {topology} seed={seed} {label}: acc "
                            f"{records[-1]['avg_model_acc']:.3f}, "
                            f"{records[-1]['bytes_sent']} bytes "
                            f"({time.perf_counter() - t0:.1f} s)")
    c = preset["consensus"]
    consensus = {}
    for name, step in (("top_k", 0.011), ("rand_k", 0.0078)):  # γ of Koloskova et al.
        consensus[name] = consensus_check(c["n"], c["dim"], c["rounds"], name, 0.01, step)
        log(f"consensus ring {c['n']}, d={c['dim']}, {name} 1%: "
            f"{consensus[name][0]:.2e} -> {consensus[name][-1]:.2e}")
    return {"suite": "compression", "preset": preset, "runs": runs, "consensus": consensus,
            "wall_time_s": time.perf_counter() - start}


def run_heterogeneity(preset: dict[str, Any], log: Log) -> dict[str, Any]:
    """Runs the heterogeneity grid; returns the raw results."""
    start = time.perf_counter()
    task, task_keys = preset["task"]
    runs = []
    for alpha in preset["alphas"]:
        for seed in preset["seeds"]:
            for label, keys in _chosen(HETEROGENEITY_METHODS, preset):
                records = _run({**task_keys, **keys, "peers": preset["peers"],
                                "topology": "ring", "partition": "dirichlet", "alpha": alpha,
                                "seed": seed, "rounds": preset["rounds"],
                                "eval_every": preset["eval_every"]})
                runs.append({"task": task, "alpha": alpha, "seed": seed, "method": label,
                             "local_acc_mean": records[-1]["local_acc_mean"],
                             "avg_model_acc": records[-1]["avg_model_acc"]})
                log(f"{task} alpha={alpha} seed={seed} {label}: local acc "
                    f"{records[-1]['local_acc_mean']:.3f}")
    return {"suite": "heterogeneity", "preset": preset, "runs": runs,
            "wall_time_s": time.perf_counter() - start}


def compression_report(results: dict[str, Any]) -> str:
    """``report.md`` of the compression suite, from its results."""
    lines = ["# Compression benchmark", "",
             f"Command: `{results['command']}`; {results['wall_time_s']:.0f} s.", "",
             "| task | n | topology | variant | final avg-model acc (mean over seeds) | "
             "bytes sent | bytes vs full |", "|---|---|---|---|---|---|---|"]
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in results["runs"]:
        groups.setdefault((r["task"], r["n"], r["topology"]), {}).setdefault(
            r["variant"], []).append(r)
    findings = []
    for (task, n, topo), variants in groups.items():
        full = variants["full (dpsgd)"]
        full_acc = np.mean([r["avg_model_acc"][-1] for r in full])
        full_bytes = np.mean([r["bytes_sent"][-1] for r in full])
        for label, rs in variants.items():
            acc = np.mean([r["avg_model_acc"][-1] for r in rs])
            nbytes = np.mean([r["bytes_sent"][-1] for r in rs])
            fewer = "—" if rs is full else f"{full_bytes / nbytes:.1f}x fewer"
            lines.append(f"| {task} | {n} | {topo} | {label} | {acc:.3f} | {nbytes:.3g} | "
                         f"{fewer} |")
            if label.startswith("choco top_k"):
                ok = acc >= full_acc - 0.01 and full_bytes / nbytes >= 5
                findings.append(f"{task} n={n} {topo}: {label} {acc:.3f} vs full "
                                f"{full_acc:.3f} with {full_bytes / nbytes:.1f}x fewer bytes: "
                                f"{'within' if ok else 'NOT within'} 1 point at >= 5x")
    lines += ["", "## Findings", "", *[f"- {f}" for f in findings], "",
              "## Choco-Gossip consensus check (ring 25, d = 2000)", "",
              "Relative consensus error every 100 rounds:", ""]
    for name, errors in results["consensus"].items():
        rate = (errors[-1] / errors[0]) ** (1 / max(1, len(errors) - 1))
        lines.append(f"- {name} 1 %: {', '.join(f'{e:.2e}' for e in errors)} "
                     f"(x {rate:.3f} per 100 rounds)")
    lines += ["", "![accuracy vs bytes](accuracy_vs_bytes.png)", ""]
    return "\n".join(lines)


def heterogeneity_report(results: dict[str, Any]) -> str:
    """``report.md`` of the heterogeneity suite, from its results."""
    alphas = results["preset"]["alphas"]
    hi, lo = max(alphas), min(alphas)
    acc: dict[tuple[str, float], list[float]] = {}
    for r in results["runs"]:
        acc.setdefault((r["method"], r["alpha"]), []).append(r["local_acc_mean"])
    methods = list(dict.fromkeys(r["method"] for r in results["runs"]))
    lines = ["# Heterogeneity benchmark", "",
             f"Command: `{results['command']}`; {results['wall_time_s']:.0f} s. "
             "Local-model test accuracy (mean over peers, then over seeds ± std).", "",
             "| method | " + " | ".join(f"α = {a:g}" for a in alphas) +
             f" | drop α {hi:g} → {lo:g} | recovered vs D-PSGD |",
             "|---" * (len(alphas) + 3) + "|"]
    base = np.mean(acc[(methods[0], hi)]) - np.mean(acc[(methods[0], lo)])
    for m in methods:
        cells = [f"{np.mean(acc[(m, a)]):.3f} ± {np.std(acc[(m, a)]):.3f}" for a in alphas]
        drop = np.mean(acc[(m, hi)]) - np.mean(acc[(m, lo)])
        gain = np.mean(acc[(m, lo)]) - np.mean(acc[(methods[0], lo)])
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {drop:+.3f} | "
                     f"{gain * 100:+.1f} points at α = {lo:g}"
                     f"{f' ({gain / base:.0%} of the drop)' if base > 0 else ''} |")
    return "\n".join(lines) + "\n"


def _plot_compression(results: dict[str, Any], path: Path) -> None:
    from gossip.bench.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    first = results["runs"][0]
    for r in results["runs"]:
        if (r["task"], r["n"], r["topology"], r["seed"]) == (
                first["task"], first["n"], first["topology"], first["seed"]):
            ax.plot(r["bytes_sent"], r["avg_model_acc"], marker="o", ms=3, label=r["variant"])
    ax.set_xscale("log")
    ax.set_xlabel("bytes sent (all peers)")
    ax.set_ylabel("average-model test accuracy")
    ax.set_title(f"{first['task']}, n={first['n']}, {first['topology']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_algorithm_bench(suite: str, quick: bool, out_dir: str | Path, command: str,
                        log: Log, preset: dict[str, Any] | None = None) -> dict[str, Any]:
    """Runs ``suite`` (``compression`` or ``heterogeneity``) and writes its outputs.

    Args:
        suite: the suite's name.
        quick: the quick preset (else the full one).
        out_dir: output directory, created when the runs are done.
        command: the command line, recorded in the results.
        log: receives progress lines.
        preset: overrides the preset (tests).

    Returns:
        The results (the content of ``OUT/results.json``).
    """
    preset = preset or (QUICK if quick else FULL)[suite]
    runner = run_compression if suite == "compression" else run_heterogeneity
    results = {**runner(preset, log), "command": command}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    results = json.loads((out / "results.json").read_text())  # reports come from the file
    if suite == "compression":
        _plot_compression(results, out / "accuracy_vs_bytes.png")
        report = compression_report(results)
    else:
        report = heterogeneity_report(results)
    (out / "report.md").write_text(report)
    return results
