"""``gossip bench compression`` / ``heterogeneity`` on tiny grids: outputs and reports."""

import json

from gossip.bench.algorithms import consensus_check, rerender, run_algorithm_bench

SMALL_MLP = {"model_options": {"hidden": [16]}}
TINY_COMPRESSION = {"grids": [{"task": "digits-mlp", "keys": SMALL_MLP, "peers": 4,
                               "topologies": ["ring"], "seeds": [0],
                               "only": ["full (dpsgd)", "choco top_k 1%",
                                        "naive top_k 1% no EF"]}],
                    "rounds": 4, "eval_every": 2,
                    "consensus": {"n": 5, "dim": 50, "rounds": 200, "every": 100}}
TINY_HETEROGENEITY = {"task": "digits-mlp", "keys": SMALL_MLP, "peers": 4,
                      "alphas": [10.0, 0.1], "seeds": [0], "rounds": 4, "eval_every": 2,
                      "only": ["dpsgd + momentum", "gradient_tracking"]}


def test_compression_bench_writes_results_report_and_plot(tmp_path):
    out = tmp_path / "c"
    results = run_algorithm_bench("compression", True, out, "test", lambda line: None,
                                  preset=TINY_COMPRESSION)
    assert json.loads((out / "results.json").read_text())["suite"] == "compression"
    report = (out / "report.md").read_text()
    assert "| choco top_k 1% |" in report and "| naive top_k 1% no EF |" in report
    assert "consensus" in report
    for png in ("accuracy_vs_bytes.png", "consensus_decay.png"):
        assert (out / png).stat().st_size > 1000
    full = next(r for r in results["runs"] if r["variant"] == "full (dpsgd)")
    top1 = next(r for r in results["runs"] if r["variant"] == "choco top_k 1%")
    assert top1["bytes_sent"][-1] < full["bytes_sent"][-1] / 10


def test_heterogeneity_bench_reports_the_drop_and_the_recovery(tmp_path):
    out = tmp_path / "h"
    run_algorithm_bench("heterogeneity", True, out, "test", lambda line: None,
                        preset=TINY_HETEROGENEITY)
    (out / "report.md").unlink()
    rerender(out)  # --report-only: the report comes back from results.json alone
    report = (out / "report.md").read_text()
    for method in ("dpsgd + momentum", "gradient_tracking"):
        assert method in report
    assert "drop α 10 → 0.1" in report
    assert "per seed:" in report
    assert (out / "accuracy_vs_alpha.png").stat().st_size > 1000


def test_the_choco_consensus_check_decays():
    errors = consensus_check(5, 50, 300, "top_k", 0.1, 0.1, every=100)
    assert errors[-1] < 0.1 * errors[0]


def test_report_only_without_results_is_one_line(tmp_path, capsys):
    from gossip.cli import main

    assert main(["bench", "compression", "--report-only", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--report-only needs the results of an earlier run" in err[0]
