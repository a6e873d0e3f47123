"""The final record of ``gossip launch``: the peers' saved parameters evaluated together."""

import json

import numpy as np

from gossip.config import Config
from gossip.experiment import build_experiment
from gossip.launch.results import summarise_run
from gossip.pytree import save_npz


def test_final_record_has_the_distance_to_the_least_squares_optimum(tmp_path, capsys):
    cfg = Config(peers=4, dataset="least_squares", model="linear", batch_size=0,
                 dataset_options={"peers": 4, "rows_per_peer": 6, "dim": 3})
    exp = build_experiment(cfg)
    optimum = exp.dataset.optimum.astype(np.float32)
    (tmp_path / "params").mkdir()
    for peer in range(4):  # peers 0-2 at x*, peer 3 at 1.2 x*
        w = optimum * (1.2 if peer == 3 else 1.0)
        save_npz(tmp_path / "params" / f"peer-{peer:04d}.npz", {"w": w})
        (tmp_path / f"peer-{peer:04d}.jsonl").write_text(
            json.dumps({"round": 5, "step": 5, "loss": 0.5}) + "\n")
    record = summarise_run(exp, tmp_path, wall_time=1.0)
    np.testing.assert_allclose(record["opt_distance"], 0.05, rtol=1e-5)  # x̄ = 1.05 x*
    np.testing.assert_allclose(record["opt_distance_max"], 0.2, rtol=1e-5)
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == record
    assert "rel. distance to optimum, farthest peer  2.000e-01" in capsys.readouterr().out
