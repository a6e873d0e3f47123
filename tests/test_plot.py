"""``gossip plot`` and ``OUT/curves.png``: the figures hold the expected panels and labels.

The runs here are metrics files written by the test (the schema of docs/metrics.md and
docs/peers.md), so no simulation runs; ``tests/test_outputs.py`` checks that a real
``gossip sim`` draws its curves.
"""

import json
import re
import struct

import numpy as np
import pytest
import tomli_w

from gossip.cli import main
from gossip.plots import curves as curves_module
from gossip.plots import load_run, log_limits, plot_runs, run_labels

TITLES = ["Test accuracy", "Loss", "Consensus distance", "Bytes sent (payload, all peers)",
          "Test accuracy vs wall time"]


def sim_run(path, topology, consensus_floor=1e-3, optimum=False):
    """A simulation's files: config.toml and metrics.jsonl with 4 evaluations."""
    path.mkdir(parents=True)
    (path / "config.toml").write_text(tomli_w.dumps({"peers": 8, "topology": topology,
                                                     "out": str(path), "rounds": 40}))
    lines = []
    for k, t in enumerate((10, 20, 30, 40)):
        acc = 0.5 + 0.1 * k
        rec = {"round": t, "step": t, "time": 1.0 + 0.1 * t, "loss": 2.0 - 0.3 * k,
               "avg_model_acc": acc, "avg_model_loss": 1.9 - 0.3 * k,
               "local_acc_mean": acc - 0.02, "local_acc_min": acc - 0.05,
               "local_acc_max": acc, "consensus_distance": consensus_floor / (k + 1),
               "bytes_sent": 1000 * t, "messages_sent": 16 * t}
        if optimum:
            rec.update(opt_distance=0.1 / (k + 1), opt_distance_max=0.2 / (k + 1))
        lines.append(json.dumps(rec))
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return path


def peers_run(path, n=3, rounds=6, finished=3):
    """A launched run's files: peer-XXXX.jsonl per peer and the final metrics.jsonl."""
    path.mkdir(parents=True)
    (path / "config.toml").write_text(tomli_w.dumps({"peers": n, "topology": "ring",
                                                     "rounds": rounds}))
    for i in range(n):
        recs = []
        for t in range(1, rounds + 1):
            r = {"peer": i, "round": t, "step": t, "time": 0.5 * t, "loss": 2.0 / t,
                 "bytes_sent": 100 * t}
            if t % 3 == 0:
                r["local_acc"] = 0.1 * t + 0.01 * i
            recs.append(json.dumps(r))
        (path / f"peer-{i:04d}.jsonl").write_text("\n".join(recs) + "\n{\"round\": ")
    final = {"round": rounds, "time": 4.0, "loss": 0.4, "avg_model_acc": 0.62,
             "avg_model_loss": 1.0, "local_acc_mean": 0.61, "local_acc_min": 0.6,
             "local_acc_max": 0.62, "consensus_distance": 2e-14, "bytes_sent": 100 * rounds * n,
             "messages_sent": 2 * rounds * n, "peers": n, "peers_finished": finished}
    (path / "metrics.jsonl").write_text(json.dumps(final) + "\n")
    return path


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def svg_texts(path):
    return re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text())


def test_two_runs_on_one_figure_with_every_panel_and_labels_from_their_configs(tmp_path,
                                                                              capsys):
    a, b = sim_run(tmp_path / "a", "ring"), sim_run(tmp_path / "b", "exponential")
    svg = tmp_path / "fig.svg"
    assert main(["plot", str(a), str(b), "--out", str(svg)]) == 0
    assert "Consensus distance" in capsys.readouterr().out
    texts = svg_texts(svg)
    for title in TITLES:
        assert title in texts, texts
    assert "Distance to the optimum" not in texts  # neither run knows an optimum
    assert "topology=ring" in texts and "topology=exponential" in texts
    for style in ("local models, mean", "local models, min–max"):
        assert style in texts
    png = tmp_path / "fig.png"
    assert main(["plot", str(a), str(b), "--out", str(png)]) == 0
    width, height = png_size(png)
    assert width >= 1200 and height >= 700  # full size: 15 x 8.5 in at 100 dpi
    pdf = tmp_path / "fig.pdf"
    assert main(["plot", str(a), "--out", str(pdf)]) == 0
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_a_single_run_defaults_to_its_own_curves_png_and_labels_by_directory(tmp_path):
    a = sim_run(tmp_path / "first-run", "ring", optimum=True)
    assert main(["plot", str(a)]) == 0
    assert png_size(a / "curves.png")[0] >= 1200
    run = load_run(a)
    assert run_labels([run]) == ["first-run"]
    titles = plot_runs([run], tmp_path / "x.svg")
    assert titles == [*TITLES, "Distance to the optimum"]
    assert "Distance to the optimum" in svg_texts(tmp_path / "x.svg")


def test_real_peers_become_per_round_curves_and_the_final_average_model(tmp_path):
    run = load_run(peers_run(tmp_path / "real", n=3, rounds=6))
    assert run.kind == "peers" and run.peers == (3, 3)
    rounds, loss = run.curve("loss")
    assert rounds.tolist() == [1, 2, 3, 4, 5, 6] and np.allclose(loss, 2.0 / rounds)
    rounds, mean = run.curve("local_acc_mean")
    assert rounds.tolist() == [3, 6] and np.allclose(mean, [0.31, 0.61])
    assert run.curve("local_acc_min")[1].tolist() == pytest.approx([0.3, 0.6])
    assert run.curve("bytes_sent")[1].tolist() == [300 * t for t in range(1, 7)]
    assert run.curve("time")[1].tolist() == [0.5 * t for t in range(1, 7)]
    assert run.curve("avg_model_acc")[0].tolist() == [6]  # the launcher's one evaluation
    sim = load_run(sim_run(tmp_path / "sim", "ring"))
    labels = run_labels([sim, run])
    assert labels == ["peers=8, rounds=40, sim", "peers=3, rounds=6, real peers"]
    svg = tmp_path / "mixed.svg"
    for r, label in zip((sim, run), labels, strict=True):
        r.label = label
    plot_runs([sim, run], svg)
    texts = " ".join(svg_texts(svg))
    # the real peers' consensus distance (2e-14) is round-off next to the sim's 1e-3
    assert "round-off" in texts and "peers=3, rounds=6, real peers" in texts


def test_log_limits_keep_the_decades_that_matter():
    assert log_limits([[1e-3, 5e-4], [2e-3, 1e-12]]) == (1e-4, 1e-2)  # 1e-12: round-off
    assert log_limits([[1e-3, 1e-6]]) == (1e-6, 1e-2)
    assert log_limits([[0.0, -1.0]]) is None


@pytest.mark.parametrize("argv, message", [
    (["plot", "A", "B"], "several runs needs --out"),
    (["plot", "A", "--out", "fig.gif"], "unknown figure type '.gif'"),
    (["plot", "missing", "--out", "f.png"], "run missing: no such directory"),
    (["plot", "empty", "--out", "f.png"], "no metrics.jsonl or peer-XXXX.jsonl"),
    (["plot", "A", "--label", "x", "--label", "y"], "--label given 2 times for 1 runs"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    sim_run(tmp_path / "A", "ring")
    sim_run(tmp_path / "B", "ring")
    (tmp_path / "empty").mkdir()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gossip: error: ") and message in err


def test_without_matplotlib_a_run_skips_its_curves_with_one_line(tmp_path, capsys,
                                                                 monkeypatch):
    run = sim_run(tmp_path / "run", "ring")
    monkeypatch.setattr(curves_module, "have_matplotlib", lambda: False)
    assert curves_module.write_run_curves(run) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matplotlib is not installed" in err[0] and "curves.png" in err[0]
    assert not (run / "curves.png").exists()
