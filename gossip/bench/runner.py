"""Runs the topology suite: one simulation per grid point, the cost model, pure gossip.

Every run is a ``gossip.config.Config`` built from the suite, run with
``gossip.simulate.simulate``; its metrics records (one every ``eval_every`` rounds) are kept
with the bytes each peer has sent and the modelled time of every network at the same rounds.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.compilation_cache import compilation_cache

from gossip.bench.consensus import measure_consensus
from gossip.bench.cost_model import out_degrees, round_times
from gossip.bench.plots import write_plots
from gossip.bench.provenance import machine_info
from gossip.bench.report import RAW_KEYS, build_results, markdown, write_json
from gossip.bench.suite import SuiteConfig, TaskSpec, topology_options
from gossip.bench.timing import median_time
from gossip.config import Config
from gossip.errors import ConfigError
from gossip.experiment import Experiment, build_experiment
from gossip.simulate import message_nbytes, simulate
from gossip.topology import make_topology
from gossip.training import make_local_step

Log = Callable[[str], None]
RECORD_KEYS = ("round", "loss", "avg_model_acc", "local_acc_mean", "local_acc_min",
               "local_acc_max", "consensus_distance")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_config(suite: SuiteConfig, task: TaskSpec, n: int, partition: str, topology: str,
               seed: int) -> Config:
    """The simulator config of one grid point (hyper-parameters from the task)."""
    return task.config(peers=n, topology=topology,
                       topology_options=topology_options(suite, topology, n), rule="dpsgd",
                       local_steps=suite.local_steps, partition=partition, alpha=suite.alpha,
                       seed=seed, out="")


def one_message_nbytes(exp: Experiment) -> int:
    """Payload bytes of one peer's message, from the model's parameter shapes."""
    sample = jnp.asarray(exp.dataset.x_train[:1])
    one = jax.eval_shape(exp.model.init, jax.random.key(0), sample)
    stacked = jax.tree.map(lambda s: jax.ShapeDtypeStruct((1, *s.shape), s.dtype), one)
    return message_nbytes(exp, stacked)


def measure_step_time(exp: Experiment, repeats: int = 50) -> float:
    """Median seconds of one peer's jitted local step (batch ``batch_size``) on this machine."""
    x = jnp.asarray(exp.dataset.x_train[:exp.config.batch_size])
    y = jnp.asarray(exp.dataset.y_train[:exp.config.batch_size])
    params = exp.model.init(jax.random.key(0), x[:1])
    step = jax.jit(make_local_step(exp.model.loss, exp.optimizer))
    state = (params, exp.optimizer.init(params))
    key = jax.random.key(0)
    return median_time(lambda: step(*state, (x, y), key), repeats)  # warm-up compiles


def run_one(exp: Experiment, suite: SuiteConfig, task: TaskSpec, partition: str,
            step_s: float, message_bytes: int) -> dict[str, Any]:
    """Simulates one grid point and attaches bytes and modelled times to its eval rounds.

    Returns:
        A dict: the grid point, ``weights``, and per evaluation (lists of equal length)
        ``round``, the metrics of ``RECORD_KEYS``, ``bytes_per_peer`` (mean over peers),
        ``bytes_busiest_peer`` and ``time_s`` (network name -> modelled seconds).
    """
    cfg = exp.config
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    simulate(exp, None, progress=False, on_eval=records.append)
    wall = time.perf_counter() - start
    rounds = np.array([r["round"] for r in records])
    sent = np.cumsum(out_degrees(exp.topology, cfg.rounds), axis=0)[rounds - 1] * message_bytes
    times = {}
    for net in suite.networks:
        per_round = round_times(exp.topology, cfg.rounds, suite.local_steps * step_s,
                                message_bytes, net.latency_s, net.bandwidth_bit_s)
        times[net.name] = [float(v) for v in np.cumsum(per_round)[rounds - 1]]
    run = {"task": task.name, "n": cfg.peers, "partition": partition,
           "topology": cfg.topology, "topology_options": dict(cfg.topology_options),
           "weights": exp.topology.weights, "seed": cfg.seed, "wall_time_s": wall}
    run.update({key: [r[key] for r in records] for key in RECORD_KEYS})
    run["bytes_per_peer"] = [float(v) for v in sent.mean(axis=1)]
    run["bytes_busiest_peer"] = [int(v) for v in sent.max(axis=1)]
    run["time_s"] = times
    return run


@contextlib.contextmanager
def compile_cache() -> Iterator[None]:
    """A persistent compilation cache for the suite's runs: ``$JAX_COMPILATION_CACHE_DIR``
    when that is set (JAX's own variable; the test session sets it), else a private,
    temporary one.

    Every run builds a new simulator, so JAX's in-memory cache never hits; runs of the same
    shapes (seeds, topologies with the same k) compile to the same HLO, which this cache
    reuses (about 2 s saved per run on 2 cores). Results do not depend on it.
    """
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    saved = {name: getattr(jax.config, name) for name in names}
    shared = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    with (contextlib.nullcontext(shared) if shared else
          tempfile.TemporaryDirectory(prefix="gossip-bench-jit-")) as tmp:
        try:
            jax.config.update(names[0], tmp)
            jax.config.update(names[1], 0.0)
            jax.config.update(names[2], -1)
            compilation_cache.reset_cache()
            yield
        finally:
            for name, value in saved.items():
                jax.config.update(name, value)
            compilation_cache.reset_cache()


def run_suite(suite: SuiteConfig, log: Log = _stderr) -> dict[str, Any]:
    """Runs every grid point of the suite and the pure-gossip consensus measurement.

    Args:
        suite: the validated suite.
        log: receives one progress line per run.

    Returns:
        The raw results: ``suite``, ``machine``, ``step_time_s`` and ``message_bytes`` (per
        task), ``runs`` (see ``run_one``), ``consensus`` (see ``measure_consensus``) and
        ``wall_time_s``.
    """
    start = time.perf_counter()
    grid = [(task, n, part, topo, seed) for task in suite.tasks for n in suite.peers
            for part in suite.partitions for topo in suite.topologies for seed in suite.seeds]
    # every dataset and model is built once before anything runs: bad names fail fast
    first = {task.name: build_experiment(run_config(suite, task, suite.peers[0],
                                                    suite.partitions[0], suite.topologies[0],
                                                    suite.seeds[0])) for task in suite.tasks}
    step_time = {name: measure_step_time(exp) for name, exp in first.items()}
    msg_bytes = {name: one_message_nbytes(exp) for name, exp in first.items()}
    for name in first:
        log(f"{name}: one local step {step_time[name] * 1e3:.3f} ms, "
            f"message {msg_bytes[name]} bytes")
    runs = []
    for i, (task, n, part, topo, seed) in enumerate(grid):
        exp = build_experiment(run_config(suite, task, n, part, topo, seed))
        run = run_one(exp, suite, task, part, step_time[task.name], msg_bytes[task.name])
        runs.append(run)
        log(f"[{i + 1}/{len(grid)}] {task.name} n={n} {part} {topo} seed={seed}: "
            f"{suite.target_metric} {run[suite.target_metric][-1]:.3f} "
            f"({run['wall_time_s']:.1f} s)")
    consensus = []
    for n in suite.peers:
        for name in suite.topologies:
            topo = make_topology(name, n, seed=suite.seeds[0],
                                 **topology_options(suite, name, n))
            consensus.append(measure_consensus(topo, suite.consensus_rounds,
                                               suite.consensus_dim, seed=suite.seeds[0]))
    return {"suite": suite.to_dict(),
            "machine": {**machine_info(), "devices": str(jax.devices())},
            "step_time_s": step_time, "message_bytes": msg_bytes, "runs": runs,
            "consensus": consensus, "wall_time_s": time.perf_counter() - start}


def run_topology_bench(suite: SuiteConfig, out_dir: str | Path, command: str,
                       log: Log = _stderr) -> dict[str, Any]:
    """Runs the suite and writes ``results.json``, ``report.md`` and the PNG plots.

    Args:
        suite: the validated suite.
        out_dir: output directory (created once the runs are done: nothing is written
            when the suite fails on a bad name).
        command: the command line, recorded in the results.
        log: receives progress lines.

    Returns:
        The results (the content of ``results.json``).
    """
    with compile_cache():
        raw = run_suite(suite, log)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_outputs(build_results(raw, command), out)


def write_outputs(results: dict[str, Any], out: Path) -> dict[str, Any]:
    """Writes ``results.json``, then the plots and ``report.md`` from that file (as DESIGN.md
    asks: reports come from files, not live objects); returns the file's content."""
    write_json(results, out / "results.json")
    results = json.loads((out / "results.json").read_text())
    plots = write_plots(results, out)
    (out / "report.md").write_text(markdown(results, plots))
    return results


def rerender(suite: SuiteConfig, out_dir: str | Path) -> dict[str, Any]:
    """Rebuilds targets, summary, findings, report and plots from ``OUT/results.json``.

    The runs and consensus measurements are read back unchanged; the target settings
    (``target_metric``, ``target_fraction``, ``target_reach``) are the suite's.

    Raises:
        ConfigError: no readable ``results.json`` in ``out_dir``.
    """
    path = Path(out_dir) / "results.json"
    try:
        old = json.loads(path.read_text())
        raw = {key: old[key] for key in RAW_KEYS}
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"cannot read results from {path}: {e}") from None
    raw["suite"] = {**raw["suite"], **{key: getattr(suite, key) for key in
                                       ("target_metric", "target_fraction", "target_reach")}}
    return write_outputs(build_results(raw, old["command"]), Path(out_dir))
