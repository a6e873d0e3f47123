"""Benchmark: one simulated round vs a centralised step vs a Python loop over peers.

For N in {16, 256, 1024} peers (MLP on digits, batch 32 per peer, ring, D-PSGD, SGD):

- ``sim_s``: one jitted simulator round (local steps vmapped over chunks of 32 peers, then
  gather mixing); ``sim_s_by_peer_chunk`` gives it for other chunk sizes (None: one vmap);
- ``central_s``: one centralised training step of the same model on a batch of N×32;
- ``loop_s``: a Python loop that steps each peer separately (jitted per-peer step), then
  mixes each peer separately (jitted per-peer mix).

Each figure is the median of several timed repeats after a warm-up. Prints one JSON object
per N and writes them all, with the command, machine and versions, to
``OUT/sim_throughput.json`` (``--out``; default a new ``runs/bench-sim_throughput-*``; the
committed figures are ``--out benchmarks/results``).

Usage: ``python benchmarks/sim_throughput.py --json [--peers 16 256 1024] [--repeats 5]
[--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import resource

import jax
import jax.numpy as jnp

from gossip.bench.provenance import provenance, script_out, write_result
from gossip.bench.timing import median_time
from gossip.config import Config
from gossip.experiment import build_experiment, init_stacked_params, stack_shards
from gossip.round import PeerState, Shard, make_peer_round
from gossip.sim.simulator import DEFAULT_PEER_CHUNK, make_simulator
from gossip.simulate import mixing_graph
from gossip.training import make_local_round, make_local_step, round_key, run_keys, sample_batch

CHUNKS = (None, 8, DEFAULT_PEER_CHUNK, 128)


def bench(n: int, batch: int, repeats: int, loop_repeats: int) -> dict:
    cfg = Config(peers=n, topology="ring", dataset="digits", model="mlp", optimizer="sgd",
                 lr=0.05, batch_size=batch)
    exp = build_experiment(cfg)
    init_key, train_key = run_keys(cfg.seed)
    data = stack_shards(exp.dataset, exp.shards)
    graph, _ = mixing_graph(exp.topology, 0)

    chunk_s = {}
    for chunk in CHUNKS:
        sim = make_simulator(exp.model.loss, exp.optimizer, exp.rule, batch, chunk)
        state = sim.init(init_stacked_params(exp, init_key))

        def sim_round(sim=sim):
            nonlocal state
            state, loss = sim.round(state, data, graph, train_key)
            return loss

        chunk_s[str(chunk)] = median_time(sim_round, repeats)
    sim_s = chunk_s[str(DEFAULT_PEER_CHUNK)]

    step = jax.jit(make_local_step(exp.model.loss, exp.optimizer))
    one = jax.tree.map(lambda a: a[0], init_stacked_params(exp, init_key))
    central = {"p": one, "o": exp.optimizer.init(one)}
    x_all, y_all = jnp.asarray(exp.dataset.x_train), jnp.asarray(exp.dataset.y_train)
    big = sample_batch(train_key, x_all, y_all, jnp.asarray(len(x_all)), n * batch)

    def central_step():
        central["p"], central["o"], metrics = step(central["p"], central["o"], big, train_key)
        return metrics["loss"]

    central_s = median_time(central_step, repeats)

    peer_round = make_peer_round(exp.rule, make_local_round(step, batch, 1))
    begin, finish = jax.jit(peer_round.begin), jax.jit(peer_round.finish)
    stacked = PeerState(state.params, state.opt_state, state.rule_state)
    peers = [jax.tree.map(lambda a, i=i: a[i], stacked) for i in range(n)]
    shards = [Shard(data.x[i], data.y[i], data.size[i]) for i in range(n)]
    nbr, w, sw = (jax.device_get(a) for a in graph)

    def loop_round():
        started = [begin(peers[i], shards[i], round_key(train_key, i, 0)) for i in range(n)]
        for i in range(n):
            payloads = jax.tree.map(lambda *xs: jnp.stack(xs),
                                    *[started[j][0] for j in nbr[i]])
            peers[i] = finish(started[i][1], payloads, w[i], sw[i], 0.0)
        return peers[-1].params

    loop_s = median_time(loop_round, loop_repeats)
    return {"peers": n, "batch_per_peer": batch, "sim_s": sim_s, "central_s": central_s,
            "loop_s": loop_s, "sim_s_by_peer_chunk": chunk_s, "sim_over_central": sim_s / central_s,
            "loop_over_sim": loop_s / sim_s,
            "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object per N")
    parser.add_argument("--peers", type=int, nargs="+", default=[16, 256, 1024])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--loop-repeats", type=int, default=2)
    parser.add_argument("--out", help="output directory (default: a new "
                        "runs/bench-sim_throughput-YYYYmmdd-HHMMSS)")
    args = parser.parse_args()
    out = script_out("sim_throughput", args.out)
    meta = provenance()
    rows = []
    for n in args.peers:
        row = bench(n, args.batch, args.repeats, args.loop_repeats)
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"N={n:5d}  sim {row['sim_s'] * 1e3:8.2f} ms  central "
                  f"{row['central_s'] * 1e3:8.2f} ms  loop {row['loop_s'] * 1e3:9.1f} ms  "
                  f"sim/central {row['sim_over_central']:.2f}  loop/sim "
                  f"{row['loop_over_sim']:.1f}", flush=True)
    meta["devices"] = f"{jax.device_count()} {jax.devices()[0].platform}"
    path = write_result(out / "sim_throughput.json", {"meta": meta, "results": rows})
    if not args.json:
        print(f"results: {path}")


if __name__ == "__main__":
    main()
