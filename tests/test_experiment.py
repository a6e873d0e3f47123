"""Building a run from its config: shards, initial parameters, weights, metric names."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from gossip.cli import main
from gossip.config import Config
from gossip.data import peer_shard
from gossip.errors import ConfigError
from gossip.experiment import (
    build_experiment,
    init_peer_params,
    init_stacked_params,
    model_optimum,
    stack_shards,
)
from gossip.launch.peer_task import build_peer_task
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


LEAST_SQUARES = Config(peers=4, dataset="least_squares", model="linear", batch_size=0,
                       dataset_options={"peers": 4, "rows_per_peer": 6, "dim": 3})


def test_least_squares_binds_each_peer_to_its_own_rows():
    exp = build_experiment(LEAST_SQUARES)  # partition "default": the dataset's own split
    data = stack_shards(exp.dataset, exp.shards)
    assert data.x.shape == (4, 6, 3) and list(data.size) == [6] * 4
    for peer in range(4):
        rows = slice(6 * peer, 6 * (peer + 1))
        np.testing.assert_array_equal(data.x[peer], exp.dataset.x_train[rows])
        task = build_peer_task(LEAST_SQUARES, peer)  # what a real peer trains on
        np.testing.assert_array_equal(task.x, exp.dataset.x_train[rows])
        np.testing.assert_array_equal(task.y, exp.dataset.y_train[rows])
        assert task.batch_size == 0
    natural = build_experiment(dataclasses.replace(LEAST_SQUARES, partition="natural"))
    for a, b in zip(natural.shards, exp.shards, strict=True):
        np.testing.assert_array_equal(a, b)
    assert model_optimum(exp) is exp.dataset.optimum
    # An MLP's parameters are not the problem's vector: no optimum to compare with.
    mlp = build_experiment(dataclasses.replace(LEAST_SQUARES, model="mlp"))
    assert model_optimum(mlp) is None and model_optimum(build_experiment(SMALL)) is None


@pytest.mark.parametrize("change, message", [
    ({"partition": "iid"}, "dataset 'least_squares' gives each peer its own rows; use "
                           "partition 'natural'"),
    ({"peers": 8}, "dataset 'least_squares' was made for 4 peers (its option 'peers') but the "
                   "run has 8; set dataset option peers = 8"),
    ({"partition": "natural", "dataset": "teacher_linear", "dataset_options": {}},
     "partition 'natural' needs a dataset with its own split"),
])
def test_least_squares_refuses_other_splits_and_peer_counts(change, message):
    with pytest.raises(ConfigError) as info:
        build_experiment(dataclasses.replace(LEAST_SQUARES, **change))
    assert message in str(info.value) and "\n" not in str(info.value)
