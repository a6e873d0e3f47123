"""Your own model in 30 lines: a plain-JAX MLP trained by gossip, no flax, no model zoo.

The framework needs only a pytree of parameters and ``loss(params, x, y) -> ()``. This script
writes both in plain JAX, splits sklearn's digits evenly over N peers and runs D-PSGD over a
ring with ``make_simulator`` (each round: one SGD step per peer, then averaging with its two
neighbours). It prints the mean training loss, the test accuracy of the average model and
the peers' mean local accuracy, and the consensus distance 1/N sum_i |x_i - mean x|^2.
It writes nothing; ``--json`` ends with one JSON line of the final numbers.

    python sims/custom_model.py                       # 16 peers, 300 rounds (~10 s)
    python sims/custom_model.py --peers 64 --hidden 128 --json
"""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

from gossip.rules import make_rule
from gossip.sim.simulator import PeerData, make_simulator
from gossip.topology import make_topology
from gossip.training import run_keys


def init(key, hidden):  # the model: a pytree of arrays ...
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (64, hidden)) / 8.0, "b1": jnp.zeros(hidden),
            "w2": jax.random.normal(k2, (hidden, 10)) / jnp.sqrt(hidden), "b2": jnp.zeros(10)}


def logits(params, x):
    return jax.nn.relu(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def loss(params, x, y):  # ... and the loss of one peer's batch: x (B, 64), y (B,)
    return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()


def accuracy(params, x, y):
    return jnp.mean(jnp.argmax(logits(params, x), -1) == y)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in [("--peers", 16), ("--rounds", 300), ("--print-every", 25),
                          ("--hidden", 64), ("--lr", 0.1), ("--seed", 0)]:
        p.add_argument(flag, type=type(default), default=default)
    p.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    args, (x, y) = p.parse_args(), load_digits(return_X_y=True)
    n, order = args.peers, np.random.default_rng(args.seed).permutation(len(y))
    x, y = (x[order] / 16.0).astype(np.float32), y[order].astype(np.int32)
    x_test, y_test, x, y = x[:360], y[:360], x[360:], y[360:]
    m = len(y) // n  # every peer gets m training rows: (N, m, 64) and (N, m)
    data = PeerData(x[:n * m].reshape(n, m, 64), y[:n * m].reshape(n, m), np.full(n, m, np.int32))

    init_key, train_key = run_keys(args.seed)
    sim = make_simulator(loss, optax.sgd(args.lr), make_rule("dpsgd"), batch_size=32)
    one = init(init_key, args.hidden)  # every peer starts from the same parameters, (N, ...)
    state = sim.init(jax.tree.map(lambda a: jnp.repeat(a[None], n, axis=0), one))
    graph = make_topology("ring", n).round_graph(0)  # static: the same graph every round
    print(f"{'round':>5} {'loss':>7} {'avg acc':>8} {'local acc':>9} {'consensus':>10}")
    for t in range(1, args.rounds + 1):
        state, peer_loss = sim.round(state, data, graph, train_key)
        if t % args.print_every and t != args.rounds:
            continue
        mean = jax.tree.map(lambda a: a.mean(0), state.params)  # the average model
        local = jax.vmap(accuracy, (0, None, None))(state.params, x_test, y_test)
        consensus = sum(jnp.sum((a - a.mean(0)) ** 2) for a in jax.tree.leaves(state.params)) / n
        row = {"loss": peer_loss.mean(), "avg_model_acc": accuracy(mean, x_test, y_test),
               "local_acc_mean": local.mean(), "consensus_distance": consensus}
        row = {k: float(v) for k, v in row.items()}
        print(f"{t:>5} {row['loss']:>7.4f} {row['avg_model_acc']:>8.4f} "
              f"{row['local_acc_mean']:>9.4f} {row['consensus_distance']:>10.3e}", flush=True)
    if args.json:
        print(json.dumps({"round": t, **row}))


if __name__ == "__main__":
    main()
