"""gossip bench stragglers on a tiny grid: results, report and plot from the file."""

import json

from gossip.bench.stragglers import findings, run_stragglers_bench, summarise

TINY = {"peers": [4], "topologies": ["ring"], "scenarios": ["none", "one 4x"],
        "partitions": ["iid"], "seeds": [0], "rounds": 12, "eval_every": 4}


def test_tiny_grid_writes_results_report_and_plot(tmp_path):
    lines = []
    results = run_stragglers_bench(True, tmp_path, "gossip bench stragglers --out X",
                                   lines.append, preset=TINY)
    assert len(results["runs"]) == 2 * 4 and len(lines) == 8
    stored = json.loads((tmp_path / "results.json").read_text())
    rows = {(r["scenario"], r["mode"]): r for r in summarise(stored)}
    # With a 4x straggler, sync's clock runs at the straggler's pace; async does the same
    # total work in less simulated time and its fast peers mix stale messages.
    assert rows[("one 4x", "async")]["final_time_s"] < rows[("one 4x", "sync")]["final_time_s"]
    assert rows[("one 4x", "async")]["staleness_max"] > 0
    assert rows[("none", "sync")]["staleness_max"] == 0
    text = (tmp_path / "report.md").read_text()
    assert "## Findings" in text and "one peer 4x slower" in text and "no straggler" in text
    assert len(findings(summarise(stored))) == 6
    assert (tmp_path / "accuracy_vs_time.png").stat().st_size > 10_000
