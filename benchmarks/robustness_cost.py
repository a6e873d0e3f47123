"""What one run of ``gossip bench robustness`` costs, by phase, alone and sharing a process.

For each task (digits-MLP, MNIST-1D CNN): one grid run (16 peers, exponential graph, IID,
seed 0, one ALIE attacker, ``--defence``, default ``clip``, 300 rounds) timed phase by
phase as a separate run does them (data loading and partition, stacking the shards, model
init, simulator init, the first round with its compilation, the first evaluation with its
compilation, the other rounds, the other evaluations); then what the grid's next runs cost
in the same process (``gossip.bench.robustness.Pieces``): a run of another seed and
partition (the compiled round is reused) and a run of another attack (a new compilation,
the rest reused).

    python benchmarks/robustness_cost.py --json [--tasks digits-mlp] [--defence NAME] [--out DIR]

Prints one JSON object per task; writes ``OUT/robustness_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp

from gossip.bench.provenance import provenance, script_out, write_result
from gossip.bench.robustness import FULL, TASKS, Pieces, run_config, run_one
from gossip.config import resolve
from gossip.evaluate import make_evaluator
from gossip.experiment import build_experiment, init_stacked_params, model_optimum, stack_shards
from gossip.rules import ROBUST
from gossip.sim.byzantine import make_adversary
from gossip.sim.simulator import DEFAULT_PEER_CHUNK, make_simulator
from gossip.simulate import mixing_graph
from gossip.training import run_keys


def phases(run: dict, preset: dict) -> dict[str, float]:
    """Seconds of each phase of one run built and run alone, as ``simulate`` does it."""
    out: dict[str, float] = {}
    t = time.perf_counter()

    def tick(name: str, *arrays: object) -> None:
        nonlocal t
        jax.block_until_ready(arrays)
        now = time.perf_counter()
        out[name] = round(now - t, 3)
        t = now

    exp = build_experiment(resolve({}, run_config(run, preset)))
    tick("data_and_partition")
    data = stack_shards(exp.dataset, exp.shards)
    tick("stack_shards", data)
    init_key, train_key = run_keys(run["seed"])
    params = init_stacked_params(exp, init_key)
    tick("model_init", params)
    sim = make_simulator(exp.model.loss, exp.optimizer, exp.rule, exp.config.batch_size,
                         DEFAULT_PEER_CHUNK, make_adversary(exp.attack, None, 16))
    evaluate = make_evaluator(exp.model.metric, exp.model.loss, optimum=model_optimum(exp),
                              honest=exp.honest)
    state = sim.init(params)
    tick("simulator_init", state)
    graph, _ = mixing_graph(exp.topology, 0)
    attackers = jnp.asarray(exp.attackers, jnp.int32)
    x, y = jnp.asarray(exp.dataset.x_test), jnp.asarray(exp.dataset.y_test)
    state, loss = sim.round(state, data, graph, train_key, attackers)
    tick("first_round_with_compile", loss)
    ev = evaluate(state.params, x, y)
    tick("first_eval_with_compile", ev)
    for _ in range(preset["rounds"] - 1):
        state, loss = sim.round(state, data, graph, train_key, attackers)
    tick(f"other_{preset['rounds'] - 1}_rounds", loss)
    evals = preset["rounds"] // preset["eval_every"]
    for _ in range(evals - 1):
        ev = jax.device_get(evaluate(state.params, x, y))
    tick(f"other_{evals - 1}_evals", ev)
    out["total"] = round(sum(out.values()), 3)
    return out


def shared(run: dict, preset: dict) -> dict[str, float]:
    """Seconds of the grid's runs after ``run`` in one process (``Pieces``)."""
    pieces = Pieces()
    out = {}
    for name, r in (("first", run),
                    ("other_seed_and_partition", {**run, "seed": 1,
                                                  "partition": "dirichlet0.5"}),
                    ("other_attack", {**run, "attack": "sign_flip"})):
        t = time.perf_counter()
        run_one(r, preset, pieces)
        out[name] = round(time.perf_counter() - t, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object per task")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--defence", default="clip", choices=["none", *ROBUST])
    parser.add_argument("--rounds", type=int, default=FULL["rounds"])
    parser.add_argument("--eval-every", type=int, default=FULL["eval_every"])
    parser.add_argument("--out", help="output directory (default: a new "
                        "runs/bench-robustness_cost-YYYYmmdd-HHMMSS)")
    args = parser.parse_args()
    out = script_out("robustness_cost", args.out)
    meta = provenance()
    preset = {**FULL, "rounds": args.rounds, "eval_every": args.eval_every}
    rows = []
    for task in args.tasks:
        run = {"task": task, "topology": "exponential", "partition": "iid", "seed": 0,
               "k": 1, "attack": "alie", "defence": args.defence,
               "f": None if args.defence == "none" else 1}
        row = {"task": task, "defence": args.defence, "rounds": args.rounds,
               "eval_every": args.eval_every,
               "alone_s": phases(run, preset), "in_one_process_s": shared(run, preset)}
        rows.append(row)
        print(json.dumps(row) if args.json else
              f"{task}: alone {row['alone_s']}\n  in one process {row['in_one_process_s']}",
              flush=True)
    meta["load_average_after"] = list(os.getloadavg())
    path = write_result(out / "robustness_cost.json", {"meta": meta, "results": rows})
    if not args.json:
        print(f"results: {path}")


if __name__ == "__main__":
    main()
