"""`gossip sim` end to end: outputs, accuracy, and clear errors on bad input."""

import json
import subprocess
import sys
import tomllib

import pytest
from sim_utils import SMALL, assert_sim_refuses

from gossip.cli import main
from gossip.config import Config, resolve
from gossip.experiment import build_experiment
from gossip.simulate import simulate


def test_sim_writes_config_metrics_and_params(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["sim", *SMALL, "--out", str(out), "--save-params"]) == 0
    printed = capsys.readouterr().out
    assert "average-model test accuracy" in printed and "consensus distance" in printed
    cfg = resolve(tomllib.loads((out / "config.toml").read_text()), {})
    assert cfg.peers == 4 and cfg.model_options == {"hidden": [16]} and cfg.save_params
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in lines] == [2, 4]
    for key in ("round", "step", "time", "loss", "avg_model_acc", "local_acc_mean",
                "local_acc_min", "local_acc_max", "consensus_distance", "bytes_sent"):
        assert key in lines[-1]
    rec = lines[-1]
    assert rec["peers_finite"] == 4 and "mass" not in rec  # D-PSGD has no push-sum mass
    assert "diverged" not in printed
    assert rec["local_acc_min"] <= rec["local_acc_mean"] <= rec["local_acc_max"]
    # ring of 4: 2 messages per peer per round, payload = the MLP's float32 parameters
    n_params = 64 * 16 + 16 + 16 * 10 + 10
    assert rec["bytes_sent"] == 4 * 4 * 2 * n_params * 4
    assert sorted(p.name for p in (out / "params").iterdir()) == [
        f"peer-{i:04d}.npz" for i in range(4)]


def test_a_diverged_run_says_so_and_records_where(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["sim", *SMALL, "--byzantine", "1", "--attack", "huge", "--eval-every", "1",
                 "--out", str(out), "--no-plot"]) == 0
    printed = capsys.readouterr().out
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first = next(r["round"] for r in lines if r["peers_finite"] < 4)
    assert lines[-1]["peers_finite"] < 4
    assert (f"WARNING: the run diverged: {4 - lines[-1]['peers_finite']} of 4 peers end with "
            f"parameters that are not finite (first seen in the record of round {first};"
            ) in printed


def test_default_ring_of_16_on_iid_digits_reaches_95_percent():
    record, _ = simulate(build_experiment(Config()), progress=False)
    assert record["avg_model_acc"] >= 0.95, record


@pytest.mark.parametrize("argv, names", [
    (["--topology", "rign"], ["'rign'", "ring", "torus"]),
    (["--dataset", "cifar"], ["'cifar'", "digits", "mnist1d"]),
    (["--model", "resnet"], ["'resnet'", "mlp", "transformer"]),
    (["--optimizer", "lion"], ["'lion'", "adam", "sgd"]),
    (["--rule", "gosip"], ["'gosip'", "dpsgd", "push_sum"]),
    (["--set", "lerning_rate=0.1"], ["'lerning_rate'", "lr"]),
    (["--topology", "torus", "--peers", "10"], ["torus", "10"]),
    (["--peers", "5000"], ["5000", "1437"]),
    (["--alpha", "0"], ["alpha", "0"]),
    (["--alpha", "-1", "--partition", "dirichlet"], ["alpha", "-1"]),
    (["--dataset", "npz", "--set", "dataset_options={path='/nonexistent/d.npz'}"],
     ["/nonexistent/d.npz"]),
    (["--dataset", "idx", "--set", "dataset_options={path='/nonexistent'}"],
     ["/nonexistent"]),
    (["--config", "/nonexistent/c.toml"], ["/nonexistent/c.toml"]),
    (["--set", "model_options={hidden=[256"],
     ["--set model_options", "not a valid TOML value: Unclosed array"]),
    (["--peers", "1"], ["peers must be >= 2, got 1"]),
])
def test_bad_input_gets_one_clear_line_exit_2_and_no_output(tmp_path, capsys, argv, names):
    assert_sim_refuses(tmp_path / "run", capsys, argv, names)


def test_unknown_key_in_config_file(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("peers = 4\ntopologies = 'ring'\n")
    assert main(["sim", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert "unknown config key 'topologies'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_console_entry_point_exit_code(tmp_path):
    result = subprocess.run([sys.executable, "-m", "gossip", "sim", "--model", "nope",
                             "--out", str(tmp_path / "r")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("gossip: error: unknown model 'nope'")
    assert "Traceback" not in result.stderr


def test_least_squares_dpsgd_ring_of_8_approaches_the_optimum(tmp_path, capsys):
    """Full-batch D-PSGD on a ring of 8 drives the average model to x* (small heterogeneity:
    D-PSGD's fixed point is biased by lr x heterogeneity)."""
    out = tmp_path / "run"
    argv = ["sim", "--dataset", "least_squares", "--model", "linear", "--batch-size", "0",
            "--lr", "0.1", "--optimizer", "sgd", "--peers", "8", "--topology", "ring",
            "--rule", "dpsgd", "--rounds", "40", "--eval-every", "1", "--no-progress",
            "--out", str(out), "--set",
            "dataset_options={peers=8, rows_per_peer=20, dim=5, heterogeneity=0.1}"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "rel. distance to optimum, average model" in printed
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 40
    first, last = records[0], records[-1]
    assert last["opt_distance"] < 0.01 and last["opt_distance"] < first["opt_distance"] / 50
    assert last["opt_distance_max"] < 0.1
    for r in records:
        assert r["opt_distance"] <= r["opt_distance_max"]


def test_out_of_memory_is_one_line_naming_what_would_not_fit(tmp_path, capsys):
    # 1e10 samples of 20 float64 features: 1.46 TiB, refused by the allocator at once
    out = tmp_path / "run"
    assert main(["sim", "--peers", "4", "--dataset", "teacher_logistic", "--model", "logistic",
                 "--set", "dataset_options={num_samples=10000000000}", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("gossip: error: out of memory: Unable to allocate 1.46 TiB"), err
    assert not out.exists()


def test_an_xla_out_of_memory_is_one_line_too():
    from gossip.cli import out_of_memory

    class XlaRuntimeError(RuntimeError):
        pass

    text = ("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 80000000000 bytes.\n"
            "BufferAssignment OOM Debugging.\n...")
    assert out_of_memory(XlaRuntimeError(text)).startswith(
        "out of memory: Out of memory while trying to allocate 80000000000 bytes. (")
    assert out_of_memory(ValueError("a bug")) is None
