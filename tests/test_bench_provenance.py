"""Benchmark outputs: a new runs/bench-* directory by default, and what each result records."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gossip.bench.provenance import RESULTS, bench_out, command_line, provenance
from gossip.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_provenance_names_command_machine_and_versions():
    meta = provenance("python benchmarks/x.py --json")
    assert meta["command"] == "python benchmarks/x.py --json"
    machine = meta["machine"]
    for key in ("cpu", "cores", "jax", "jaxlib", "numpy", "pyzmq", "libzmq", "load_average"):
        assert machine[key], key
    assert command_line(["/abs/benchmarks/wire.py", "--out", "a b"]).endswith("'a b'")


def test_bench_out_defaults_to_a_new_runs_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = bench_out("wire", None), bench_out("wire", "")
    assert first != second and first.parent == second.parent == Path("runs")
    assert first.name.startswith("bench-wire-") and first.is_dir()
    assert bench_out("wire", tmp_path / "mine") == tmp_path / "mine"
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        bench_out("wire", tmp_path / "file")


def test_a_benchmark_run_never_touches_the_committed_figures(tmp_path):
    committed = RESULTS / "wire.json"
    before = committed.read_bytes()
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "wire.py"), "--json",
                    "--sizes-mib", "0.05", "--repeats", "1"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=300)
    assert committed.read_bytes() == before
    (written,) = tmp_path.glob("runs/bench-wire-*/wire.json")
    result = json.loads(written.read_text())
    assert "benchmarks/wire.py --json --sizes-mib 0.05" in result["command"]
    assert result["machine"]["libzmq"] and len(result["results"]) == 1
    assert result["results"][0]["gossip_over_pickle"] > 0


def test_peer_round_sizes_its_models_to_the_asked_megabytes():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import peer_round
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    for mib in (1, 16):
        assert peer_round.model_bytes(peer_round.hidden_for(mib)) == pytest.approx(
            mib * 2**20, rel=1e-3)


def test_peer_round_reads_tc_rates_and_refuses_a_bad_one_in_one_line(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import peer_round
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert peer_round.parse_rate("1gbit") == 1e9
    assert peer_round.parse_rate("2.5mbit") == 2.5e6
    for bad in ("fast", "1gb", "0mbit", "-1gbit"):
        with pytest.raises(ValueError, match="is not a rate"):
            peer_round.parse_rate(bad)
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peer_round.py"),
                           "--netns", "--rate", "fast"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "error: --rate 'fast' is not a rate" in done.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "runs").exists()  # refused before anything was made
