"""Push-sum on a directed graph vs D-PSGD, measured against the exact optimum x*.

Every peer holds its own least-squares problem (dataset ``least_squares``, the peers' optima
differ) and takes full-batch gradient steps (``batch_size=0``) on the ``linear`` model. Every
``--eval-every`` rounds it prints ``opt_distance`` = |mean x - x*| / |x*| of: push-sum on a
directed graph where the peers' masses differ (``--graph edges``: a directed ring whose even
peers also send two ahead, written to a temporary edge list; ``--graph epidemic``: each peer
sends to 2 random peers each round); D-PSGD on an undirected ring of the same size; and
D-PSGD on the directed graph, whose row-stochastic mixing weighs the peers unequally (the
warning on stderr). With a constant step size push-sum and D-PSGD on the ring stop at a
distance that shrinks with ``--lr``; D-PSGD on the directed graph stops at the optimum of a
weighted sum, which no step size fixes. On ``epidemic`` the curves stay noisy.

    python sims/push_sum_directed.py                    # 16 peers, 300 rounds (~5 s)
    python sims/push_sum_directed.py --graph epidemic --peers 64 --rounds 500

Writes nothing into the repository; ``--json`` ends with one JSON line of the curves.
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from gossip.config import resolve
from gossip.experiment import build_experiment
from gossip.simulate import simulate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers", type=int, default=16)
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--graph", choices=["edges", "epidemic"], default="edges")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="end with one JSON line of the curves")
    args = p.parse_args()

    n, tmp = args.peers, tempfile.TemporaryDirectory()
    edges = Path(tmp.name) / "directed.txt"
    edges.write_text("".join(f"{i} {(i + 1) % n}\n" + (f"{i} {(i + 2) % n}\n" if i % 2 == 0
                                                        else "") for i in range(n)))
    directed = ({"topology": "epidemic", "topology_options": {"s": 2}} if args.graph ==
                "epidemic" else {"topology": "edge_list",
                                 "topology_options": {"path": str(edges), "directed": True}})
    runs = {"push_sum directed": {"rule": "push_sum", **directed},
            "dpsgd ring": {"rule": "dpsgd", "topology": "ring"},
            "dpsgd directed": {"rule": "dpsgd", **directed}}
    curves = {}
    for name, run in runs.items():
        config = resolve({}, dict(peers=n, rounds=args.rounds, eval_every=args.eval_every,
                                  seed=args.seed, dataset="least_squares", model="linear",
                                  dataset_options={"peers": n}, batch_size=0,
                                  optimizer="sgd", lr=args.lr, **run))
        exp = build_experiment(config)
        if name.startswith("push_sum"):  # each peer's mass after the run's rounds: W_t ... W_0 1
            mass = np.ones(n)
            for t in range(args.rounds):
                mass = exp.topology.matrix(t) @ mass
            print(f"push-sum masses after {args.rounds} rounds: min {mass.min():.3f}, "
                  f"max {mass.max():.3f}")
        records = []
        simulate(exp, progress=False, on_eval=records.append)
        curves[name] = {r["round"]: r["opt_distance"] for r in records}
    tmp.cleanup()

    print("opt_distance = |mean x - x*| / |x*|")
    print(f"{'round':>6}" + "".join(f"{name:>20}" for name in curves))
    for t in curves["dpsgd ring"]:
        print(f"{t:>6}" + "".join(f"{curve[t]:>20.3e}" for curve in curves.values()))
    if args.json:
        print(json.dumps(curves))


if __name__ == "__main__":
    main()
