"""Building a run from its config: shards, initial parameters, weights, metric names."""

import dataclasses
import json

import jax
import numpy as np

from gossip.cli import main
from gossip.config import Config
from gossip.data import peer_shard
from gossip.experiment import (
    build_experiment,
    init_peer_params,
    init_stacked_params,
    stack_shards,
)
from gossip.training import run_keys

SMALL = Config(peers=5, partition="dirichlet", alpha=0.3, model_options={"hidden": [8]})


def test_shards_match_what_a_real_peer_would_load():
    exp = build_experiment(SMALL)
    data = stack_shards(exp.dataset, exp.shards)
    for peer in range(SMALL.peers):
        x, y = peer_shard(exp.dataset, SMALL.peers, peer, scheme="dirichlet", seed=0, alpha=0.3)
        size = int(data.size[peer])
        assert size == len(y)
        np.testing.assert_array_equal(data.x[peer, :size], x)
        np.testing.assert_array_equal(data.y[peer, :size], y)


def test_initial_parameters_shared_or_per_peer():
    init_key, _ = run_keys(0)
    for same in (True, False):
        exp = build_experiment(dataclasses.replace(SMALL, same_init=same))
        stacked = init_stacked_params(exp, init_key)
        sample = exp.dataset.x_train[:1]
        for peer in (0, 3):
            own = init_peer_params(exp.model, sample, init_key, peer, same)
            for a, b in zip(jax.tree.leaves(own), jax.tree.leaves(stacked), strict=True):
                np.testing.assert_allclose(a, b[peer], rtol=1e-6)
        kernel = stacked["out"]["kernel"]
        assert np.allclose(kernel[0], kernel[3]) == same


def test_push_sum_defaults_to_column_stochastic_weights():
    exp = build_experiment(Config(peers=6, rule="push_sum", topology="epidemic"))
    assert exp.topology.weights == "push"
    w = exp.topology.matrix(0)
    np.testing.assert_allclose(w.sum(axis=0), np.ones(6), rtol=1e-6)
    assert build_experiment(Config(peers=6)).topology.weights == "uniform"


def test_regression_runs_report_rmse(tmp_path):
    out = tmp_path / "run"
    argv = ["sim", "--dataset", "teacher_linear", "--peers", "4", "--rounds", "20",
            "--eval-every", "10", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"avg_model_rmse", "local_rmse_mean", "local_rmse_min", "local_rmse_max"} <= set(record)
    assert "avg_model_acc" not in record
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert record["avg_model_rmse"] < first["avg_model_rmse"]
