"""``gossip bench robustness``: its grid (f = max(K, 1)), preset checks, the resumable
``runs.jsonl`` (with a stand-in for the simulation), the report and plots it makes from a
results file, and one seeded check that runs sharing compiled rounds equal separate runs
(the seeded claims about attacks and defences run in tests/test_robust.py)."""

import json

import pytest

import gossip.bench.robustness as bench
from gossip.bench.robustness import (
    FULL,
    QUICK,
    Pieces,
    findings,
    grid,
    plot_robustness,
    robustness_report,
    run_one,
)
from gossip.cli import main


def test_the_full_grid_is_the_issues_with_f_equal_to_k_and_k0_per_defence_and_f():
    runs = grid(FULL)
    # Per task/topology/partition/seed: K = 0 is plain D-PSGD once and each of the four
    # defences with f = 1 and f = 2 (the f of K = 1 and K = 2); then 6 attacks x 5.
    assert len(runs) == 2 * 2 * 2 * 3 * (1 + 4 * 2 + 2 * 6 * 5) == 1656
    assert all(r["attack"] == "none" for r in runs if r["k"] == 0)
    assert all(r["f"] is None for r in runs if r["defence"] == "none")
    assert {r["f"] for r in runs if r["k"] == 2 and r["defence"] != "none"} == {2}
    assert {r["f"] for r in runs if r["k"] == 1 and r["defence"] != "none"} == {1}
    assert [r["seed"] for r in runs[:2]] == [0, 0] and runs[-1]["seed"] == 2  # seeds outermost
    assert len(grid({**FULL, "robust_f": 1})) == 2 * 2 * 2 * 3 * (5 + 2 * 6 * 5)
    assert len(grid(QUICK)) == 2 + 3 * 2


@pytest.mark.parametrize("text, words", [
    ("round = 3", ["'round'", "rounds"]),
    ('attacks = ["lie"]', ["'lie'", "alie"]),
    ("byzantine = [1, 2]", ["byzantine 0"]),
    ('robust_f = "K+1"', ["robust_f", "'K+1'"]),
])
def test_a_bad_preset_is_one_line_and_status_2(tmp_path, capsys, text, words):
    path = tmp_path / "p.toml"
    path.write_text(text + "\n")
    status = main(["bench", "robustness", "--config", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("gossip: error: ") and err.count("\n") == 1, err
    assert all(w in err for w in words), err
    assert not (tmp_path / "o").exists()


def test_report_only_without_runs_is_one_line_and_status_2(tmp_path, capsys):
    status = main(["bench", "robustness", "--quick", "--report-only", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("gossip: error: ") and "runs.jsonl" in err, err


def test_the_grid_resumes_from_runs_jsonl_and_reports_a_partial_grid(tmp_path, monkeypatch,
                                                                    capsys):
    calls = []

    def fake_run(run, preset, pieces=None):
        if len(calls) == 3 and not any(c == "stop" for c in calls):
            calls.append("stop")
            raise KeyboardInterrupt  # the session ends during the 4th run
        calls.append((run["k"], run["attack"], run["defence"]))
        acc = 0.97 if run["k"] == 0 else (0.1 if run["defence"] == "none" else 0.96)
        return [{"round": 300, "avg_model_acc": acc, "local_acc_mean": acc}]

    monkeypatch.setattr(bench, "run_one", fake_run)
    out = tmp_path / "o"
    args = ["bench", "robustness", "--quick", "--out", str(out)]
    assert main(args) == 130  # interrupted: what finished is kept
    assert len((out / "runs.jsonl").read_text().splitlines()) == 3
    assert main([*args, "--report-only"]) == 0
    report = (out / "report.md").read_text()
    assert "Partial grid: 3 of its 8 runs are done" in report, report
    assert "3 of the grid's 8 runs" in capsys.readouterr().out
    with (out / "runs.jsonl").open("a") as f:
        f.write('{"task": "digits-mlp", "topo')  # a run cut off while it was written
    assert main(args) == 0
    assert len(calls) == 3 + 1 + 5  # 3 done, the stop, then only the 5 missing runs
    results = json.loads((out / "results.json").read_text())
    assert len(results["runs"]) == results["grid_runs"] == 8
    assert "Partial" not in (out / "report.md").read_text()
    assert main(args) == 0 and len(calls) == 9  # nothing left to run
    # Other settings are another grid: none of its runs are done.
    (tmp_path / "p.toml").write_text('tasks = ["digits-mlp"]\ntopologies = ["ring"]\n'
                                     'partitions = ["iid"]\nseeds = [0]\nbyzantine = [0]\n'
                                     'defences = ["none"]\nrounds = 5\n')
    assert main(["bench", "robustness", "--config", str(tmp_path / "p.toml"), "--out",
                 str(out)]) == 0
    assert len(calls) == 10


def fake_results(plain: float, clip: float) -> dict:
    preset = {**QUICK, "attacks": ["sign_flip"]}
    runs = grid(preset)
    for r in runs:
        acc = 0.97 if r["k"] == 0 else (plain if r["defence"] == "none" else clip)
        r.update(round=[150], honest_acc=[acc], honest_acc_mean=[acc], time_s=1.0)
    return json.loads(json.dumps({"suite": "robustness", "preset": preset, "runs": runs,
                                  "grid_runs": len(runs), "wall_time_s": 4.0,
                                  "command": "gossip bench robustness"}))


def test_the_report_states_whether_the_attack_bites_and_clipping_holds(tmp_path):
    good = findings(fake_results(plain=0.10, clip=0.96))
    assert len(good) == 1 and "bites" in good[0] and "NOT" not in good[0]
    bad = findings(fake_results(plain=0.93, clip=0.90))
    assert "does NOT bite" in bad[0] and "NOT within" in bad[0]
    results = fake_results(plain=float("nan"), clip=0.96)
    report = robustness_report(results)
    assert "4 of the grid's 4 runs" in report and "f = max(K, 1)" in report
    assert "| (none: K = 0) | none 0.970, clip 0.970 (f = 1) |" in report
    assert "| sign_flip | none | nan (+97.0) |" in report
    assert "| sign_flip | clip | 0.960 (+1.0) |" in report
    paths = plot_robustness(results, tmp_path)
    assert [p.name for p in paths] == ["honest_acc_digits-mlp_exponential_iid.png"]
    assert paths[0].stat().st_size > 1000


def test_runs_that_share_compiled_rounds_equal_separate_runs():
    # Seeded: the second run reuses the first one's compiled round with another seed,
    # other attackers and another (padded) data split; it must equal a run built alone.
    preset = {**QUICK, "peers": 8, "rounds": 3, "eval_every": 3}
    first = {"task": "digits-mlp", "topology": "exponential", "partition": "iid", "seed": 0,
             "k": 2, "attack": "alie", "defence": "clip", "f": 2}
    second = {**first, "partition": "dirichlet0.5", "seed": 1}
    pieces = Pieces()
    run_one(first, preset, pieces)
    shared = run_one(second, preset, pieces)
    alone = run_one(second, preset)
    drop = lambda records: [{k: v for k, v in r.items() if k != "time"} for r in records]  # noqa: E731
    assert drop(shared) == drop(alone)
    sims = [v[0][0] for k, v in pieces.reuse.items() if k[0] == "sim"]
    assert len(sims) == 1 and sims[0].round._cache_size() == 1  # compiled once
    fresh = bench.fresh_pieces(pieces)
    assert not pieces.reuse and not pieces.kept and not fresh.reuse
    assert drop(run_one(second, preset, fresh)) == drop(alone)


def test_the_grid_keeps_one_tasks_compiled_programs_at_a_time(tmp_path, monkeypatch):
    # A process may hold only so many memory maps (vm.max_map_count), and every compiled
    # round keeps some: the full grid's two tasks together crashed LLVM. A new task starts
    # from fresh pieces; the runs of one task share them.
    seen = []

    def fake_run(run, preset, pieces=None):
        seen.append((run["task"], pieces))
        pieces.reuse[run["task"], len(seen)] = object()
        return [{"round": 5, "avg_model_acc": 0.5, "local_acc_mean": 0.5}]

    monkeypatch.setattr(bench, "run_one", fake_run)
    (tmp_path / "p.toml").write_text('tasks = ["digits-mlp", "mnist1d-cnn"]\n'
                                     'topologies = ["ring"]\npartitions = ["iid"]\n'
                                     'seeds = [0, 1]\nbyzantine = [0]\n'
                                     'defences = ["none", "clip"]\nrounds = 5\n')
    assert main(["bench", "robustness", "--config", str(tmp_path / "p.toml"), "--out",
                 str(tmp_path / "o")]) == 0
    tasks = [task for task, _ in seen]
    assert tasks == ["digits-mlp", "digits-mlp", "mnist1d-cnn", "mnist1d-cnn"] * 2
    blocks = [{id(p) for _, p in seen[i:i + 2]} for i in range(0, 8, 2)]
    assert all(len(b) == 1 for b in blocks) and len(set().union(*blocks)) == 4
    assert all(not p.reuse for _, p in seen[:6:2])  # what a block kept went with it
