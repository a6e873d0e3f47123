"""``gossip sim`` on the command line, as several test files run it."""

from pathlib import Path

import pytest

from gossip.cli import main

# A small, fast run: 4 peers, 4 rounds, a 16-unit MLP, no progress bar or plot.
SMALL = ["--peers", "4", "--rounds", "4", "--eval-every", "2", "--no-progress", "--no-plot",
         "--set", "model_options={hidden=[16]}"]


def assert_sim_refuses(out: Path, capsys: pytest.CaptureFixture, argv: list[str],
                       names: list[str]) -> None:
    """``gossip sim`` (the SMALL run into ``out``) with ``argv`` exits 2 with one
    ``gossip: error:`` line that names each of ``names``, and writes nothing."""
    assert main(["sim", *SMALL, "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gossip: error: "), err
    for name in names:
        assert name in err, err
    assert not out.exists()
