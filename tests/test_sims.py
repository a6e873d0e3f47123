"""The scripts in sims/: each runs end to end with tiny settings and prints sound numbers.

Every script runs in a subprocess from an empty working directory, which must stay empty:
a script writes only where ``--out`` says.
"""

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

SIMS = Path(__file__).resolve().parent.parent / "sims"


def run(script: str, *args: str, cwd: Path) -> tuple[list[str], list[str], dict]:
    """Runs ``sims/SCRIPT.py ARGS --json`` in ``cwd``: (table lines, stderr lines, final JSON)."""
    result = subprocess.run([sys.executable, str(SIMS / f"{script}.py"), *args, "--json"],
                            capture_output=True, text=True, timeout=300, cwd=cwd)
    assert result.returncode == 0, result.stderr
    *lines, last = result.stdout.strip().splitlines()
    return lines, result.stderr.splitlines(), json.loads(last)


def numbers(line: str) -> list[float]:
    """The numeric fields of a table row."""
    return [float(f) for f in line.split() if re.fullmatch(r"[-+0-9.e]+", f)]


def test_every_file_in_sims_is_a_documented_script_with_a_test():
    files = [p for p in SIMS.iterdir() if p.name != "__pycache__"]
    assert files
    tests = {name for name in globals() if name.startswith("test_")}
    for path in files:
        assert path.suffix == ".py" and path.name != "__init__.py", \
            f"sims/ holds runnable scripts only, not {path.name}"
        assert f"test_{path.stem}" in tests, f"sims/{path.name} has no test_{path.stem} here"
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and f"python sims/{path.name}" in doc, f"sims/{path.name}: say how to run it"
        assert len(path.read_text().splitlines()) <= 90, f"sims/{path.name} is not short"


def test_ring_vs_exponential(tmp_path):
    lines, _, results = run("ring_vs_exponential", "--peers", "8", "--rounds", "10",
                            "--eval-every", "5", "--target", "0.3", cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no --out: nothing written
    assert lines[0].split()[:2] == ["topology", "avg"] and len(lines) == 3
    assert set(results) == {"ring", "exponential"}
    for row in lines[1:]:
        name, res = row.split()[0], results[row.split()[0]]
        avg, local, consensus = numbers(row)[:3]
        assert abs(avg - res["avg_model_acc"]) < 1e-4 and abs(local - res["local_acc_mean"]) < 1e-4
        assert 0 <= avg <= 1 and 0 <= local <= 1 and consensus >= 0, row
        assert res["rounds_to_target"] in (5, 10, None)
        assert row.rstrip().endswith(str(res["rounds_to_target"] or "not reached")), row
        assert name in ("ring", "exponential")
    mlp_params = 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10  # the zoo's default MLP
    assert results["ring"]["bytes_sent"] == 8 * 2 * 10 * mlp_params * 4
    assert results["exponential"]["bytes_sent"] > results["ring"]["bytes_sent"]

    out = tmp_path / "out"
    _, _, results = run("ring_vs_exponential", "--peers", "4", "--rounds", "4",
                        "--eval-every", "2", "--out", str(out), cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    for name in ("ring", "exponential"):
        assert sorted(p.name for p in (out / name).iterdir()) == ["config.toml", "metrics.jsonl"]
        records = [json.loads(x) for x in (out / name / "metrics.jsonl").read_text().splitlines()]
        assert [r["round"] for r in records] == [2, 4]
        assert records[-1]["avg_model_acc"] == results[name]["avg_model_acc"]
        config = tomllib.loads((out / name / "config.toml").read_text())  # repeats the run
        assert config["topology"] == name and config["out"] == str(out / name)


def test_dirichlet_sweep(tmp_path):
    lines, _, results = run("dirichlet_sweep", "--alphas", "0.05", "iid", "--peers", "4",
                            "--rounds", "20", cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert list(results) == ["0.05", "iid"] and len(lines) == 3
    for row, (alpha, res) in zip(lines[1:], results.items(), strict=True):
        classes, avg, local_mean, local_min, consensus = numbers(row)[-5:]
        assert row.split()[0] == alpha and abs(avg - res["avg_model_acc"]) < 1e-4
        assert 0 <= local_min <= local_mean <= 1 and 0 <= avg <= 1 and consensus >= 0, row
        assert 1 <= classes <= 10
    # A small alpha leaves each peer with few classes; an IID split gives every peer all 10.
    assert results["0.05"]["classes_per_peer"] < 5
    assert results["iid"]["classes_per_peer"] > 9


def test_push_sum_directed(tmp_path):
    lines, stderr, curves = run("push_sum_directed", "--peers", "8", "--rounds", "150",
                                "--eval-every", "10", cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []
    low, high = numbers(lines[0].replace(",", " "))[-2:]
    assert 0 < low < 1 < high, lines[0]  # the push-sum masses differ between peers
    assert list(curves) == ["push_sum directed", "dpsgd ring", "dpsgd directed"]
    push = list(curves["push_sum directed"].values())
    assert list(curves["push_sum directed"]) == [str(t) for t in range(10, 151, 10)]
    assert all(b < a for a, b in zip(push[:7], push[1:8], strict=True)), push  # decreases
    assert push[-1] < push[0] / 10
    # Row-stochastic D-PSGD on the directed graph settles at a weighted optimum; push-sum
    # gets much closer to x*.
    assert push[-1] < curves["dpsgd directed"]["150"] / 3
    assert any("not doubly stochastic" in line for line in stderr)
    table = {int(r.split()[0]): numbers(r)[1:] for r in lines if r.split()[0].isdigit()}
    assert abs(table[150][0] - push[-1]) <= 1e-3 * push[-1]

    _, _, curves = run("push_sum_directed", "--graph", "epidemic", "--peers", "8",
                       "--rounds", "40", "--eval-every", "10", cwd=tmp_path)
    push = list(curves["push_sum directed"].values())
    assert push[-1] < push[0] / 2, push


def test_custom_model(tmp_path):
    lines, _, last = run("custom_model", "--peers", "4", "--rounds", "30", "--print-every",
                         "10", cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []
    rows = [numbers(r) for r in lines[1:]]
    assert [r[0] for r in rows] == [10, 20, 30]
    for _, loss, avg, local, consensus in rows:
        assert loss > 0 and 0 <= avg <= 1 and 0 <= local <= 1 and consensus >= 0
    assert rows[-1][1] < rows[0][1]  # the loss goes down
    assert last["round"] == 30 and last["avg_model_acc"] > 0.3  # chance is 0.1
    assert abs(last["avg_model_acc"] - rows[-1][2]) < 1e-4
