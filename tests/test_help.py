"""Help that teaches: every flag shows its default, names list their choices, real-peer flags
have their own heading (and are not offered by ``gossip sim``), ``--version``, pointers to
docs/."""

import argparse
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gossip.cli import build_parser, main
from gossip.experiment import config_choices

ROOT = Path(__file__).resolve().parent.parent


def subparsers(parser):
    """``{"sim": parser, ..., "bench topologies": parser}``."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in subparsers(sub).items()})
    return found


COMMANDS = subparsers(build_parser())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_flag_shows_its_default(name):
    parser = COMMANDS[name]
    one_of = {a for g in parser._mutually_exclusive_groups if g.required
              for a in g._group_actions}  # gossip launch: --local N or --hostfile HOSTS
    for action in parser._actions:
        if (not action.option_strings or action.required or action in one_of
                or isinstance(action, argparse._HelpAction | argparse._SubParsersAction
                              | argparse._VersionAction)):
            continue
        if isinstance(action, argparse._StoreTrueAction) and action.dest != "save_params":
            continue  # a switch: off unless given
        text = action.help % {**vars(action), "prog": parser.prog}
        assert "default" in text, f"gossip {name} {action.option_strings[0]}: {text!r}"
    assert "docs/" in parser.format_help(), f"gossip {name}: --help points nowhere in docs/"


def test_names_list_their_choices():
    text = COMMANDS["sim"].format_help()
    for key in ("dataset", "model", "topology", "rule", "optimizer", "partition", "weights"):
        for name in config_choices()[key]:
            assert name in text, (key, name)
    flat = " ".join(text.split())  # as wrapped at any width
    assert "(default: digits)" in flat and "(default: mlp)" in flat


def test_real_peer_flags_only_where_peers_run():
    sim = COMMANDS["sim"].format_help()
    for flag in ("--round-deadline", "--startup-timeout", "--heartbeat-timeout",
                 "--checkpoint-every"):
        assert flag not in sim
        for command in ("launch", "peer"):
            text = COMMANDS[command].format_help()
            section = text[text.index("real peers only:"):].split("\n\n")[0]
            assert flag in section, (command, flag)
    for command, default in (("sim", "a new runs/sim-YYYYmmdd-HHMMSS"),
                             ("launch", "a new runs/launch-YYYYmmdd-HHMMSS"),
                             ("peer", "runs/peer")):
        out = next(a for a in COMMANDS[command]._actions if a.dest == "out")
        assert out.help.endswith(f"(default: {default})")


def test_version_and_top_level_help(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("gossip-train ") and out.split()[1][0].isdigit()
    result = subprocess.run([sys.executable, "-m", "gossip", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "docs/tutorial.md" in result.stdout
    for command in ("sim", "plot", "topo", "peer", "launch", "keys", "bench"):
        assert command in result.stdout


def test_the_flags_of_sim_do_not_load_the_model_zoo():
    # The zoo (flax) is imported when --help lists the models, not to parse the flags.
    code = ("import sys; from gossip.cli import build_parser; "
            "build_parser().parse_args(['sim']); "
            "print(any(m.startswith(('flax', 'gossip.models')) for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd="/")
    assert result.stdout.strip() == "False", result.stderr


def test_pytest_shows_the_test_total():
    # `addopts = "-q"` made `pytest --collect-only -q` print no total.
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    assert "-q" not in options["ini_options"].get("addopts", "")
