"""gossip bench stragglers on a tiny grid: results, report and plot from the file."""

import json

import pytest

import gossip.bench.stragglers as bench
from gossip.bench.stragglers import findings, overview, run_stragglers_bench, summarise

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
    assert "## Overview" in text and "## Findings" in text
    assert "one peer 4x slower" in text and "no straggler" in text
    assert len(findings(summarise(stored))) == 6
    assert (tmp_path / "accuracy_vs_time.png").stat().st_size > 10_000


def test_the_grid_resumes_from_runs_jsonl(tmp_path, monkeypatch):
    # Cut off during its 3rd run, then run again: only the 2 missing runs are simulated, and
    # the results equal an uninterrupted grid's.
    preset = {**TINY, "scenarios": ["one 4x"], "rounds": 4}
    real, calls = bench.simulate, []

    def simulate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "simulate", simulate)
    with pytest.raises(KeyboardInterrupt):
        run_stragglers_bench(True, tmp_path / "a", "c", print, preset=preset)
    assert len((tmp_path / "a" / "runs.jsonl").read_text().splitlines()) == 2
    resumed = run_stragglers_bench(True, tmp_path / "a", "c", print, preset=preset)
    assert len(calls) == 3 + 2
    whole = run_stragglers_bench(True, tmp_path / "b", "c", print, preset=preset)
    run_stragglers_bench(True, tmp_path / "a", "c", print, preset=preset)
    assert len(calls) == 3 + 2 + 4  # the whole grid once more for "b", nothing for "a"
    untimed = lambda runs: [{**{k: v for k, v in r.items() if k != "time_s"},  # noqa: E731
                             "records": [{k: v for k, v in x.items() if k != "time"}
                                         for x in r["records"]]} for r in runs]
    assert untimed(resumed["runs"]) == untimed(whole["runs"])


def _row(n, mode, time_to_target, final_acc, reached="2/2"):
    return {"n": n, "topology": "ring", "partition": "iid", "scenario": "one 4x",
            "mode": mode, "time_to_target_s": time_to_target,
            "bytes_to_target": None if time_to_target is None else 100 * time_to_target,
            "final_acc": final_acc, "reached": reached}


def test_overview_spans_each_mode_against_sync_over_the_settings():
    rows = [_row(16, "sync", 2.0, 0.9), _row(16, "async", 0.5, 0.85),
            _row(64, "sync", 3.0, 0.9), _row(64, "async", 1.5, 0.95),
            _row(16, "sync+deadline", None, 0.1, "0/2"), _row(64, "sync+deadline", 3.0, 0.9)]
    got = {o["mode"]: o for o in overview(rows)}
    assert got["async"] == {"scenario": "one 4x", "mode": "async", "partition": "iid",
                            "settings": 2, "speedup": "2.00 to 4.00", "bytes": "0.25 to 0.50",
                            "accuracy": "-0.050 to +0.050", "missed": 0}
    # a setting where the mode never reached the target counts in "missed", not the speed-up
    assert (got["sync+deadline"]["speedup"], got["sync+deadline"]["missed"]) == ("1.00", 1)
    assert got["sync+deadline"]["accuracy"] == "-0.800 to +0.000"
