"""Outputs that never surprise: a new directory per run, a clear line for an ``--out`` that is
a file, and a quiet end when stdout is closed (``gossip sim | head``)."""

import datetime
import os
import subprocess
import sys

import pytest

from gossip.cli import main
from gossip.outputs import new_run_dir

TINY = ["--peers", "4", "--rounds", "4", "--eval-every", "2", "--no-progress",
        "--set", "model_options={hidden=[16]}"]


def test_run_directories_are_new_and_stamped(tmp_path):
    now = datetime.datetime(2026, 1, 2, 3, 4, 5)
    first = new_run_dir("sim", tmp_path, now)
    assert first == tmp_path / "sim-20260102-030405"
    first.mkdir()
    assert new_run_dir("sim", tmp_path, now) == tmp_path / "sim-20260102-030405-2"
    (tmp_path / "sim-20260102-030405-2").mkdir()
    assert new_run_dir("sim", tmp_path, now).name == "sim-20260102-030405-3"


def test_sim_never_overwrites_an_earlier_run_and_draws_its_curves(tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sim", *TINY]) == 0
    assert main(["sim", *TINY, "--no-plot"]) == 0
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(r.name.startswith("sim-") for r in runs)
    printed = capsys.readouterr().out
    drawn = [r for r in runs if (r / "curves.png").is_file()]
    assert len(drawn) == 1 and f"curves: runs/{drawn[0].name}/curves.png" in printed
    for r in runs:
        assert (r / "metrics.jsonl").is_file()
        assert f"out = \"runs/{r.name}\"" in (r / "config.toml").read_text()


@pytest.mark.parametrize("command", [
    ["sim", *TINY],
    ["launch", "--local", "2", "--rounds", "2"],
    ["peer", "--id", "0", "--peers", "tcp://127.0.0.1:7100,tcp://127.0.0.1:7101"],
])
def test_an_out_that_is_a_file_is_one_line_and_exit_2(tmp_path, capsys, command):
    target = tmp_path / "taken"
    target.write_text("not a directory")
    for out, message in ((target, f"--out {target} is a file"),
                         (target / "run", f"cannot be made: {target} is a file")):
        assert main([*command, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("gossip: error: "), err
        assert message in err
    assert target.read_text() == "not a directory"


def run_with_closed_stdout(args, cwd):
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: the first write fails (EPIPE), as after `| head`
    try:
        return subprocess.run([sys.executable, "-m", "gossip", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=300, cwd=cwd)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args, status", [
    (["topo", "ring", "-n", "16"], 141),
    (["sim", "--help"], 0),  # argparse drops a failed help write itself
    (["sim", *TINY, "--no-plot", "--out", "run"], 141),
], ids=["topo", "help", "sim"])
def test_a_closed_stdout_ends_quietly(tmp_path, args, status):
    result = run_with_closed_stdout(args, tmp_path)
    assert result.returncode == status, result.stderr
    assert result.stderr == ""
