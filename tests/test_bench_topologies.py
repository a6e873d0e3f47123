"""``gossip bench topologies``: a tiny --quick run end to end, its files, schema and errors."""

import json
import struct

import pytest

from gossip.cli import main

TINY = """
topologies = ["ring", "complete"]
peers = [8]
seeds = [0]
partitions = ["iid"]
consensus_rounds = 40
[[tasks]]
name = "mlp_digits"
rounds = 10
eval_every = 5
"""

RUN_KEYS = {"task", "n", "partition", "topology", "topology_options", "weights", "seed",
            "wall_time_s", "round", "loss", "avg_model_acc", "local_acc_mean", "local_acc_min",
            "local_acc_max", "consensus_distance", "bytes_per_peer", "bytes_busiest_peer",
            "time_s"}
CONSENSUS_KEYS = {"topology", "n", "weights", "time_varying", "doubly_stochastic", "slem",
                  "slem_squared", "mean_square_theory", "period_theory",
                  "measured_contraction", "measured_rate", "mean_drift",
                  "rounds_to_consensus", "distances"}
SUMMARY_KEYS = {"task", "n", "partition", "topology", "weights", "seeds", "reached", "target",
                "rounds_to_target", "bytes_per_peer_to_target",
                "bytes_busiest_peer_to_target", "time_to_target", "avg_model_acc",
                "local_acc_mean", "consensus_distance", "bytes_per_peer"}


def test_quick_tiny_config_writes_results_report_and_plots(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "bench"
    assert main(["bench", "topologies", "--quick", "--config", str(config), "--out", str(out),
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["settings"][0]["target"] > 0

    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == 1
    assert {"command", "suite", "machine", "step_time_s", "message_bytes", "runs",
            "consensus", "targets", "summary", "findings", "wall_time_s"} <= set(results)
    assert results["suite"]["topologies"] == ["ring", "complete"]
    assert results["step_time_s"]["mlp_digits"] > 0
    assert len(results["runs"]) == 2 and len(results["consensus"]) == 2
    for run in results["runs"]:
        assert set(run) == RUN_KEYS
        assert run["round"] == [5, 10]
        assert set(run["time_s"]) == {"datacentre", "wan"}
        for key in ("avg_model_acc", "bytes_per_peer", "consensus_distance"):
            assert len(run[key]) == 2
        assert 0 <= run["local_acc_mean"][-1] <= 1
        assert run["time_s"]["wan"][-1] > run["time_s"]["datacentre"][-1] > 0
    ring, complete = results["runs"]
    # ring: 2 messages a round per peer; complete: 7
    msg = results["message_bytes"]["mlp_digits"]
    assert ring["bytes_per_peer"] == [5 * 2 * msg, 10 * 2 * msg]
    assert complete["bytes_busiest_peer"][-1] == 10 * 7 * msg
    assert complete["consensus_distance"][-1] < 1e-8 < ring["consensus_distance"][-1]
    for c in results["consensus"]:
        assert set(c) == CONSENSUS_KEYS and len(c["distances"]) == 41
    (target,) = results["targets"]
    assert target["reference_topology"] == "complete"
    assert target["target"] == pytest.approx(0.8 * complete["local_acc_mean"][-1])
    for row in results["summary"]:
        assert set(row) == SUMMARY_KEYS
    assert results["findings"] and all(isinstance(f, str) for f in results["findings"])

    report = (out / "report.md").read_text()
    assert "# Topology benchmark" in report and "theory vs measurement" in report
    for name in ("accuracy_vs_rounds", "accuracy_vs_bytes", "accuracy_vs_time_datacentre",
                 "accuracy_vs_time_wan", "consensus_distance_training",
                 "consensus_distance_pure_gossip"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        width, _ = struct.unpack(">II", png.read_bytes()[16:24])
        assert width >= 1200, (name, width)  # full size, not 440 px
        assert f"({name}.png)" in report

    # --report-only rebuilds everything from results.json, with new target settings
    config.write_text("target_fraction = 0.5\n" + TINY)
    (out / "report.md").unlink()
    assert main(["bench", "topologies", "--quick", "--config", str(config), "--out", str(out),
                 "--report-only"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["runs"] == results["runs"] and again["command"] == results["command"]
    assert again["targets"][0]["target"] == pytest.approx(0.5 * complete["local_acc_mean"][-1])
    assert (out / "report.md").exists()


@pytest.mark.parametrize("text, message", [
    ('topologies = ["ring", "hypercube"]', "unknown topology 'hypercube'"),
    ('topologies = ["torus"]\npeers = [10]', "square number"),
    ("peers = [1]", "n (peers) must be >= 2"),
    ("colour = 1", "unknown suite key 'colour'"),
    ('[[tasks]]\nname = "mlp_digits"\nlearning_rate = 1', "unknown key 'learning_rate'"),
    ('partitions = ["dirichlet", "zipf"]', "unknown partition 'zipf'"),
    ('tasks = ["resnet"]', "unknown task 'resnet'"),
    ("peers = 16", "must be a non-empty list"),
    ("target_fraction = 1.5", "target_fraction must be in (0, 1]"),
    ('[[tasks]]\nname = "x"\nmodel = "nope"', "unknown model 'nope'"),
])
def test_bad_config_is_one_line_error(tmp_path, capsys, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    out = tmp_path / "bench"
    assert main(["bench", "topologies", "--quick", "--config", str(config),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gossip: error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_runs_are_deterministic():
    from gossip.bench.runner import run_suite
    from gossip.bench.suite import QUICK, suite_from_dict

    suite = suite_from_dict({"topologies": ["random_matching"], "peers": [4],
                             "partitions": ["dirichlet"], "consensus_rounds": 10,
                             "tasks": [{"name": "mlp_digits", "rounds": 4, "eval_every": 2}]},
                            QUICK)
    first, second = (run_suite(suite, log=lambda line: None) for _ in range(2))
    for a, b in zip(first["runs"] + first["consensus"], second["runs"] + second["consensus"],
                    strict=True):
        for key in ("wall_time_s", "time_s"):  # wall clock, and the measured step time in it
            a.pop(key, None)
            b.pop(key, None)
        assert a == b


def test_bench_needs_a_suite(capsys, tmp_path):
    assert main(["bench"]) == 2
    assert "valid choices: topologies" in capsys.readouterr().err
    assert main(["bench", "topologies", "--report-only", "--out", str(tmp_path)]) == 2
    assert "cannot read results" in capsys.readouterr().err
