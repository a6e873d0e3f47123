"""``gossip bench robustness``: its grid, preset checks, and the report and plots it makes
from a results file (no simulation here: the seeded claim runs in tests/test_robust.py)."""

import json

import pytest

from gossip.bench.robustness import (
    FULL,
    QUICK,
    findings,
    grid,
    plot_robustness,
    robustness_report,
)
from gossip.cli import main


def test_the_full_grid_is_the_issues_and_runs_k0_once_per_defence():
    runs = grid(FULL)
    assert len(runs) == 2 * 2 * 2 * 3 * (5 + 2 * 6 * 5)
    assert all(r["attack"] == "none" for r in runs if r["k"] == 0)
    assert len(grid(QUICK)) == 2 + 3 * 2


@pytest.mark.parametrize("text, words", [
    ("round = 3", ["'round'", "rounds"]),
    ('attacks = ["lie"]', ["'lie'", "alie"]),
    ("byzantine = [1, 2]", ["byzantine 0"]),
])
def test_a_bad_preset_is_one_line_and_status_2(tmp_path, capsys, text, words):
    path = tmp_path / "p.toml"
    path.write_text(text + "\n")
    status = main(["bench", "robustness", "--config", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("gossip: error: ") and err.count("\n") == 1, err
    assert all(w in err for w in words), err
    assert not (tmp_path / "o").exists()


def fake_results(plain: float, clip: float) -> dict:
    preset = {**QUICK, "attacks": ["sign_flip"]}
    runs = grid(preset)
    for r in runs:
        acc = 0.97 if r["k"] == 0 else (plain if r["defence"] == "none" else clip)
        r.update(round=[150], honest_acc=[acc], honest_acc_mean=[acc])
    return json.loads(json.dumps({"suite": "robustness", "preset": preset, "runs": runs,
                                  "wall_time_s": 1.0, "command": "gossip bench robustness"}))


def test_the_report_states_whether_the_attack_bites_and_clipping_holds(tmp_path):
    good = findings(fake_results(plain=0.10, clip=0.96))
    assert len(good) == 1 and "bites" in good[0] and "NOT" not in good[0]
    bad = findings(fake_results(plain=0.93, clip=0.90))
    assert "does NOT bite" in bad[0] and "NOT within" in bad[0]
    results = fake_results(plain=float("nan"), clip=0.96)
    report = robustness_report(results)
    assert "| sign_flip | none | nan (+97.0) |" in report
    assert "| sign_flip | clip | 0.960 (+1.0) |" in report
    paths = plot_robustness(results, tmp_path)
    assert [p.name for p in paths] == ["honest_acc_digits-mlp_exponential_iid.png"]
    assert paths[0].stat().st_size > 1000
