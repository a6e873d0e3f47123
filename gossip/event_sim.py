"""``gossip sim --engine event``: a built experiment on the event simulator's clock.

The assembly of :mod:`gossip.sim.events` (the driver) and :mod:`gossip.sim.timing` (when
things happen) from a config: the base step time (given, or measured here), the peers'
speeds, the message's encoded size, and the metrics records, which carry ``time_s``
(simulated seconds) besides everything ``gossip sim`` records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from gossip.evaluate import evaluation_record, health_record, make_evaluator
from gossip.experiment import Experiment, init_stacked_params, model_optimum, stack_shards
from gossip.sim.churn import Churn
from gossip.sim.events import EventOptions, budget_steps, make_event_engine, run_events
from gossip.sim.simulator import PeerData, SimState
from gossip.sim.timing import TimeModel, peer_speeds
from gossip.summary_table import METRIC_SHORT
from gossip.training import make_local_round, make_local_step, run_keys

_MEASURE_RUNS = 7
_MAX_BUDGET_STEPS = 4096


def measure_step_time(exp: Experiment, data: PeerData, params: Any) -> float:
    """Seconds of one local step of one peer on this machine (median of a few, compiled).

    Args:
        exp: the experiment (model, optimizer, batch size).
        data: every peer's shard; peer 0's is used.
        params: the stacked initial parameters; peer 0's are used.
    """
    step = make_local_round(make_local_step(exp.model.loss, exp.optimizer),
                            exp.config.batch_size, 1)
    one = jax.jit(step)
    p = jax.tree.map(lambda a: a[0], params)
    o = exp.optimizer.init(p)
    args = (p, o, data.x[0], data.y[0], data.size[0], jax.random.key(0))
    jax.block_until_ready(one(*args))
    times = []
    for _ in range(_MEASURE_RUNS):
        start = time.perf_counter()
        jax.block_until_ready(one(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def simulate_events(exp: Experiment, message_bytes: Callable[[Any], int],
                    out_dir: Path | None = None, progress: bool = True,
                    on_eval: Callable[[dict[str, Any]], None] | None = None
                    ) -> tuple[dict[str, Any], Any]:
    """Runs an experiment on the event simulator (``config.engine == "event"``).

    Args:
        exp: the built experiment (its rule is already the asynchronous one for ``async``).
        message_bytes: ``message_bytes(stacked params) -> int``, the encoded payload size
            of one message (``gossip.simulate.message_nbytes``).
        out_dir: where to write ``metrics.jsonl``; None writes nothing.
        progress: show a progress bar.
        on_eval: called with every metrics record.

    Returns:
        ``(last_metrics, params)``: the last metrics record and the final stacked params.
    """
    cfg = exp.config
    init_key, train_key = run_keys(cfg.seed)
    data = stack_shards(exp.dataset, exp.shards)
    params = init_stacked_params(exp, init_key)
    step_time = cfg.step_time or measure_step_time(exp, data, params)
    speed = peer_speeds(cfg.peers, cfg.seed, cfg.slow_peers, cfg.slowdown, cfg.stragglers)
    clock = TimeModel(step_time, speed, cfg.latency, cfg.bandwidth, cfg.drop, cfg.seed)
    max_steps = (int(budget_steps(clock.step_seconds(), cfg.local_time,
                                  _MAX_BUDGET_STEPS).max()) if cfg.local_time else None)
    engine = make_event_engine(exp.model.loss, exp.optimizer, exp.rule, cfg.batch_size,
                               max_steps)
    state = _init_state(exp, params)
    msg_bytes = message_bytes(state.params)
    evaluate = make_evaluator(exp.model.metric, exp.model.loss, optimum=model_optimum(exp))
    x_test, y_test = jnp.asarray(exp.dataset.x_test), jnp.asarray(exp.dataset.y_test)
    options = EventOptions(cfg.mode, cfg.rounds, cfg.eval_every, cfg.local_time,
                           cfg.round_deadline, cfg.max_staleness, cfg.time_bucket,
                           cfg.catchup_after, cfg.heartbeat_timeout)
    churn = Churn(cfg.peers, cfg.seed, cfg.churn, cfg.churn_downtime, cfg.churn_schedule)
    short = METRIC_SHORT[exp.model.metric_name]
    record: dict[str, Any] = {}
    sink: TextIO | None = (out_dir / "metrics.jsonl").open("w") if out_dir else None
    start = time.perf_counter()
    bar = tqdm(total=cfg.rounds, desc=f"gossip sim (event, {cfg.mode})", unit="round",
               disable=not progress)
    try:
        for report in run_events(engine, state, data, exp.topology.round_graph, clock,
                                 options, msg_bytes, train_key, churn):
            state = report.state
            ev = jax.device_get(evaluate(state.params, x_test, y_test))
            stats = report.stats
            record = {
                "round": report.round,
                "step": int(round(stats["steps_mean"])),
                "time": round(time.perf_counter() - start, 4),
                "time_s": stats["time_s"],
                "loss": float(np.mean(report.loss)),
                **evaluation_record(ev, short),
                **health_record(state.params, state.rule_state),
                "bytes_sent": stats["messages_sent"] * msg_bytes,
                **{k: v for k, v in stats.items() if k != "time_s"},
                "step_time_s": step_time,
            }
            bar.update(report.round - bar.n)
            bar.set_postfix({"t_sim": f"{stats['time_s']:.1f}s",
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


def _init_state(exp: Experiment, params: Any) -> SimState:
    params = jax.tree.map(jnp.copy, params)
    return SimState(params, jax.vmap(exp.optimizer.init)(params),
                    jax.vmap(exp.rule.init)(params), jnp.zeros((), jnp.int32))
