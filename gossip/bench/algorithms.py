"""``gossip bench compression`` and ``gossip bench heterogeneity`` (issue 13).

Both run a grid of simulator runs (``gossip.simulate.simulate``), keep every metrics record,
write ``results.json``, then ``report.md`` and PNG plots made from that file only
(``gossip.bench.algorithm_reports``).

- **compression**: accuracy against bytes sent for uncompressed D-PSGD, Choco-SGD with
  every operator, and naive compressed D-PSGD with and without error feedback; plus the
  convex check of the Choco paper: consensus on a ring of 25 peers, d = 2000, top-1 % and
  rand-1 %, whose error should decay linearly.
- **heterogeneity**: on a ring, Dirichlet α from IID-like to very skewed, D-PSGD with
  momentum against QG-DSGDm, gradient tracking and D²: the accuracy lost from the largest α
  to the smallest, and how much of D-PSGD's loss each method recovers.

``QUICK`` presets take a few minutes on 2 CPU cores. ``FULL`` runs every variant on the
digits MLP with 16 peers and 3 seeds, and the variants that tell the story (``CORE_VARIANTS``)
with 64 peers and on the MNIST-1D CNN, one seed each: a run there costs 5-10x more.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax

from gossip.bench.algorithm_reports import write_report
from gossip.bench.provenance import machine_info
from gossip.config import resolve
from gossip.errors import ConfigError
from gossip.experiment import build_experiment
from gossip.rules import make_rule
from gossip.sim.simulator import PeerData, make_simulator
from gossip.simulate import mixing_graph, simulate
from gossip.topology import make_topology

Log = Callable[[str], None]

TASKS: dict[str, dict[str, Any]] = {
    "digits-mlp": {"dataset": "digits", "model": "mlp"},
    "mnist1d-cnn": {"dataset": "mnist1d", "model": "cnn1d"},
}

# The operators of the compression suite: (label, config keys).
OPERATORS: list[tuple[str, dict[str, Any]]] = [
    ("top_k 1%", {"compress": "top_k", "compress_ratio": 0.01}),
    ("top_k 10%", {"compress": "top_k", "compress_ratio": 0.1}),
    ("int8", {"compress": "int8"}),
    ("int4", {"compress": "int4"}),
    ("sign", {"compress": "sign"}),
]
# Each operator three ways: Choco-SGD (whose public copy x̂ is the error feedback), and naive
# compressed D-PSGD with and without error feedback (the Choco paper's negative control). γ
# is the operator's default (``gossip.rules.choco.consensus_step_for``).
COMPRESSION_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("full (dpsgd)", {"rule": "dpsgd"}),
    *[(f"choco {op}", {"rule": "choco", **keys}) for op, keys in OPERATORS],
    *[(f"naive {op} + EF", {"rule": "dpsgd", **keys}) for op, keys in OPERATORS],
    *[(f"naive {op} no EF", {"rule": "dpsgd", **keys, "error_feedback": False})
      for op, keys in OPERATORS],
]
# The variants of the larger grids (64 peers, the CNN): a run there costs 5-10x more.
CORE_VARIANTS = ["full (dpsgd)", "choco top_k 1%", "choco top_k 10%", "naive top_k 10% no EF"]

# D-PSGD and QG-DSGDm: lr 0.05 with momentum 0.9; gradient tracking and D² have no momentum
# and take its effective step, 0.05 / (1 - 0.9) = 0.5 (at 0.05 they were 8-10 points lower
# at α = 10 after 150 rounds: under-trained, not worse).
HETEROGENEITY_METHODS: list[tuple[str, dict[str, Any]]] = [
    ("dpsgd + momentum", {"rule": "dpsgd", "optimizer": "momentum", "lr": 0.05}),
    ("qg_dsgdm", {"rule": "qg_dsgdm", "optimizer": "sgd", "lr": 0.05}),
    ("gradient_tracking", {"rule": "gradient_tracking", "optimizer": "sgd", "lr": 0.5}),
    ("d2", {"rule": "d2", "optimizer": "sgd", "lr": 0.5}),
]

# Choco-Gossip's γ in the paper's consensus experiment (ring of 25, d = 2000).
CONSENSUS_STEPS = {"top_k": 0.046, "rand_k": 0.011}

QUICK = {
    "compression": {"grids": [{"task": "digits-mlp", "peers": 16, "topologies": ["ring"],
                               "seeds": [0], "only": CORE_VARIANTS}],
                    "rounds": 150, "eval_every": 25,
                    "consensus": {"n": 25, "dim": 2000, "rounds": 1000, "every": 100}},
    "heterogeneity": {"task": "digits-mlp", "peers": 16, "alphas": [10.0, 0.1], "seeds": [0],
                      "rounds": 150, "eval_every": 25},
}
FULL = {
    "compression": {"grids": [{"task": "digits-mlp", "peers": 16,
                               "topologies": ["ring", "exponential"], "seeds": [0, 1, 2]},
                              {"task": "digits-mlp", "peers": 64,
                               "topologies": ["ring", "exponential"], "seeds": [0],
                               "only": CORE_VARIANTS},
                              {"task": "mnist1d-cnn", "peers": 16,
                               "topologies": ["ring", "exponential"], "seeds": [0],
                               "only": CORE_VARIANTS}],
                    "rounds": 300, "eval_every": 25,
                    "consensus": {"n": 25, "dim": 2000, "rounds": 5000, "every": 100}},
    "heterogeneity": {"task": "digits-mlp", "peers": 16, "alphas": [10.0, 1.0, 0.1],
                      "seeds": [0, 1, 2], "rounds": 500, "eval_every": 25},
}


def _chosen(options: list[tuple[str, dict[str, Any]]], only: list[str] | None
            ) -> list[tuple[str, dict[str, Any]]]:
    """The variants (methods) named in ``only``; all of them when it is None."""
    return [o for o in options if only is None or o[0] in only]


def _run(keys: dict[str, Any]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    simulate(build_experiment(resolve({}, keys)), None, progress=False,
             on_eval=records.append)
    return records


def _machine() -> dict[str, Any]:
    """``provenance.machine_info()`` (CPU, cores, load, versions) and the JAX devices."""
    return {**machine_info(), "devices": str(jax.devices())}


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
    """Runs the compression grids and the consensus check; returns the raw results."""
    start = time.perf_counter()
    runs = []
    for grid in preset["grids"]:
        task = grid["task"]
        for topology in grid["topologies"]:
            for seed in grid["seeds"]:
                for label, keys in _chosen(COMPRESSION_VARIANTS, grid.get("only")):
                    t0 = time.perf_counter()
                    records = _run({**TASKS[task], **grid.get("keys", {}), **keys,
                                    "peers": grid["peers"], "topology": topology,
                                    "seed": seed, "rounds": preset["rounds"],
                                    "eval_every": preset["eval_every"]})
                    runs.append({"task": task, "n": grid["peers"], "topology": topology,
                                 "seed": seed, "variant": label, "keys": keys,
                                 **{k: [r[k] for r in records] for k in
                                    ("round", "avg_model_acc", "local_acc_mean",
                                     "bytes_sent")}})
                    log(f"{task} n={grid['peers']} {topology} seed={seed} {label}: acc "
                        f"{records[-1]['avg_model_acc']:.3f}, "
                        f"{records[-1]['bytes_sent']} bytes "
                        f"({time.perf_counter() - t0:.1f} s)")
    c = preset["consensus"]
    consensus = {}
    for name, step in CONSENSUS_STEPS.items():
        errors = consensus_check(c["n"], c["dim"], c["rounds"], name, 0.01, step,
                                 every=c["every"])
        consensus[name] = {"step": step, "every": c["every"], "errors": errors}
        log(f"consensus ring {c['n']}, d={c['dim']}, {name} 1%: "
            f"{errors[0]:.2e} -> {errors[-1]:.2e}")
    return {"suite": "compression", "preset": preset, "runs": runs, "consensus": consensus,
            "wall_time_s": time.perf_counter() - start}


def run_heterogeneity(preset: dict[str, Any], log: Log) -> dict[str, Any]:
    """Runs the heterogeneity grid; returns the raw results."""
    start = time.perf_counter()
    task = preset["task"]
    runs = []
    for alpha in preset["alphas"]:
        for seed in preset["seeds"]:
            for label, keys in _chosen(HETEROGENEITY_METHODS, preset.get("only")):
                records = _run({**TASKS[task], **preset.get("keys", {}), **keys,
                                "peers": preset["peers"], "topology": "ring",
                                "partition": "dirichlet", "alpha": alpha, "seed": seed,
                                "rounds": preset["rounds"],
                                "eval_every": preset["eval_every"]})
                runs.append({"task": task, "alpha": alpha, "seed": seed, "method": label,
                             **{k: [r[k] for r in records] for k in
                                ("round", "avg_model_acc", "local_acc_mean")}})
                log(f"{task} alpha={alpha} seed={seed} {label}: local acc "
                    f"{records[-1]['local_acc_mean']:.3f}")
    return {"suite": "heterogeneity", "preset": preset, "runs": runs,
            "wall_time_s": time.perf_counter() - start}


def rerender(out_dir: str | Path) -> dict[str, Any]:
    """Rebuilds ``report.md`` and the figures from ``OUT/results.json``; returns the results."""
    out = Path(out_dir)
    path = out / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"--report-only needs the results of an earlier run: cannot read "
                          f"{path}: {e}") from None
    write_report(results, out)
    return results


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
    results = {**runner(preset, log), "command": command, "machine": _machine()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    write_report(json.loads((out / "results.json").read_text()), out)  # from the file
    return results
