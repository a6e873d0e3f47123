"""The test DESIGN §1 keeps forever: N real peer processes end where the simulator ends."""

import contextlib
import io
import subprocess

import numpy as np
import pytest
from peer_utils import FAST, assert_ports_free, gossip_cmd, processes_mentioning, records

from gossip.cli import main

# Exact optimisation with full batches (batch size 0: padded and unpadded shards agree).
LEAST_SQUARES = ["--dataset", "least_squares", "--model", "linear", "--batch-size", "0",
                 "--lr", "0.05", "--set", "dataset_options={peers=4}", "--eval-every", "100"]
# Rules that bring their own correction (tracking, D², quasi-global momentum) use plain SGD.
LEAST_SQUARES_SGD = [*LEAST_SQUARES, "--optimizer", "sgd"]
CASES = [
    ("ring", "dpsgd", 1, FAST),
    ("one_peer_exponential", "dpsgd", 1, FAST),
    ("random_matching", "dpsgd", 1, FAST),
    ("one_peer_exponential", "push_sum", 1, FAST),
    ("ring", "dpsgd_cta", 2, FAST),
    # Running sums in sync mode (--running-sums): compensated sums and per-slot state.
    ("ring", "push_sum", 1, [*FAST, "--running-sums"]),
    # Directed, in-degrees differ: the push-sum masses differ, so the local update must move
    # the numerator (SGP) in both drivers alike.
    ("epidemic", "push_sum", 2, LEAST_SQUARES),
    # Issue 13: two-vector messages, D²'s correction, QG's momentum; Choco's compressed
    # messages (rand-k: uint8 indices and float32 values) travel as such, their indices
    # drawn from each peer's key of the round in both drivers alike.
    ("ring", "gradient_tracking", 1, LEAST_SQUARES_SGD),
    ("epidemic", "push_diging", 1, LEAST_SQUARES_SGD),
    ("one_peer_exponential", "d2", 2, LEAST_SQUARES_SGD),
    ("ring", "qg_dsgdm", 1, LEAST_SQUARES_SGD),
    ("ring", "choco", 1, [*LEAST_SQUARES_SGD, "--compress", "rand_k", "--compress-ratio", "0.2"]),
    # The outer optimizer (DiLoCo over gossip): Nesterov on the gossip-averaged change.
    ("ring", "local_sgd", 2, [*LEAST_SQUARES, "--outer-optimizer", "nesterov"]),
]


@pytest.mark.parametrize(("topology", "rule", "local_steps", "task"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_launch_local_ends_with_the_simulators_parameters(tmp_path, topology, rule,
                                                          local_steps, task):
    assert_parity(tmp_path, ["--topology", topology, "--rule", rule, "--local-steps",
                             str(local_steps), *task])


# Issue 14: every defence, with one real peer (the seeded attacker of --byzantine 1) forging
# its messages; attacks whose forgery does not depend on the view (the simulator's attackers
# see the whole round, a real one the round before), cta too (the message sent early).
ROBUST_CASES = [
    ("clip", "sign_flip", "dpsgd", 1),
    ("screen", "huge", "dpsgd", 1),
    ("trimmed_mean", "gaussian", "dpsgd", 1),
    ("median", "sign_flip", "dpsgd_cta", 2),
]


@pytest.mark.parametrize(("robust", "attack", "rule", "local_steps"), ROBUST_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in ROBUST_CASES])
def test_every_defence_ends_with_the_simulators_parameters_against_a_real_attacker(
        tmp_path, robust, attack, rule, local_steps):
    real = assert_parity(tmp_path, [
        "--topology", "complete", "--rule", rule, "--local-steps", str(local_steps),
        "--robust", robust, "--byzantine", "1", "--attack", attack, *FAST])
    attackers = [i for i in range(4) if records(real / f"peer-{i:04d}.jsonl")[-1].get("attacker")]
    assert len(attackers) == 1
    flagged = [records(real / f"peer-{i:04d}.jsonl")[-1]["robust_flagged"] for i in range(4)]
    assert robust in ("trimmed_mean", "median") or sum(flagged) > 0, flagged
    # The launch's summary leaves the attacker out of the honest metrics, as the simulator.
    want, got = records(tmp_path / "sim" / "metrics.jsonl")[-1], records(real / "metrics.jsonl")[-1]
    for key in ("honest_avg_model_acc", "honest_acc_mean", "honest_acc_min"):
        assert got[key] == pytest.approx(want[key], abs=1e-6), key


def assert_parity(tmp_path, args):
    """Runs ``gossip sim`` (in this process: the real peers are the processes under test)
    and ``gossip launch --local`` with 4 peers for 5 rounds; checks every peer ends with the
    simulator's parameters. Returns the launch's directory."""
    common = [*args, "--rounds", "5", "--seed", "3", "--save-params", "--no-plot"]
    sim, real = tmp_path / "sim", tmp_path / "real"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["sim", "--peers", "4", "--out", str(sim), "--no-progress", *common]) == 0
    run = subprocess.run(gossip_cmd("launch", "--local", "4", "--out", str(real),
                                    "--no-progress", *common),
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert "average-model test" in run.stdout
    for i in range(4):
        want = np.load(sim / "params" / f"peer-{i:04d}.npz")
        got = np.load(real / "params" / f"peer-{i:04d}.npz")
        assert sorted(got.files) == sorted(want.files)
        for leaf in want.files:
            np.testing.assert_allclose(got[leaf], want[leaf], rtol=1e-5, atol=1e-6,
                                       err_msg=f"peer {i} leaf {leaf}")
        last = records(real / f"peer-{i:04d}.jsonl")[-1]
        assert last["round"] == 5
        assert last["messages_missing"] == last["messages_rejected"] == 0
    assert processes_mentioning(str(real)) == []
    assert_ports_free(real / "peers.txt")
    return real
