"""``gossip topo``: the report, its JSON form and its errors."""

import json

import pytest

from gossip.cli import main
from gossip.topo_cli import parse_value

KEYS = {"n", "in_neighbours", "slem", "spectral_gap", "rounds_to_consensus"}


def test_json_has_exactly_the_five_keys(capsys):
    assert main(["topo", "ring", "-n", "16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == KEYS
    assert report["n"] == 16 and report["in_neighbours"] == 2
    assert report["slem"] == pytest.approx(1 / 3 + 2 / 3 * 0.9238795325112867)
    assert report["spectral_gap"] == pytest.approx(1 - report["slem"])
    assert report["rounds_to_consensus"] == 266


def test_human_table(capsys):
    assert main(["topo", "one_peer_exponential", "-n", "8"]) == 0
    out = capsys.readouterr().out
    for key in KEYS:
        assert key in out
    assert "per-round average" in out


def test_options_and_weights(capsys, tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("0 1\n1 2\n2 0\n2 3\n")
    assert main(["topo", "edge_list", "-n", "4", "--option", f"path={path}", "-o",
                 "directed=false", "--weights", "uniform", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["in_neighbours"] == 3
    assert main(["topo", "erdos_renyi", "-n", "12", "--seed", "3", "-o", "p=1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rounds_to_consensus"] == 1


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5
    assert parse_value("True") is True and parse_value("false") is False
    assert parse_value("a.txt") == "a.txt"


@pytest.mark.parametrize("argv, message", [
    (["topo", "hypercube", "-n", "8"], "unknown topology 'hypercube'"),
    (["topo", "torus", "-n", "10"], "square number"),
    (["topo", "ring", "-n", "8", "-o", "d=3"], "unknown option 'd'"),
    (["topo", "ring", "-n", "8", "-o", "d"], "key=value"),
    (["topo", "ring", "-n", "1"], "n must be >= 2, got 1"),
    (["topo", "ring", "-n", "8", "--weights", "x"],
     "unknown weights 'x'; valid choices: default, metropolis, push, uniform"),
    (["topo", "ring", "-n", "8", "-o", "p=[1"], "not a valid TOML value: Unclosed array"),
])
def test_errors_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("gossip: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_the_spectral_gap_is_never_negative_by_rounding(capsys):
    # random matching: every round's W has SLEM 1 (the pairs do not mix), computed as 1 + 1e-16
    assert main(["topo", "random_matching", "-n", "16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["slem"] == pytest.approx(1.0) and report["spectral_gap"] == 0.0
    assert main(["topo", "random_matching", "-n", "16"]) == 0
    assert "spectral_gap              0\n" in capsys.readouterr().out
