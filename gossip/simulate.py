"""``gossip sim``: run a simulation from a config, write its metrics, print a summary."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from gossip.config import Config, check_driver
from gossip.evaluate import evaluation_record, health_record, make_evaluator
from gossip.event_sim import simulate_events
from gossip.experiment import (
    Experiment,
    build_experiment,
    check_attackers,
    init_stacked_params,
    model_optimum,
    stack_shards,
)
from gossip.outputs import make_out, with_out
from gossip.plots import write_run_curves
from gossip.pytree import save_npz, tree_nbytes
from gossip.rules import RobustState
from gossip.sim.byzantine import make_adversary
from gossip.sim.sharding import peer_sharding, shard_peers
from gossip.sim.simulator import DEFAULT_PEER_CHUNK, make_simulator
from gossip.summary_table import METRIC_SHORT, summary_table
from gossip.topology import RoundGraph, Topology
from gossip.training import FULL_BATCH, run_keys


def mixing_graph(topology: Topology, round_: int) -> tuple[RoundGraph, int]:
    """The round's graph as device arrays, and the number of messages sent in it."""
    g = topology.round_graph(round_)
    own = np.arange(topology.n)[:, None]
    messages = int(np.count_nonzero(g.neighbours != own))
    return RoundGraph(*map(jnp.asarray, g)), messages


def message_nbytes(exp: Experiment, params: Any) -> int:
    """Payload bytes of one message of one peer (headers excluded)."""
    one = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), params)
    shapes = jax.eval_shape(lambda p: exp.rule.message(p, exp.rule.init(p)), one)
    return tree_nbytes(shapes)


def simulate(exp: Experiment, out_dir: Path | None = None, progress: bool = True,
             on_eval: Callable[[dict[str, Any]], None] | None = None,
             reuse: dict[Any, Any] | None = None) -> tuple[dict[str, Any], Any]:
    """Runs the simulation of an experiment.

    Args:
        exp: the built experiment.
        out_dir: where to write ``metrics.jsonl`` (and ``params/`` with ``save_params``);
            None writes nothing.
        progress: show a progress bar.
        on_eval: called with every metrics record (each line of ``metrics.jsonl``).
        reuse: None, or a dict the caller keeps across calls (``gossip bench robustness``):
            the jitted round and evaluator, the initial parameters and the stacked shards
            are kept in it, keyed by the experiment's objects (model, optimizer, rule,
            attack, dataset, shards: hand the same objects to share them) and by the seed
            and the honest peers. Runs that differ only in topology, seed, data split or
            attackers then compile once per shape; shards are padded to the training set's
            length so that every split has one shape (batches are drawn from the valid
            rows only, so results are unchanged).

    Returns:
        ``(last_metrics, params)``: the last metrics record and the final stacked params.
    """
    cfg = exp.config
    check_driver(cfg, "sim")
    if cfg.engine == "event":
        return simulate_events(exp, lambda params: message_nbytes(exp, params), out_dir,
                               progress, on_eval)
    init_key, train_key = run_keys(cfg.seed)
    sharding = peer_sharding(cfg.peers)
    attacked = exp.attack is not None and len(exp.attackers) > 0
    # The attackers are an input of the round, not constants of it: see ``reuse``.
    attackers = (jnp.asarray(exp.attackers, jnp.int32),) if attacked else ()

    def kept(key: tuple, make: Callable[[], Any], *owners: Any) -> Any:
        if reuse is None:
            return make()
        key = (*key, *map(id, owners))
        if key not in reuse:  # the owners stay referenced, so their ids stay theirs
            reuse[key] = (make(), owners)
        return reuse[key][0]

    pad = reuse is not None and cfg.batch_size != FULL_BATCH
    data = kept(("data", pad), lambda: shard_peers(stack_shards(
        exp.dataset, exp.shards, len(exp.dataset.x_train) if pad else 0), sharding),
        exp.dataset, exp.shards)
    x_test, y_test = kept(("test",), lambda: (jnp.asarray(exp.dataset.x_test),
                                              jnp.asarray(exp.dataset.y_test)), exp.dataset)

    def build_sim() -> tuple[Any, Callable[[Any], Any]]:
        # A sharded peer axis stays whole: chunking it would reshape across devices.
        sim = make_simulator(exp.model.loss, exp.optimizer, exp.rule, cfg.batch_size,
                             peer_chunk=None if sharding else DEFAULT_PEER_CHUNK,
                             adversary=(make_adversary(exp.attack, None, cfg.peers)
                                        if attacked else None))
        return sim, (sim.init if reuse is None else jax.jit(sim.init))

    sim, sim_init = kept(("sim", cfg.batch_size, sharding is None, attacked), build_sim,
                         exp.model, exp.optimizer, exp.rule, exp.attack)
    optimum = model_optimum(exp)
    evaluate = kept(("eval", optimum is None, exp.honest.tobytes() if attacked else None),
                    lambda: make_evaluator(exp.model.metric, exp.model.loss, optimum=optimum,
                                           honest=exp.honest if attacked else None),
                    exp.model, *([] if optimum is None else [exp.dataset]))
    params = kept(("init", cfg.seed, cfg.same_init, cfg.peers),
                  lambda: init_stacked_params(exp, init_key), exp.model, exp.dataset)
    state = shard_peers(sim_init(params), sharding)
    msg_bytes = message_nbytes(exp, state.params)
    short = METRIC_SHORT[exp.model.metric_name]

    def graph_of(t: int) -> tuple[RoundGraph, int]:
        graph, messages = mixing_graph(exp.topology, t)
        return shard_peers(graph, sharding), messages

    static = None if exp.topology.time_varying else graph_of(0)
    bytes_sent = messages_sent = 0
    record: dict[str, Any] = {}
    sink: TextIO | None = (out_dir / "metrics.jsonl").open("w") if out_dir else None
    start = time.perf_counter()
    bar = tqdm(range(cfg.rounds), desc="gossip sim", unit="round", disable=not progress)
    try:
        for t in bar:
            graph, messages = static or graph_of(t)
            state, loss = sim.round(state, data, graph, train_key, *attackers)
            bytes_sent += messages * msg_bytes
            messages_sent += messages
            if (t + 1) % cfg.eval_every and t + 1 != cfg.rounds:
                continue
            ev = jax.device_get(evaluate(state.params, x_test, y_test))
            record = {
                "round": t + 1,
                "step": (t + 1) * exp.rule.local_steps,
                "time": round(time.perf_counter() - start, 4),
                "loss": float(np.mean(jax.device_get(loss))),
                **evaluation_record(ev, short),
                **health_record(state.params, state.rule_state),
                "bytes_sent": bytes_sent,
                "messages_sent": messages_sent,
            }
            if isinstance(state.rule_state, RobustState):
                record["robust_flagged"] = int(np.sum(jax.device_get(
                    state.rule_state.flagged)[exp.honest]))
            bar.set_postfix({"loss": f"{record['loss']:.3f}",
                             short: f"{record[f'avg_model_{short}']:.3f}"})
            if sink:
                sink.write(json.dumps(record) + "\n")
                sink.flush()
            if on_eval:
                on_eval(record)
    finally:
        bar.close()
        if sink:
            sink.close()
    return record, state.params


def _first_unsound(path: Path, n: int) -> int:
    """The round of the first record of ``path`` with fewer than ``n`` finite peers."""
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record["peers_finite"] < n:
            return int(record["round"])
    raise ValueError(f"{path}: every record has {n} finite peers")


def save_peer_params(params: Any, out_dir: Path) -> None:
    """Writes ``out_dir/params/peer-XXXX.npz`` for every peer (keys = leaf paths)."""
    (out_dir / "params").mkdir(exist_ok=True)
    host = jax.device_get(params)
    n = jax.tree.leaves(host)[0].shape[0]
    for i in range(n):
        peer = jax.tree.map(lambda x, i=i: x[i], host)
        save_npz(out_dir / "params" / f"peer-{i:04d}.npz", peer)


def run_simulation(config: Config, progress: bool = True, plot: bool = True) -> dict[str, Any]:
    """``gossip sim``: builds the experiment (all validation first), then runs and writes it
    (:func:`run_experiment`). Nothing is written when the config is invalid.

    Returns:
        The last metrics record.
    """
    config = with_out(config, "sim")
    check_attackers(config)
    check_driver(config, "sim")
    return run_experiment(build_experiment(config), progress=progress, plot=plot)


def run_experiment(exp: Experiment, progress: bool = True, plot: bool = True
                   ) -> dict[str, Any]:
    """Runs a built experiment as ``gossip sim`` does: files, curves and the summary.

    Writes ``OUT/config.toml``, ``OUT/metrics.jsonl``, ``OUT/curves.png`` (unless ``plot`` is
    false, or matplotlib is missing: then one line says so) and, with ``save_params``,
    ``OUT/params/peer-XXXX.npz``; prints the summary table. OUT is ``exp.config.out``, or a
    new directory ``runs/sim-YYYYmmdd-HHMMSS`` when it is empty (``gossip.outputs``). The
    experiment may hold pieces of your own (``dataclasses.replace(exp, model=...,
    topology=...)``, see docs/tutorial.md).

    Returns:
        The last metrics record.
    """
    config = with_out(exp.config, "sim")
    exp = dataclasses.replace(exp, config=config)
    out_dir = make_out(Path(config.out))
    (out_dir / "config.toml").write_text(config.to_toml())
    record, params = simulate(exp, out_dir, progress)
    if config.save_params:
        save_peer_params(params, out_dir)
    curves = write_run_curves(out_dir) if plot else None
    print(summary_table(record, exp.model.metric_name))
    if record.get("peers_finite", config.peers) < config.peers:
        first = _first_unsound(out_dir / "metrics.jsonl", config.peers)
        print(f"WARNING: the run diverged: {config.peers - record['peers_finite']} of "
              f"{config.peers} peers end with parameters that are not finite (first seen in "
              f"the record of round {first}; peers_finite and mass in metrics.jsonl)")
    print(f"metrics: {out_dir / 'metrics.jsonl'}")
    if curves:
        print(f"curves: {curves}")
    return record
