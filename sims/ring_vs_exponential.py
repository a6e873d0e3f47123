"""Ring vs exponential graph: how the topology changes decentralized training.

Trains the same MLP on sklearn's digits, split over N peers (64 by default), once over a ring
(2 neighbours each) and once over the exponential graph (log2 N neighbours each), and prints
one row per topology: the final accuracy of the average model, the peers' mean local
accuracy, the consensus distance 1/N sum_i |x_i - mean x|^2, the payload bytes sent, and the
first evaluated round at which the average model reached ``--target`` accuracy.

    python sims/ring_vs_exponential.py                      # 64 peers, 300 rounds (~20 s)
    python sims/ring_vs_exponential.py --partition dirichlet --alpha 0.1 --out runs/topo

With ``--out DIR`` each topology writes ``DIR/TOPOLOGY/metrics.jsonl`` and ``config.toml``
(rerun one with ``gossip sim --config DIR/ring/config.toml``); without it nothing is written.
"""

import argparse
import json
from pathlib import Path

from gossip.config import resolve
from gossip.experiment import build_experiment
from gossip.simulate import simulate
from gossip.summary_table import human_bytes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers", type=int, default=64)
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--target", type=float, default=0.95, help="average-model accuracy to reach")
    p.add_argument("--topologies", nargs="+", default=["ring", "exponential"])
    p.add_argument("--partition", default="iid")
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write DIR/TOPOLOGY/metrics.jsonl (default: nothing)")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    args = p.parse_args()

    print(f"{'topology':<12} {'avg acc':>8} {'local acc':>9} {'consensus':>10} "
          f"{'bytes sent':>11} {'rounds to ' + str(args.target):>16}")
    results = {}
    for name in args.topologies:
        out = args.out / name if args.out else None
        config = resolve({}, dict(peers=args.peers, topology=name, rounds=args.rounds,
                                  eval_every=args.eval_every, partition=args.partition,
                                  alpha=args.alpha, seed=args.seed, dataset="digits",
                                  model="mlp", out=out and str(out)))
        if out:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.toml").write_text(config.to_toml())
        records = []
        last, _ = simulate(build_experiment(config), out, progress=False,
                           on_eval=records.append)
        hit = next((r["round"] for r in records if r["avg_model_acc"] >= args.target), None)
        results[name] = {"avg_model_acc": last["avg_model_acc"],
                         "local_acc_mean": last["local_acc_mean"],
                         "consensus_distance": last["consensus_distance"],
                         "bytes_sent": last["bytes_sent"], "rounds_to_target": hit}
        print(f"{name:<12} {last['avg_model_acc']:>8.4f} {last['local_acc_mean']:>9.4f} "
              f"{last['consensus_distance']:>10.3e} {human_bytes(last['bytes_sent']):>11} "
              f"{'not reached' if hit is None else hit:>16}", flush=True)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
